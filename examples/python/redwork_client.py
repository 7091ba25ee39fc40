#!/usr/bin/python3
"""A small redis-py client for redwork's wire protocol v1.

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
"""

import argparse
import json
import sys
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
