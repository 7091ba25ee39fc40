/* test_plugin.c -- the handler loader (framework/plugin.h) and the SDK's
 * host getters, against the fixture plugins of tests/plugins/.
 *
 * Covers: a good plugin (init reads its [handler.good] section, handle is
 * called through plugin_handle, fini runs once at plugin_set_free), every
 * refusal (newer minor ABI, other major ABI, no symbol, no handle, bad or
 * missing name, duplicate name, init failing, a file that is not a shared
 * object), error strings naming the file, refused files being dlclose'd,
 * plugin_load_dir on a mixed directory, the lookup functions, and
 * strict_modes (a group/other-writable or foreign-owned file is refused
 * unless strict_modes = off). The fixtures are found through
 * REDWORK_TEST_PLUGINS (set by `make test-unit`), else build/tests/plugins. */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <link.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "plugin.h"
#include "reply.h"
#include "request.h"

static char tmpdir[64];
static char err[1024];
static char fini_file[PATH_MAX];

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void setup(void) {
    strcpy(tmpdir, "/tmp/redwork-plugin-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(fini_file, sizeof fini_file, "%s/fini.log", tmpdir);
    setenv("REDWORK_TEST_FINI_FILE", fini_file, 1);
    err[0] = '\0';
    redwork_log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT); /* refusals log warnings */
}

static void teardown(void) {
    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(plugin, .init = setup, .fini = teardown);

/* The path of fixture NAME.so (static, overwritten by the next call). */
static const char *fixture(const char *name) {
    static char path[PATH_MAX];
    const char *dir = getenv("REDWORK_TEST_PLUGINS");
    snprintf(path, sizeof path, "%s/%s.so",
             dir != NULL && *dir ? dir : "build/tests/plugins", name);
    cr_assert_eq(access(path, R_OK), 0, "fixture %s missing: run make", path);
    return path;
}

/* Copies fixture NAME.so to tmpdir/DEST with MODE; returns the new path. */
static const char *copy_fixture(const char *name, const char *dest,
                                mode_t mode) {
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmpdir, dest);
    FILE *in = fopen(fixture(name), "rb");
    FILE *out = fopen(path, "wb");
    cr_assert(in != NULL && out != NULL, "cannot copy to %s", path);
    char bytes[8192];
    size_t n;
    while ((n = fread(bytes, 1, sizeof bytes, in)) > 0)
        cr_assert_eq(fwrite(bytes, 1, n, out), n);
    fclose(in);
    fclose(out);
    cr_assert_eq(chmod(path, mode), 0);
    return path;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* A config loaded from an ini holding TEXT ("": only a [worker] line, since
 * an empty file is refused). */
static config *make_config(const char *text) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/redwork.ini", tmpdir);
    write_text(path, *text ? text : "[worker]\n");
    config *cfg = redwork_config_load(path, err, sizeof err);
    cr_assert_not_null(cfg, "config: %s", err);
    return cfg;
}

/* Loads PATH, which must be refused; returns the error text. */
static const char *expect_refused(plugin_set *set, const char *path) {
    err[0] = '\0';
    size_t before = plugin_count(set);
    cr_assert_eq(plugin_load_file(set, path, err, sizeof err), -1,
                 "%s was accepted", path);
    cr_assert_eq(plugin_count(set), before, "a refused plugin was counted");
    cr_assert_not_null(strstr(err, path), "error '%s' does not name %s", err,
                       path);
    return err;
}

/* dl_iterate_phdr's callback: counts objects named like the private copy
 * of the file in ARG ("<dir>/<n>-<basename>"). */
static int count_copies(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    const char **want = arg;
    const char *name = info->dlpi_name;
    size_t n = strlen(name), m = strlen(want[0]);
    if (n > m && strcmp(name + n - m, want[0]) == 0 && name[n - m - 1] == '-')
        want[1]++;
    return 0;
}

/* How many copies of PATH the dynamic loader has loaded (the set loads
 * each file from a private copy). */
static int still_loaded(const char *path) {
    const char *base = strrchr(path, '/');
    const char *want[2] = {base != NULL ? base + 1 : path, NULL};
    dl_iterate_phdr(count_copies, want);
    return (int)(size_t)want[1];
}

/* The current handler NAME; the set keeps it alive (these tests do not
 * reload while they hold it). */
static const plugin *find_handler(plugin_set *set, const char *name) {
    const plugin *p = plugin_acquire(set, name);
    plugin_release(p);
    return p;
}

/* Runs handler P on BODY and returns its reply's result (caller deletes);
 * *RC gets handle()'s return value. */
static cJSON *call(const plugin *p, const char *body, int *rc) {
    request *req = request_new();
    char perr[256];
    cr_assert_not_null(req);
    cr_assert_eq(request_scan(req, body, strlen(body), "news_sports", 11, 1 << 20,
                              "callback:", clock_now_us(), perr, sizeof perr),
                 REQUEST_OK, "%s", perr);
    cr_assert_eq(request_parse_tree(req, perr, sizeof perr), 0, "%s", perr);
    reply rep;
    reply_init(&rep);
    *rc = plugin_handle(p, req, &rep);
    cJSON *result = rep.result;
    rep.result = NULL;
    if (reply_is_error(&rep))
        result = cJSON_CreateString(rep.code);
    reply_clear(&rep);
    request_free(req);
    return result;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---- the good plugin ------------------------------------------------- */

Test(plugin, good_loads_reads_config_and_handles) {
    config *cfg = make_config("[handler.good]\nword = Hi\ntimes = 3\nloud = yes\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_not_null(set);
    cr_assert_eq(plugin_count(set), 0);

    const char *path = fixture("good");
    cr_assert_eq(plugin_load_file(set, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(plugin_count(set), 1);
    const plugin *p = find_handler(set, "good");
    cr_assert_not_null(p);
    cr_assert_str_eq(plugin_name(p), "good");
    cr_assert_null(find_handler(set, "bad"));
    cr_assert_null(find_handler(set, "goo"));
    cr_assert_eq(still_loaded(path), 1);

    int rc = -1;
    cJSON *out = call(p, "{\"req_id\":\"1\",\"user_id\":\"Alice\"}", &rc);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(out);
    cr_assert_str_eq(cJSON_GetObjectItem(out, "word")->valuestring, "Hi");
    cr_assert_eq(cJSON_GetObjectItem(out, "times")->valuedouble, 3);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(out, "loud")));
    cr_assert_str_eq(cJSON_GetObjectItem(out, "name")->valuestring, "good");
    cr_assert_str_eq(cJSON_GetObjectItem(out, "channel")->valuestring,
                     "news_sports");
    cJSON_Delete(out);

    /* plugin_handle returns what handle() returned. */
    out = call(p, "{\"req_id\":\"2\",\"mode\":\"fail\"}", &rc);
    cr_assert_eq(rc, 1);
    cJSON_Delete(out);

    cr_assert_eq(file_size(fini_file), -1, "fini ran before plugin_set_free");
    plugin_set_free(set);
    FILE *f = fopen(fini_file, "r");
    cr_assert_not_null(f, "fini was not called");
    char line[64] = "";
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "fini good\n");
    cr_assert_null(fgets(line, sizeof line, f), "fini called twice");
    fclose(f);
    cr_assert_eq(still_loaded(path), 0, "plugin_set_free did not dlclose");
    redwork_config_free(cfg);
}

Test(plugin, good_uses_defaults_without_section) {
    config *cfg = make_config("[worker]\nthreads = 1\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_file(set, fixture("good"), err, sizeof err), 0,
                 "%s", err);
    int rc;
    cJSON *out = call(find_handler(set, "good"), "{\"req_id\":\"d\"}", &rc);
    cr_assert_str_eq(cJSON_GetObjectItem(out, "word")->valuestring, "Hello");
    cr_assert_eq(cJSON_GetObjectItem(out, "times")->valuedouble, 1);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(out, "loud")));
    cJSON_Delete(out);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, malformed_section_value_fails_init) {
    /* good's init refuses to start when redwork_config_int/bool fail. */
    static const char *const texts[] = {
        "[handler.good]\ntimes = many\n",
        "[handler.good]\ntimes = 3x\n",
        "[handler.good]\nloud = perhaps\n",
    };
    for (size_t i = 0; i < 3; i++) {
        config *cfg = make_config(texts[i]);
        plugin_set *set = plugin_set_create(cfg, err, sizeof err);
        cr_expect_eq(plugin_load_file(set, fixture("good"), err, sizeof err), -1,
                     "accepted %s", texts[i]);
        cr_expect_eq(plugin_count(set), 0);
        plugin_set_free(set);
        redwork_config_free(cfg);
    }
    cr_assert_eq(file_size(fini_file), -1, "fini of a refused plugin ran");
}

/* ---- refusals ---------------------------------------------------------- */

Test(plugin, newer_minor_refused_naming_both_versions) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *path = fixture("newer_minor");
    const char *e = expect_refused(set, path);
    char theirs[32], ours[32];
    snprintf(theirs, sizeof theirs, "%d.%d", REDWORK_HANDLER_ABI_MAJOR,
             REDWORK_HANDLER_ABI_MINOR + 1);
    snprintf(ours, sizeof ours, "%d.%d", REDWORK_HANDLER_ABI_MAJOR,
             REDWORK_HANDLER_ABI_MINOR);
    cr_assert_not_null(strstr(e, theirs), "'%s' lacks %s", e, theirs);
    cr_assert_not_null(strstr(e, ours), "'%s' lacks %s", e, ours);
    cr_assert_eq(still_loaded(path), 0, "refused plugin left loaded");
    cr_assert_null(find_handler(set, "newer_minor"));
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, wrong_major_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *path = fixture("wrong_major");
    const char *e = expect_refused(set, path);
    cr_assert_not_null(strstr(e, "2.0"), "'%s' lacks the plugin's ABI", e);
    cr_assert_eq(still_loaded(path), 0);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, no_symbol_refused_naming_symbol) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *path = fixture("no_symbol");
    const char *e = expect_refused(set, path);
    cr_assert_not_null(strstr(e, "redwork_handler_v1"), "'%s'", e);
    cr_assert_eq(still_loaded(path), 0);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, no_handle_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *path = fixture("no_handle");
    const char *e = expect_refused(set, path);
    cr_assert_not_null(strstr(e, "handle"), "'%s'", e);
    cr_assert_null(find_handler(set, "no_handle"));
    cr_assert_eq(still_loaded(path), 0);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, bad_or_missing_name_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    expect_refused(set, fixture("bad_name"));
    expect_refused(set, fixture("no_name"));
    cr_assert_null(find_handler(set, "Bad Name"));
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, duplicate_name_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_file(set, fixture("dup_a"), err, sizeof err), 0,
                 "%s", err);
    const char *e = expect_refused(set, fixture("dup_b"));
    cr_assert_not_null(strstr(e, "duplicate"), "'%s'", e);
    cr_assert_eq(plugin_count(set), 1);

    /* The first one stays and is the one called. */
    int rc;
    cJSON *out = call(find_handler(set, "dup"), "{\"req_id\":\"x\"}", &rc);
    cr_assert_str_eq(out->valuestring, "a");
    cJSON_Delete(out);

    /* Loading the very same file again is a duplicate too. */
    expect_refused(set, fixture("dup_a"));
    cr_assert_eq(plugin_count(set), 1);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, init_failure_refused_without_fini) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *path = fixture("init_fails");
    const char *e = expect_refused(set, path);
    cr_assert_not_null(strstr(e, "init"), "'%s'", e);
    cr_assert_eq(still_loaded(path), 0);
    plugin_set_free(set);
    cr_assert_eq(file_size(fini_file), -1, "fini of a refused plugin ran");
    redwork_config_free(cfg);
}

Test(plugin, not_a_shared_object_refused_with_dlerror) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/x.so", tmpdir);
    write_text(path, "this is not an ELF file, just some text long enough "
                     "to have a header-sized prefix of garbage in it.\n");

    /* What the dynamic loader says about it (after the file name it was
     * given, which is the set's private copy), to find in the error. */
    dlerror();
    cr_assert_null(dlopen(path, RTLD_NOW));
    char why[512];
    snprintf(why, sizeof why, "%s", dlerror());
    const char *reason = strstr(why, ": ");
    cr_assert_not_null(reason, "dlerror '%s' has no reason", why);

    const char *e = expect_refused(set, path);
    cr_assert_not_null(strstr(e, reason), "'%s' lacks the dlerror text '%s'", e,
                       reason);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, missing_file_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/absent.so", tmpdir);
    expect_refused(set, path);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, refusals_leave_the_set_working) {
    config *cfg = make_config("[handler.good]\nword = Yo\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    expect_refused(set, fixture("wrong_major"));
    cr_assert_eq(plugin_load_file(set, fixture("good"), err, sizeof err), 0,
                 "%s", err);
    expect_refused(set, fixture("init_fails"));
    cr_assert_eq(plugin_load_file(set, fixture("dup_b"), err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(plugin_count(set), 2);

    char *names = plugin_names(set);
    cr_assert_not_null(names);
    cr_assert(strcmp(names, "good,dup") == 0 || strcmp(names, "dup,good") == 0,
              "plugin_names gave '%s'", names);
    free(names);

    int rc;
    cJSON *out = call(find_handler(set, "dup"), "{\"req_id\":\"x\"}", &rc);
    cr_assert_str_eq(out->valuestring, "b");
    cJSON_Delete(out);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, empty_set) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_count(set), 0);
    cr_assert_null(find_handler(set, "good"));
    char *names = plugin_names(set);
    cr_assert_not_null(names);
    cr_assert_str_eq(names, "");
    free(names);
    plugin_set_free(set);
    plugin_set_free(NULL);
    redwork_config_free(cfg);
}

/* ---- plugin_load_dir ----------------------------------------------------- */

Test(plugin, load_dir_counts_loaded_and_ignores_others) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/handlers", tmpdir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    copy_fixture("good", "handlers/good.so", 0755);
    copy_fixture("dup_a", "handlers/dup_a.so", 0755);
    copy_fixture("dup_b", "handlers/dup_b.so", 0755);
    copy_fixture("wrong_major", "handlers/wrong_major.so", 0755);
    copy_fixture("no_handle", "handlers/no_handle.so", 0755);
    copy_fixture("init_fails", "handlers/init_fails.so", 0755);
    /* Not *.so: never even opened. If they were, load_dir would count or
     * refuse them; a garbage "*.so" is refused but does not stop the rest. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/handlers/README.txt", tmpdir);
    write_text(path, "not a plugin\n");
    copy_fixture("no_name", "handlers/old.so.bak", 0755);
    copy_fixture("bad_name", "handlers/so", 0755);
    snprintf(path, sizeof path, "%s/handlers/zz_garbage.so", tmpdir);
    write_text(path, "garbage\n");

    config *cfg = make_config("[worker]\nhandlers_dir = handlers\n");
    cr_assert_str_eq(cfg->handlers_dir, dir);
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    int n = plugin_load_dir(set, cfg->handlers_dir, err, sizeof err);
    cr_assert_eq(n, 2, "loaded %d (%s)", n, err);
    cr_assert_eq(plugin_count(set), 2);
    cr_assert_not_null(find_handler(set, "good"));
    cr_assert_not_null(find_handler(set, "dup"));

    /* Name order: dup_a.so comes before dup_b.so, so "dup" is dup_a's. */
    int rc;
    cJSON *out = call(find_handler(set, "dup"), "{\"req_id\":\"x\"}", &rc);
    cr_assert_str_eq(out->valuestring, "a");
    cJSON_Delete(out);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, load_dir_empty_and_missing) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 0, "%s", err);

    snprintf(dir, sizeof dir, "%s/nowhere", tmpdir);
    err[0] = '\0';
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, dir), "'%s' does not name the dir", err);
    cr_assert_eq(plugin_count(set), 0);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* ---- strict_modes -------------------------------------------------------- */

Test(plugin, strict_modes_refuses_writable_file) {
    const char *path = copy_fixture("good", "loose.so", 0666);
    config *cfg = make_config("[worker]\nstrict_modes = on\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    expect_refused(set, path);
    cr_assert_eq(still_loaded(path), 0, "a refused file must not be opened");
    plugin_set_free(set);
    redwork_config_free(cfg);

    /* Group-writable only is refused too. */
    cr_assert_eq(chmod(path, 0775), 0);
    cfg = make_config("");
    set = plugin_set_create(cfg, err, sizeof err);
    expect_refused(set, path);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, strict_modes_off_accepts_writable_file) {
    const char *path = copy_fixture("good", "loose.so", 0666);
    config *cfg = make_config("[worker]\nstrict_modes = off\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_file(set, path, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(find_handler(set, "good"));
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, strict_modes_refuses_writable_dir) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/open", tmpdir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(chmod(dir, 0777), 0);
    copy_fixture("good", "open/good.so", 0755);

    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    err[0] = '\0';
    int n = plugin_load_dir(set, dir, err, sizeof err);
    cr_assert_leq(n, 0, "loaded %d from a world-writable dir", n);
    cr_assert_eq(plugin_count(set), 0);
    if (n == -1)
        cr_assert_not_null(strstr(err, dir), "'%s' does not name the dir", err);
    plugin_set_free(set);
    redwork_config_free(cfg);

    cfg = make_config("[worker]\nstrict_modes = off\n");
    set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1, "%s", err);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, strict_modes_refuses_foreign_owner) {
    if (geteuid() != 0)
        cr_skip_test("needs root to chown");
    const char *path = copy_fixture("good", "foreign.so", 0755);
    cr_assert_eq(chown(path, 12345, 12345), 0);
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    expect_refused(set, path);
    plugin_set_free(set);
    redwork_config_free(cfg);

    cfg = make_config("[worker]\nstrict_modes = off\n");
    set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_file(set, path, err, sizeof err), 0, "%s", err);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* Makes tmpdir/NAME with MODE (whatever the umask); returns its path
 * (static, overwritten by the next call). */
static const char *make_folder(const char *name, mode_t mode) {
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s", dir);
    cr_assert_eq(chmod(dir, mode), 0);
    return dir;
}

/* Every folder from handlers_dir up to / is checked, not only the last. */
Test(plugin, strict_modes_refuses_a_writable_folder_above) {
    char above[PATH_MAX], dir[PATH_MAX];
    snprintf(above, sizeof above, "%s", make_folder("shared", 0775));
    snprintf(dir, sizeof dir, "%s", make_folder("shared/handlers", 0755));
    copy_fixture("good", "shared/handlers/good.so", 0755);
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), -1, "loaded under a writable folder");
    cr_assert_not_null(strstr(err, above), "'%s' does not name %s", err, above);
    cr_assert_not_null(strstr(err, "a folder above"), "%s", err);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* A sticky world-writable folder above (like /tmp) is safe: nobody but the
 * owner of the folder below it can rename or replace that. */
Test(plugin, strict_modes_accepts_a_sticky_folder_above) {
    make_folder("sticky", 01777);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", make_folder("sticky/handlers", 0755));
    copy_fixture("good", "sticky/handlers/good.so", 0755);
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1, "%s", err);
    plugin_set_free(set);
    redwork_config_free(cfg);
    /* handlers_dir itself gets no such leave: anyone could add a .so. */
    cr_assert_eq(chmod(dir, 01777), 0);
    cfg = make_config("");
    set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), -1);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* A symlinked .so is judged by the folders of its target too. */
Test(plugin, strict_modes_follows_a_symlink_to_its_folder) {
    char lib[PATH_MAX], links[PATH_MAX], link[PATH_MAX + 16], target[PATH_MAX + 16];
    snprintf(lib, sizeof lib, "%s", make_folder("lib", 0775));
    snprintf(links, sizeof links, "%s", make_folder("links", 0755));
    copy_fixture("good", "lib/good.so", 0755);
    snprintf(target, sizeof target, "%s/good.so", lib);
    snprintf(link, sizeof link, "%s/good.so", links);
    cr_assert_eq(symlink(target, link), 0);
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *e = expect_refused(set, link);
    cr_assert_not_null(strstr(e, lib), "'%s' does not name the target's folder %s", e, lib);
    cr_assert_eq(plugin_load_dir(set, links, err, sizeof err), 0);
    plugin_set_free(set);
    redwork_config_free(cfg);
    /* The same link to a folder nobody else can write loads. */
    cr_assert_eq(chmod(lib, 0755), 0);
    cfg = make_config("");
    set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_dir(set, links, err, sizeof err), 1, "%s", err);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* ---- reload ------------------------------------------------------------ */

/* Puts fixture NAME in DIR as DEST the way an operator should: a new file
 * renamed over the old one. Returns the path. */
static const char *install_fixture(const char *name, const char *dir,
                                   const char *dest) {
    static char path[PATH_MAX];
    char tmp[64];
    snprintf(tmp, sizeof tmp, "h.%s.tmp", dest);
    const char *staged = copy_fixture(name, tmp, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, dest);
    cr_assert_eq(rename(staged, path), 0, "cannot install %s", path);
    return path;
}

static const char *handlers_dir(void) {
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/handlers", tmpdir);
    mkdir(dir, 0755);
    return dir;
}

Test(plugin, reload_without_change_changes_nothing) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *dir = handlers_dir();
    install_fixture("good", dir, "good.so");
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1);
    const plugin *before = find_handler(set, "good");
    cr_assert_eq(plugin_reload_dir(set, dir, cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(find_handler(set, "good"), before, "an unchanged file was reloaded");
    cr_assert_eq(still_loaded("good.so"), 1);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, reload_replaces_while_a_request_holds_the_old_version) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *dir = handlers_dir();
    install_fixture("dup_a", dir, "a.so");
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1);
    const plugin *old = plugin_acquire(set, "dup"); /* a request in flight */
    cr_assert_not_null(old);

    install_fixture("dup_b", dir, "a.so");
    cr_assert_eq(plugin_reload_dir(set, dir, cfg, err, sizeof err), 1, "%s", err);
    const plugin *now = find_handler(set, "dup");
    cr_assert_not_null(now);
    cr_assert_neq(now, old, "the changed file was not reloaded");
    cr_assert_eq(still_loaded("a.so"), 2, "both versions must be loaded");

    /* The old version still runs what it holds, then goes. */
    int rc = -1;
    cJSON *out = call(old, "{\"req_id\":\"o\"}", &rc);
    cr_assert_eq(rc, 0);
    cJSON_Delete(out);
    plugin_collect(set);
    cr_assert_eq(still_loaded("a.so"), 2, "finalised while still held");
    plugin_release(old);
    plugin_collect(set);
    cr_assert_eq(still_loaded("a.so"), 1, "the old version was not finalised");
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, reload_loads_new_and_unloads_removed_files) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *dir = handlers_dir();
    const char *a = install_fixture("dup_a", dir, "a.so");
    char a_path[PATH_MAX];
    snprintf(a_path, sizeof a_path, "%s", a);
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1);

    install_fixture("good", dir, "good.so");
    cr_assert_eq(plugin_reload_dir(set, dir, cfg, err, sizeof err), 1, "%s", err);
    cr_assert_eq(plugin_count(set), 2);
    cr_assert_not_null(find_handler(set, "good"));

    cr_assert_eq(unlink(a_path), 0);
    cr_assert_eq(plugin_reload_dir(set, dir, cfg, err, sizeof err), 1, "%s", err);
    plugin_collect(set);
    cr_assert_eq(plugin_count(set), 1);
    cr_assert_null(find_handler(set, "dup"));
    cr_assert_eq(still_loaded("a.so"), 0, "the removed handler is still loaded");
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, reload_keeps_the_old_version_when_the_new_file_is_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *dir = handlers_dir();
    install_fixture("good", dir, "good.so");
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1);
    const plugin *before = find_handler(set, "good");

    install_fixture("wrong_major", dir, "good.so");
    cr_assert_eq(plugin_reload_dir(set, dir, cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(find_handler(set, "good"), before, "the working version was dropped");
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, replaced_handler_is_finalised_once_on_collect) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *dir = handlers_dir();
    install_fixture("good", dir, "good.so");
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1);
    install_fixture("good", dir, "good.so"); /* same code, a new file */
    cr_assert_eq(plugin_reload_dir(set, dir, cfg, err, sizeof err), 1, "%s", err);
    cr_assert_eq(file_size(fini_file), -1, "fini ran outside plugin_collect");
    plugin_collect(set);
    cr_assert_eq(file_size(fini_file), (long)strlen("fini good\n"),
                 "the old version's fini did not run exactly once");
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* ---- SDK 1.1 ------------------------------------------------------------ */

Test(plugin, reload_gives_a_new_version_the_section_as_it_is_now) {
    config *cfg = make_config("[handler.good]\nword = Before\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *dir = handlers_dir();
    install_fixture("good", dir, "good.so");
    cr_assert_eq(plugin_load_dir(set, dir, err, sizeof err), 1);
    config *now = make_config("[handler.good]\nword = After\n");
    install_fixture("good", dir, "good.so"); /* a new file: reloaded */
    cr_assert_eq(plugin_reload_dir(set, dir, now, err, sizeof err), 1, "%s", err);
    redwork_config_free(now); /* the handler keeps a copy of its own */
    int rc;
    cJSON *out = call(find_handler(set, "good"), "{\"req_id\":\"s\"}", &rc);
    cr_assert_str_eq(cJSON_GetObjectItem(out, "word")->valuestring, "After");
    cJSON_Delete(out);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, a_1_0_plugin_loads_and_handles) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_file(set, fixture("v1_0"), err, sizeof err), 0, "%s", err);
    const plugin *p = find_handler(set, "v1_0");
    int rc;
    cJSON *out = call(p, "{\"req_id\":\"v\"}", &rc);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(out, "abi")->valuestring, "1.0");
    cr_assert_lt(cJSON_GetObjectItem(out, "size")->valuedouble, (double)sizeof(redwork_handler),
                 "the fixture is not a 1.0-sized struct");
    cJSON_Delete(out);
    void *state = (void *)1;
    cr_assert_eq(plugin_thread_state(p, 0, &state), 0);
    cr_assert_null(state, "a 1.0 plugin has no thread_init to give a state");
    plugin_thread_exit(set, 0);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

Test(plugin, struct_smaller_than_1_0_refused) {
    config *cfg = make_config("");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    const char *e = expect_refused(set, fixture("too_small"));
    cr_assert_not_null(strstr(e, "needs"), "%s", e);
    plugin_set_free(set);
    redwork_config_free(cfg);
}

/* The lines of the fini file, in order, into LINES (at most N). */
static int fini_lines(char lines[][32], int n) {
    FILE *f = fopen(fini_file, "r");
    int count = 0;
    while (f != NULL && count < n && fgets(lines[count], 32, f) != NULL)
        lines[count][strcspn(lines[count], "\n")] = '\0', count++;
    if (f != NULL)
        fclose(f);
    return count;
}

Test(plugin, thread_state_made_once_per_thread_and_finalised_before_fini) {
    config *cfg = make_config("[worker]\nthreads = 2\n");
    plugin_set *set = plugin_set_create(cfg, err, sizeof err);
    cr_assert_eq(plugin_load_file(set, fixture("tstate"), err, sizeof err), 0, "%s", err);
    const plugin *p = find_handler(set, "tstate");
    void *a = NULL, *again = NULL, *b = NULL, *none = (void *)1;
    cr_assert_eq(plugin_thread_state(p, 0, &a), 0);
    cr_assert_eq(plugin_thread_state(p, 0, &again), 0);
    cr_assert_eq(plugin_thread_state(p, 1, &b), 0);
    cr_assert_eq(plugin_thread_state(p, 2, &none), 0, "past the threads: no state");
    cr_assert(a != NULL && a == again, "thread 0's state was made twice");
    cr_assert(b != NULL && b != a, "thread 1 shares thread 0's state");
    cr_assert_null(none);
    plugin_thread_exit(set, 1); /* thread 1 ends: its thread_fini runs now */
    char lines[8][32];
    cr_assert_eq(fini_lines(lines, 8), 3);
    cr_assert_str_eq(lines[2], "thread_fini -1"); /* made off the pool: index -1 */
    plugin_set_free(set); /* thread 0's at finalise, then fini */
    cr_assert_eq(fini_lines(lines, 8), 5);
    cr_assert_str_eq(lines[3], "thread_fini -1");
    cr_assert_str_eq(lines[4], "fini tstate");
    redwork_config_free(cfg);
}
