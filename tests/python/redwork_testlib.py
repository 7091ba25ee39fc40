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


def start_redis(folder):
    """redis-server on a free port (retried), answering PING. Returns (proc, port)."""
    for _ in range(5):
        port = free_port()
        log = open(os.path.join(folder, "redis.log"), "w")
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)

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
        if proc.poll() is None and answers():
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
