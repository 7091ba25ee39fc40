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
import tempfile
import time
import unittest

from redwork_testlib import ROOT, WAIT_S, start_daemon, start_redis, stop_process

class SeedClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-py-")
        cls.redis_proc, cls.port = start_redis(cls.folder)
        cls.worker_id = "py-seed-%d" % os.getpid()
        try:
            cls.daemon, cls.r = start_daemon(
                cls.folder, cls.port, cls.worker_id,
                "channels = request, news_*\nhandlers_dir = %s\n"
                "default_handler = greet\nclaim = off\n"
                % os.path.join(ROOT, "handlers"),
                "[routes]\nnews_* = echo\n")
        except Exception:
            stop_process(cls.redis_proc)
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise
        cls.ids = itertools.count(1000)

    @classmethod
    def tearDownClass(cls):
        cls.daemon_status = stop_process(cls.daemon)
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
        self.assertEqual(reply["req_id"], req_id)  # an integer id comes back an integer
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
