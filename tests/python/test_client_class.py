"""examples/python/redwork_client.py's Client against a real redworkd.

One Client (one SUBSCRIBE callback:<client_id>) carries every call of
this file: 1000 calls in flight from 8 threads, each reply matched to its
own caller; an error reply; a timeout that leaves nothing pending; no
workers on a channel nobody serves; and, at the end, a check that the
client used one exact channel, no pattern and no per-call channel.

setUpClass starts a throwaway redis-server and bin/redworkd (handlers from
$REDWORK_ROOT/handlers, channels = request, claim = off); tearDownClass
closes the client and stops both with bounded waits.
"""

import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

import redis

from redwork_testlib import ROOT, WAIT_S, start_daemon, start_redis, stop_process, wait_until

sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
from redwork_client import Client, NoWorkers  # noqa: E402

THREADS = 8
PER_THREAD = 125  # 8 x 125 = 1000 calls in flight


class ClientClassTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-pyclient-")
        cls.redis_proc, cls.port = start_redis(cls.folder)
        cls.worker_id = "py-client-%d" % os.getpid()
        try:
            # threads = 4: a sleeping request keeps one thread busy without
            # starving the others, whatever the CPU count. queue_size above
            # the 1000 in flight, so none is answered "overloaded".
            cls.daemon, cls.r = start_daemon(
                cls.folder, cls.port, cls.worker_id,
                "channels = request\nhandlers_dir = %s\nclaim = off\n"
                "threads = 4\nqueue_size = 4096\n" % os.path.join(ROOT, "handlers"))
            cls.client = Client(cls.r)
        except Exception:
            if getattr(cls, "daemon", None) is not None:
                stop_process(cls.daemon)
            stop_process(cls.redis_proc)
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        stop_process(cls.daemon)
        stop_process(cls.redis_proc)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def test_1000_calls_in_flight_from_8_threads(self):
        errors = []
        start = threading.Barrier(THREADS)

        def worker(t):
            try:
                start.wait(timeout=WAIT_S)
                # Submit all of this thread's calls first, so that all 1000
                # are in flight together, then collect and check each.
                futures = [(i, self.client.submit({"handler": "echo", "thread": t, "i": i},
                                                  timeout=15.0))
                           for i in range(PER_THREAD)]
                for i, future in futures:
                    reply = future.result(timeout=20.0)
                    if not reply.get("ok") or reply.get("result") != {"thread": t, "i": i}:
                        errors.append("thread %d call %d: %r" % (t, i, reply))
            except Exception as e:  # reported below, with the thread
                errors.append("thread %d: %r" % (t, e))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30.0)
        self.assertFalse(any(th.is_alive() for th in threads), "a thread is stuck")
        self.assertEqual(errors, [])
        self.assertEqual(self.client.pending_count(), 0)

    def test_call_is_thread_safe(self):
        errors = []

        def worker(t):
            try:
                for i in range(25):
                    reply = self.client.call({"n": t * 1000 + i}, handler="echo")
                    if reply.get("result") != {"n": t * 1000 + i}:
                        errors.append((t, i, reply))
            except Exception as e:
                errors.append((t, repr(e)))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30.0)
        self.assertFalse(any(th.is_alive() for th in threads), "a thread is stuck")
        self.assertEqual(errors, [])

    def test_req_id_is_client_id_n_and_64_random_bits(self):
        reply = self.client.call({"handler": "echo"})
        self.assertTrue(reply["req_id"].startswith(self.client.client_id + "."), reply)
        self.assertTrue(self.client.client_id.startswith("py-"))
        n, token = reply["req_id"][len(self.client.client_id) + 1:].split(".")
        self.assertTrue(n.isdigit(), reply)
        self.assertEqual(len(token), 16, reply)
        int(token, 16)
        self.assertEqual(reply["worker"], self.worker_id)
        other = self.client.call({"handler": "echo"})
        self.assertNotEqual(other["req_id"].rsplit(".", 1)[1], token)

    def test_error_reply_is_returned(self):
        reply = self.client.call({"handler": "fail"})
        self.assertFalse(reply["ok"], reply)
        self.assertEqual(reply["error"]["code"], "handler_failed")
        self.assertEqual(reply["handler"], "fail")

    def test_timeout_forgets_the_call(self):
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.client.call({"handler": "sleep", "ms": 2000}, timeout=0.3)
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.29)
        self.assertLess(elapsed, 1.9)  # well before the 2 s reply
        self.assertEqual(self.client.pending_count(), 0)

    def test_submit_times_out_without_a_waiter(self):
        # Nobody calls result() before the deadline: the reader thread
        # expires the call on its own.
        future = self.client.submit({"handler": "sleep", "ms": 2000}, timeout=0.2)
        wait_until(future.done, WAIT_S, "the submitted call to expire")
        self.assertIsInstance(future.exception(), TimeoutError)
        self.assertEqual(self.client.pending_count(), 0)

    def test_no_workers_at_once(self):
        started = time.monotonic()
        with self.assertRaises(NoWorkers):
            self.client.call({"handler": "echo"}, channel="nobody-listens", timeout=5.0)
        self.assertLess(time.monotonic() - started, 2.0)  # not the 5 s timeout
        self.assertEqual(self.client.pending_count(), 0)

    def test_payload_req_id_is_refused(self):
        with self.assertRaises(ValueError):
            self.client.call({"req_id": "mine", "handler": "echo"})
        with self.assertRaises(ValueError):
            self.client.call({"reply_to": "callback:victim", "handler": "echo"})

    def test_zz_one_exact_channel(self):
        # Runs last (unittest sorts by name), after every other call.
        self.client.call({"handler": "echo"})
        # No patterns at all (the daemon subscribes to "request" only), and
        # one reply channel: the client's own.
        self.assertEqual(self.r.execute_command("PUBSUB", "NUMPAT"), 0)
        channels = [c.decode() if isinstance(c, bytes) else c
                    for c in self.r.pubsub_channels("callback:*")]
        self.assertEqual(channels, [self.client.reply_channel])


class ClientCloseTest(unittest.TestCase):
    """close() drops the subscription and refuses new calls."""

    def test_close(self):
        folder = tempfile.mkdtemp(prefix="redwork-pyclose-")
        redis_proc, port = start_redis(folder)
        try:
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=WAIT_S)
            client = Client(r)
            self.assertEqual(r.pubsub_numsub(client.reply_channel)[0][1], 1)
            with self.assertRaises(NoWorkers):
                client.call({"handler": "echo"}, timeout=1.0)
            client.close()
            client.close()  # idempotent
            wait_until(lambda: r.pubsub_numsub(client.reply_channel)[0][1] == 0,
                       WAIT_S, "the subscription to go")
            with self.assertRaises(ConnectionError):
                client.submit({"handler": "echo"})
        finally:
            stop_process(redis_proc)
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
