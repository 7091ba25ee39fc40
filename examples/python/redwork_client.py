#!/usr/bin/python3
"""A small redis-py client for redwork's wire protocol (1.1).

    import redis, redwork_client
    r = redis.Redis(host="127.0.0.1", port=6379)
    reply = redwork_client.call(r, "request", {"user_id": "Alice"})
    # {'req_id': '...', 'ok': True, 'result': 'Hello, Alice!', 'handler': 'greet', ...}

call() sends one request and waits for its one reply:

1. It picks a unique req_id (uuid4 hex) unless the payload has one.
2. It SUBSCRIBEs to callback:<req_id> and waits until Redis confirms the
   subscription.
3. Only then it PUBLISHes the JSON request on the request channel.
4. It waits for the reply on callback:<req_id> until the deadline,
   unsubscribes, and returns the parsed reply.

Why subscribe before publish: Redis Pub/Sub keeps nothing. A message
published on callback:<req_id> while nobody is subscribed to it is dropped.
The client in redwork's seed document publishes the request first and
subscribes afterwards, so a fast worker can publish the reply in between and
that client then waits forever. Subscribing first (and waiting for the
confirmation, since SUBSCRIBE is asynchronous on the wire) closes that window.

No responders: PUBLISH returns how many subscribers received the request.
If it is 0, no worker listens on that channel and no reply can come, so
call() raises NoWorkers at once instead of waiting for the timeout.

Works with redis-py 4.3 (Debian bookworm's python3-redis) and later. A
redis.Redis object may be shared between threads; call() makes its own
PubSub object per call.

For many calls, use a Client: it subscribes once, to its own channel
callback:<client_id>, names it in every request's reply_to, and matches
each reply to its caller by req_id, so a call costs one PUBLISH and no
SUBSCRIBE/UNSUBSCRIBE round trips:

    with redwork_client.Client(r) as client:
        reply = client.call({"user_id": "Alice"})          # blocks, thread-safe
        future = client.submit({"handler": "echo", "n": 1}) # returns at once
        print(future.result()["result"])
"""

import argparse
import concurrent.futures
import heapq
import itertools
import json
import secrets
import sys
import threading
import time
import uuid

import redis

REPLY_PREFIX = "callback:"


class NoWorkers(Exception):
    """PUBLISH reached no subscriber: no worker serves the channel."""


def call(r, channel, payload, timeout=5.0, reply_prefix=REPLY_PREFIX):
    """Sends PAYLOAD (a dict) on CHANNEL and returns the reply as a dict.

    The request's req_id is payload["req_id"] if present, else a new uuid4
    hex string; PAYLOAD itself is not modified. Raises NoWorkers if nobody is
    subscribed to CHANNEL, TimeoutError if no reply arrives within TIMEOUT
    seconds, and redis.RedisError on connection trouble. A reply with
    "ok": false is returned, not raised: look at reply["error"]["code"].
    """
    request = dict(payload)
    if "req_id" not in request:
        request["req_id"] = uuid.uuid4().hex
    req_id = str(request["req_id"])
    reply_channel = reply_prefix + req_id
    deadline = time.monotonic() + timeout

    p = r.pubsub()
    try:
        # 1. Subscribe first and wait for Redis to confirm it.
        p.subscribe(reply_channel)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no subscribe confirmation for %s" % reply_channel)
            msg = p.get_message(timeout=left)
            if msg is not None and msg["type"] == "subscribe":
                break

        # 2. Now the reply cannot be missed: publish the request.
        receivers = r.publish(channel, json.dumps(request, separators=(",", ":")))
        if receivers == 0:
            raise NoWorkers("no worker is subscribed to channel %r" % channel)

        # 3. Wait for the reply until the deadline.
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    "no reply on %s within %.1f s" % (reply_channel, timeout))
            msg = p.get_message(timeout=left)
            if msg is None or msg["type"] != "message":
                continue
            return json.loads(msg["data"])
    finally:
        try:
            p.unsubscribe()
        except redis.RedisError:
            pass  # the connection is going away anyway
        p.close()


class Client:
    """Many redwork calls in flight over one subscription.

        client = Client(redis.Redis(host="127.0.0.1", port=6379))
        reply = client.call({"user_id": "Alice"})   # from any thread
        client.close()

    How it works:

    - The client has an id, "py-" + uuid4 hex: unique across processes and
      hosts. Every request names the channel callback:<client_id> in its
      reply_to field (protocol 1.1), so every reply comes there.
    - The constructor SUBSCRIBEs once to that one channel -- exactly, not a
      pattern: Redis matches every PUBLISH against every pattern
      subscription, so many idle pattern clients would slow every reply
      down -- and waits for Redis to confirm it. Every request is published
      after that, so no reply can be missed.
    - Its req_ids are "<client_id>.<n>.<64 random bits in hex>": one who
      sees the client's earlier ids cannot guess the next and answer first.
    - A background thread reads that connection and hands each reply to the
      Future registered under the reply's req_id in self._pending.
    - submit() registers the Future first and then PUBLISHes, on the
      redis.Redis connection pool (thread-safe). PUBLISH returning 0 means
      no worker serves the channel: the Future fails with NoWorkers at once.
    - A request with no reply by its deadline fails with TimeoutError and
      leaves self._pending; a late reply for it is ignored.

    R is a redis.Redis (with or without decode_responses); the subscription
    uses a connection of its pool. The payload's own "req_id" or
    "reply_to", if any, is refused (ValueError): the client sets them.
    """

    # How often the reader thread wakes up to check deadlines and close().
    TICK_S = 0.05

    def __init__(self, r, reply_prefix=REPLY_PREFIX, subscribe_timeout=5.0):
        self._r = r
        self.client_id = "py-" + uuid.uuid4().hex
        self._lock = threading.Lock()
        self._pending = {}        # req_id -> Future, guarded by _lock
        self._deadlines = []      # heap of (deadline, req_id), guarded by _lock
        self._counter = itertools.count(1)
        self._closed = False
        self._stop = threading.Event()

        # One subscription for every call of this client, confirmed before
        # anything is published.
        self.reply_channel = reply_prefix + self.client_id
        self._pubsub = r.pubsub()
        try:
            self._pubsub.subscribe(self.reply_channel)
            deadline = time.monotonic() + subscribe_timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no subscribe confirmation for " + self.reply_channel)
                msg = self._pubsub.get_message(timeout=left)
                if msg is not None and msg["type"] == "subscribe":
                    break
        except BaseException:
            self._pubsub.close()
            raise

        self._reader = threading.Thread(
            target=self._read_replies, name="redwork-client-" + self.client_id,
            daemon=True)
        self._reader.start()

    # --- public API --------------------------------------------------------

    def submit(self, payload, channel="request", timeout=5.0, handler=None):
        """Publishes PAYLOAD (a dict) on CHANNEL; returns a Future of the reply.

        The Future's result is the reply dict ("ok": false replies included).
        It fails with NoWorkers if nobody serves CHANNEL, TimeoutError if no
        reply comes within TIMEOUT seconds, redis.RedisError if the PUBLISH
        fails, and ConnectionError if the client is closed first. HANDLER, if
        given, sets the request's "handler" field.
        """
        return self._submit(payload, channel, timeout, handler)[1]

    def call(self, payload, channel="request", timeout=5.0, handler=None):
        """Sends PAYLOAD on CHANNEL and returns the reply dict; thread-safe.

        Raises NoWorkers at once if nobody serves CHANNEL, TimeoutError at
        the deadline (the request is then forgotten: a late reply is
        ignored), redis.RedisError if the PUBLISH fails. An "ok": false
        reply is returned, not raised: look at reply["error"]["code"].
        """
        req_id, future = self._submit(payload, channel, timeout, handler)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            # (The same class as the built-in TimeoutError from Python 3.11.)
            # Our deadline came before the reader thread's next check: drop
            # the request now. If the reply won that race, _fail() does
            # nothing and the result below is the reply.
            self._fail(req_id, TimeoutError(
                "no reply for %s within %.3g s" % (req_id, timeout)))
            return future.result()

    def pending_count(self):
        """How many requests wait for their reply (for tests and metrics)."""
        with self._lock:
            return len(self._pending)

    def close(self):
        """Stops the reader thread, fails the calls still waiting with
        ConnectionError, and drops the subscription. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if threading.current_thread() is not self._reader:
            self._reader.join()  # (close() from a Future callback runs on it)
        with self._lock:
            left, self._pending = self._pending, {}
            self._deadlines = []
        for future in left.values():
            future.set_exception(ConnectionError("redwork Client closed"))
        try:
            self._pubsub.unsubscribe()
        except Exception:
            pass  # the connection is going away anyway
        self._pubsub.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals ---------------------------------------------------------

    def _submit(self, payload, channel, timeout, handler):
        """submit(), returning (req_id, Future)."""
        if "req_id" in payload or "reply_to" in payload:
            raise ValueError("Client sets req_id and reply_to; leave them out of the payload")
        request = dict(payload)
        request["reply_to"] = self.reply_channel
        if handler is not None:
            request["handler"] = handler
        future = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise ConnectionError("redwork Client is closed")
            req_id = "%s.%d.%s" % (self.client_id, next(self._counter),
                                    secrets.token_hex(8))
            request["req_id"] = req_id
            # Registered before the PUBLISH: the reply may come before
            # PUBLISH has even returned.
            self._pending[req_id] = future
            heapq.heappush(self._deadlines, (time.monotonic() + timeout, req_id))

        try:
            receivers = self._r.publish(channel, json.dumps(request, separators=(",", ":")))
        except Exception as e:
            self._fail(req_id, e)
        else:
            if receivers == 0:
                self._fail(req_id, NoWorkers("no worker is subscribed to channel %r" % channel))
        return req_id, future

    def _fail(self, req_id, error):
        """Fails the pending request REQ_ID with ERROR. Returns False if it
        was no longer pending (answered, expired or failed already)."""
        with self._lock:
            future = self._pending.pop(req_id, None)
        if future is None:
            return False
        future.set_exception(error)
        return True

    def _expire(self):
        """Fails every pending request whose deadline has passed."""
        now = time.monotonic()
        expired = []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, req_id = heapq.heappop(self._deadlines)
                future = self._pending.pop(req_id, None)
                if future is not None:  # else: answered already
                    expired.append((req_id, future))
        for req_id, future in expired:
            future.set_exception(TimeoutError("no reply for %s in time" % req_id))

    def _deliver(self, msg):
        """Resolves the Future of the reply MSG (a message on our channel)."""
        try:
            reply = json.loads(msg["data"])
            req_id = reply["req_id"]
        except (ValueError, TypeError, KeyError):
            return  # not a reply envelope: nobody to give it to
        with self._lock:
            future = self._pending.pop(req_id, None) if isinstance(req_id, str) else None
        if future is not None:  # else a late reply: its caller has timed out
            future.set_result(reply)

    def _read_replies(self):
        """The reader thread: replies in, deadlines out, until close()."""
        while not self._stop.is_set():
            try:
                msg = self._pubsub.get_message(timeout=self.TICK_S)
            except Exception:
                # Connection trouble. redis-py reconnects and subscribes
                # again on the next read; replies published meanwhile are
                # lost and their calls end at their deadline.
                self._stop.wait(0.1)
                msg = None
            if msg is not None and msg["type"] == "message":
                self._deliver(msg)
            self._expire()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Send one redwork request and print its reply.",
        epilog="example: %(prog)s request '{\"user_id\":\"Alice\"}'")
    ap.add_argument("--host", default="127.0.0.1", help="Redis host (127.0.0.1)")
    ap.add_argument("--port", type=int, default=6379, help="Redis port (6379)")
    ap.add_argument("--db", type=int, default=0, help="Redis database (0)")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds to wait for the reply (5)")
    ap.add_argument("channel", metavar="CHANNEL", help="request channel, e.g. request")
    ap.add_argument("json", metavar="JSON", help="the request object; req_id is added if absent")
    args = ap.parse_args(argv)

    try:
        payload = json.loads(args.json)
    except ValueError as e:
        ap.error("JSON: %s" % e)
    if not isinstance(payload, dict):
        ap.error("JSON must be an object")

    r = redis.Redis(host=args.host, port=args.port, db=args.db,
                    socket_connect_timeout=args.timeout)
    try:
        reply = call(r, args.channel, payload, timeout=args.timeout)
    except NoWorkers as e:
        print("no_workers: %s" % e, file=sys.stderr)
        return 2
    except TimeoutError as e:
        print("timeout: %s" % e, file=sys.stderr)
        return 2
    except redis.RedisError as e:
        print("redis: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(reply))
    return 0 if isinstance(reply, dict) and reply.get("ok") is True else 1


if __name__ == "__main__":
    sys.exit(main())
