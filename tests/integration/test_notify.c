/* test_notify.c -- telling systemd: the sd_notify protocol.
 *
 * Each test binds its own Unix datagram socket, starts a redis-server and
 * the daemon with NOTIFY_SOCKET naming that socket (and WATCHDOG_USEC =
 * 400 ms), and reads what the daemon sends, as systemd would:
 *
 * - one process: READY=1 once it serves, STATUS= lines, WATCHDOG=1 at
 *   least every 200 ms, RELOADING=1 then READY=1 around a SIGHUP,
 *   STOPPING=1 at SIGTERM;
 * - processes = 2: the master says READY=1 only when both workers serve
 *   (their heartbeat keys exist by then), and feeds the watchdog.
 *
 * Run: make all build/tests/integration/test_notify &&
 *      REDWORK_ROOT=$PWD build/tests/integration/test_notify */
#include <criterion/criterion.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

static struct {
    rw_env env;
    int sock;
    char dir[RW_PATH_MAX];
} fx = {.sock = -1};

static void teardown(void)
{
    rw_env_stop(&fx.env);
    if (fx.sock >= 0)
        close(fx.sock);
    if (fx.dir[0])
        rw_rmdir(fx.dir);
}

TestSuite(notify, .fini = teardown, .timeout = 60);

/* Binds the socket systemd would, and points NOTIFY_SOCKET at it. */
static void listen_as_systemd(void)
{
    cr_assert_eq(rw_tmpdir(fx.dir, sizeof fx.dir), 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/notify.sock", fx.dir);
    cr_assert(n > 0 && (size_t)n < sizeof a.sun_path, "socket path too long");
    fx.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fx.sock, 0);
    cr_assert_eq(bind(fx.sock, (struct sockaddr *)&a, sizeof a), 0);
    setenv("NOTIFY_SOCKET", a.sun_path, 1);
    setenv("WATCHDOG_USEC", "400000", 1);
}

/* The next message within TIMEOUT_MS into BUF, or 0 if none came. */
static int next_message(char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = fx.sock, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    ssize_t n = recv(fx.sock, buf, len - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return 1;
}

/* Reads messages until one has the line WANT (a whole line), bounded by
 * TIMEOUT_MS; counts the WATCHDOG=1 seen on the way in *WATCHDOGS (may be
 * NULL). Returns 1 if it came. */
static int wait_line(const char *want, int timeout_ms, int *watchdogs)
{
    long long deadline = rw_now_ms() + timeout_ms;
    char msg[1024];
    while (rw_now_ms() < deadline) {
        if (!next_message(msg, sizeof msg, (int)(deadline - rw_now_ms())))
            return 0;
        int found = 0;
        for (char *line = strtok(msg, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            if (watchdogs != NULL && strcmp(line, "WATCHDOG=1") == 0)
                ++*watchdogs;
            found |= strcmp(line, want) == 0;
        }
        if (found)
            return 1;
    }
    return 0;
}

/* Counts WATCHDOG=1 over MS milliseconds. */
static int watchdogs_during(int ms)
{
    int count = 0;
    wait_line("(none)", ms, &count);
    return count;
}

Test(notify, one_process_tells_systemd)
{
    listen_as_systemd();
    cr_assert_eq(rw_env_start(&fx.env, "ntf", &(rw_opts){.threads = 1}), 0);
    cr_assert(wait_line("READY=1", 5000, NULL), "no READY=1");
    char msg[1024] = "";
    cr_assert(next_message(msg, sizeof msg, 2000), "no STATUS after READY");
    cr_assert(strstr(msg, "STATUS=1 worker,") != NULL, "status: %s", msg);
    int fed = watchdogs_during(1200);
    cr_assert_geq(fed, 4, "WATCHDOG=1 %d times in 1.2 s, with WATCHDOG_USEC 400 ms", fed);

    kill(fx.env.daemon.pid, SIGHUP);
    cr_assert(wait_line("RELOADING=1", 3000, NULL), "no RELOADING=1 at SIGHUP");
    cr_assert(wait_line("READY=1", 3000, NULL), "no READY=1 after the reload");

    kill(fx.env.daemon.pid, SIGTERM);
    cr_assert(wait_line("STOPPING=1", 3000, NULL), "no STOPPING=1 at SIGTERM");
    cr_assert_eq(rw_daemon_wait(&fx.env.daemon, 10000), 0);
}

Test(notify, master_is_ready_when_every_worker_is)
{
    listen_as_systemd();
    cr_assert_eq(rw_redis_start(&fx.env.redis), 0);
    cr_assert_eq(rw_daemon_config(&fx.env.daemon, fx.env.redis.dir, fx.env.redis.port, "ntm",
                                  &(rw_opts){.threads = 1, .claim_on = 1,
                                             .worker_extra = "processes = 2\n"}), 0);
    char bin[RW_PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/bin/redworkd", rw_root());
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, "redworkd", "-c", fx.env.daemon.conf, (char *)NULL);
        _exit(127);
    }
    fx.env.daemon.pid = pid;
    cr_assert(wait_line("READY=1", 10000, NULL), "the master never said READY=1");
    redisContext *c = rw_connect(fx.env.redis.port);
    cr_assert_not_null(c);
    for (int k = 1; k <= 2; k++) {
        char key[192];
        rw_worker_key(&fx.env.daemon, k, key, sizeof key);
        cr_assert_eq(rw_exists(&c, key), 1, "READY=1 before worker %d served", k);
    }
    redisFree(c);
    int fed = watchdogs_during(1200);
    cr_assert_geq(fed, 4, "the master fed the watchdog %d times in 1.2 s", fed);
    kill(pid, SIGTERM);
    cr_assert(wait_line("STOPPING=1", 3000, NULL), "no STOPPING=1 at SIGTERM");
    cr_assert_eq(rw_daemon_wait(&fx.env.daemon, 15000), 0);
}
