"""Shared helpers of the Python tests: a throwaway redis-server on a free
loopback port and the real bin/redworkd, each started and stopped with
bounded waits. Every wait polls a real condition until a deadline."""

import os
import signal
import socket
import subprocess
import time

import redis

ROOT = os.path.abspath(os.environ.get("REDWORK_ROOT", "."))
WAIT_S = 5.0


def free_port():
    """A free loopback port: bind to port 0, read it, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what):
    """Polls PREDICATE until it is true; raises after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise TimeoutError("timed out waiting for " + what)


def stop_process(proc, timeout=10.0):
    """SIGTERM, a bounded wait, then SIGKILL. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=timeout)
    return proc.returncode


def start_redis(folder, extra_args=(), password=None, log_name="redis.log"):
    """redis-server on a free port (retried), answering PING, with EXTRA_ARGS
    on its command line (for example ("--requirepass", PW)); PASSWORD is what
    the readiness PING authenticates with (as the default user). Returns
    (proc, port)."""
    for _ in range(5):
        port = free_port()
        log = open(os.path.join(folder, log_name), "w")
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", folder, *extra_args],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(host="127.0.0.1", port=port, password=password,
                             socket_timeout=1)

        def answers():
            if proc.poll() is not None:
                return True
            try:
                return client.ping()
            except redis.exceptions.ConnectionError:
                return False

        try:
            wait_until(answers, WAIT_S, "redis-server PING")
        except TimeoutError:
            pass
        ok = proc.poll() is None and answers()
        client.connection_pool.disconnect()
        if ok:
            return proc, port
        stop_process(proc)
    raise RuntimeError("could not start redis-server")


def start_daemon(folder, port, worker_id, ini_worker, ini_rest=""):
    """bin/redworkd on PORT with [worker] id WORKER_ID plus the lines
    INI_WORKER, then INI_REST; waits until its heartbeat key exists.
    Returns (proc, redis client). The log goes to FOLDER/daemon.log."""
    conf = os.path.join(folder, "redwork.ini")
    with open(conf, "w") as f:
        f.write("[redis]\nhost = 127.0.0.1\nport = %d\n\n[worker]\nid = %s\n%s\n%s"
                % (port, worker_id, ini_worker, ini_rest))
    with open(os.path.join(folder, "daemon.log"), "w") as log:
        proc = subprocess.Popen([os.path.join(ROOT, "bin", "redworkd"), "-c", conf],
                                stdout=log, stderr=subprocess.STDOUT)
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=WAIT_S,
                    decode_responses=True)
    heartbeat = "redwork:worker:" + worker_id
    try:
        wait_until(lambda: proc.poll() is not None or r.exists(heartbeat) == 1,
                   10.0, "redworkd ready")
    except TimeoutError:
        stop_process(proc)
        raise
    if proc.poll() is not None:
        with open(os.path.join(folder, "daemon.log")) as log:
            raise RuntimeError("redworkd exited with %d:\n%s" % (proc.returncode, log.read()))
    return proc, r


# ---- additions for the security tests (test_security.py) -----------------

REDWORKD = os.path.join(ROOT, "bin", "redworkd")
REDWORK = os.path.join(ROOT, "bin", "redwork")


def write_file(path, text):
    """Writes TEXT to PATH; returns PATH."""
    with open(path, "w") as f:
        f.write(text)
    return path


def child_env(**extra):
    """os.environ plus EXTRA (a value of None removes the variable)."""
    env = dict(os.environ)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_daemon_conf(conf, log_path, r, worker_id, env=None, timeout=10.0):
    """bin/redworkd -c CONF with ENV, stdout and stderr to LOG_PATH; waits
    (bounded) until R, a redis client that may read the heartbeat, sees
    redwork:worker:WORKER_ID. Returns the process; raises with the log if
    the daemon exits first."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([REDWORKD, "-c", conf], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    heartbeat = "redwork:worker:" + worker_id
    try:
        wait_until(lambda: proc.poll() is not None or r.exists(heartbeat) == 1,
                   timeout, "redworkd ready (%s)" % heartbeat)
    except TimeoutError:
        stop_process(proc)
        with open(log_path) as log:
            raise TimeoutError("redworkd not ready within %.0f s:\n%s"
                               % (timeout, log.read()))
    if proc.poll() is not None:
        with open(log_path) as log:
            raise RuntimeError("redworkd exited with %d:\n%s" % (proc.returncode, log.read()))
    return proc


def run_cli(args, env=None, timeout=30.0, stdin_text=None):
    """bin/redwork ARGS with ENV, bounded by TIMEOUT seconds. Returns the
    CompletedProcess (text stdout and stderr)."""
    return subprocess.run([REDWORK, *args], env=env, input=stdin_text,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
