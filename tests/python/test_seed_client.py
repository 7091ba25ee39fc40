"""The seed's client code, corrected, against a real redworkd.

The seed (a Chinese article on Redis Pub/Sub "subscription and feedback")
sends {"user_id": "Alice", "req_id": 123} on `request` and waits for
"Hello, Alice!" on `callback:<req_id>`. Its client publishes first and
subscribes afterwards, so a fast server's reply can be lost; send_request()
below subscribes first, waits for the confirmation, then publishes. The
seed's PSUBSCRIBE example (`news_*`) becomes a routed request answered by
the echo handler.

setUpClass starts a throwaway redis-server (free loopback port, no
persistence, temp folder) and bin/redworkd; tearDownClass stops both with
bounded waits. Run with Debian's python3 and python3-redis:
    REDWORK_ROOT=$PWD /usr/bin/python3 -m unittest discover -s tests/python -v
"""

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

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


class SeedClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-py-")
        cls.redis_proc, cls.port = start_redis(cls.folder)
        cls.worker_id = "py-seed-%d" % os.getpid()
        conf = os.path.join(cls.folder, "redwork.ini")
        with open(conf, "w") as f:
            f.write(
                "[redis]\nhost = 127.0.0.1\nport = %d\n\n"
                "[worker]\nid = %s\nchannels = request, news_*\n"
                "handlers_dir = %s\ndefault_handler = greet\nclaim = off\n\n"
                "[routes]\nnews_* = echo\n"
                % (cls.port, cls.worker_id, os.path.join(ROOT, "handlers")))
        cls.daemon_log = open(os.path.join(cls.folder, "daemon.log"), "w")
        cls.daemon = subprocess.Popen(
            [os.path.join(ROOT, "bin", "redworkd"), "-c", conf],
            stdout=cls.daemon_log, stderr=subprocess.STDOUT)
        cls.r = redis.Redis(host="127.0.0.1", port=cls.port,
                            socket_timeout=WAIT_S, decode_responses=True)
        heartbeat = "redwork:worker:" + cls.worker_id
        try:
            wait_until(lambda: cls.daemon.poll() is not None
                       or cls.r.exists(heartbeat) == 1, 10.0, "redworkd ready")
            if cls.daemon.poll() is not None:
                raise RuntimeError("redworkd exited with %d" % cls.daemon.returncode)
        except Exception:
            cls.tearDownClass()
            raise
        cls.ids = itertools.count(1000)

    @classmethod
    def tearDownClass(cls):
        cls.daemon_status = stop_process(cls.daemon)
        cls.daemon_log.close()
        stop_process(cls.redis_proc)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def request(self, channel, payload):
        """The seed's send_request, corrected: subscribe, confirm, publish, wait.

        Returns (number of PUBLISH receivers, the reply as a dict)."""
        req_id = payload["req_id"]
        reply_channel = "callback:%s" % req_id
        p = self.r.pubsub()
        try:
            p.subscribe(reply_channel)
            confirm = p.get_message(timeout=WAIT_S)
            self.assertIsNotNone(confirm, "no subscribe confirmation")
            self.assertEqual(confirm["type"], "subscribe")
            receivers = self.r.publish(channel, json.dumps(payload))
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                msg = p.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if msg and msg["type"] == "message":
                    return receivers, json.loads(msg["data"])
            self.fail("no reply on %s within %.0f s" % (reply_channel, WAIT_S))
        finally:
            p.unsubscribe(reply_channel)
            p.close()

    def send_request(self, user_id):
        req_id = next(self.ids)
        receivers, reply = self.request("request", {"user_id": user_id, "req_id": req_id})
        self.assertGreaterEqual(receivers, 1, "no worker listened on 'request'")
        self.assertEqual(reply["req_id"], str(req_id))
        return reply

    def test_send_request_alice(self):
        reply = self.send_request("Alice")
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], "Hello, Alice!")
        self.assertEqual(reply["handler"], "greet")
        self.assertEqual(reply["worker"], self.worker_id)

    def test_psubscribe_news_is_routed_to_echo(self):
        receivers, reply = self.request(
            "news_sports", {"req_id": "news-1", "headline": "Hello, world!"})
        self.assertGreaterEqual(receivers, 1, "no worker matched news_*")
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["handler"], "echo")
        self.assertEqual(reply["result"], {"headline": "Hello, world!"})


if __name__ == "__main__":
    unittest.main()
