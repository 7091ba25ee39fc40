"""Security tests: SECURITY.md's promises, against a real redis-server, the
real bin/redworkd and the real bin/redwork.

- PasswordTest: redis-server --requirepass; the daemon and the CLI send the
  password alone (AUTH with one argument), read from the variable that
  [redis] password_env names (the ini file never holds it). A wrong password
  makes the daemon exit 69 at once, with the server's answer and host:port,
  without retrying; the CLI exits 2.
- AclUserTest: the ACL users of SECURITY.md, made by running the
  `ACL SETUSER` lines read from SECURITY.md itself (so the document is what
  is tested), with a Pub/Sub daemon (channels = request, news_*, claim = on,
  reply_store = list) and a stream daemon (transport = stream, channels =
  jobs), both as redwork-worker, called through `bin/redwork -c client.ini`
  as redwork-client. Redis' ACL LOG must stay empty while they work; what
  the users must not do is refused.
- ClaimRetryAclTest: a daemon whose claim connection loses the answer of a
  SET NX that Redis did execute (a TCP proxy drops that one answer and
  closes the connection) must still serve the request: its retry reads the
  claim's owner with GET, so the worker user needs GET on claim keys.
- FloodTest: 100,000 junk messages (99,000 that cannot be answered, 1,000
  with a usable req_id that must each get exactly one bad_request), then
  good requests are served, the heartbeat's `rejected` counts exactly the
  unanswerable ones, and the log stays short (rate-limited) but complete
  (the suppressed lines account for every rejection).

Every wait polls a condition until a deadline. Run with Debian's python3:
    REDWORK_ROOT=$PWD /usr/bin/python3 -m unittest discover -s tests/python \
        -p 'test_security.py' -v
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import redis

from redwork_testlib import (REDWORKD, ROOT, WAIT_S, child_env, run_cli,
                             start_daemon_conf, start_redis, stop_process,
                             wait_until, write_file)

HANDLERS = os.path.join(ROOT, "handlers")
SECURITY_MD = os.path.join(ROOT, "SECURITY.md")
PW_VAR = "RW_TEST_PW"
WORKER_PW = "wpw-3f9c1e"
CLIENT_PW = "cpw-81d07a"
ADMIN_PW = "apw-5e62b4"


def acl_setuser_lines(path=SECURITY_MD):
    """The indented `ACL SETUSER <name> ...` commands of PATH (backslash
    continuations joined), split like a shell would: {name: [args]}."""
    with open(path) as f:
        lines = f.read().splitlines()
    commands = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    ACL SETUSER "):
            text = line.strip()
            while text.endswith("\\"):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            args = shlex.split(text)
            commands[args[2]] = args
        i += 1
    return commands


def create_users_from_security_md(admin, passwords):
    """Runs SECURITY.md's ACL SETUSER lines on ADMIN with the passwords of
    PASSWORDS ({user: password}) in place of the placeholders. Returns the
    commands run."""
    commands = acl_setuser_lines()
    ran = {}
    for name, password in passwords.items():
        if name not in commands:
            raise AssertionError("SECURITY.md has no `ACL SETUSER %s` line" % name)
        args = [">" + password if a.startswith(">") else a for a in commands[name]]
        admin.execute_command("ACL", "DELUSER", name)
        admin.execute_command(*args)
        ran[name] = args
    return ran


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def heartbeat(r, worker_id):
    return r.hgetall("redwork:worker:" + worker_id)


def acl_denials(admin, users):
    """ACL LOG entries (as dicts) for USERS."""
    entries = []
    for raw in admin.execute_command("ACL", "LOG"):
        e = dict(zip(raw[0::2], raw[1::2]))
        e = {(k.decode() if isinstance(k, bytes) else k):
             (v.decode() if isinstance(v, bytes) else v) for k, v in e.items()}
        if e.get("username") in users:
            entries.append(e)
    return entries


# ---------------------------------------------------------------------------


class PasswordTest(unittest.TestCase):
    """requirepass: AUTH with one argument."""

    PASSWORD = "s3cret-7d2b0a91"

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-sec-pw-")
        cls.redis_proc, cls.port = start_redis(
            cls.folder, ("--requirepass", cls.PASSWORD), password=cls.PASSWORD)
        cls.r = redis.Redis(host="127.0.0.1", port=cls.port, password=cls.PASSWORD,
                            socket_timeout=WAIT_S, decode_responses=True)
        cls.worker_id = "sec-pw-%d" % os.getpid()
        cls.ini = write_file(os.path.join(cls.folder, "redwork.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\npassword_env = %s\n\n"
            "[worker]\nid = %s\nchannels = request\nhandlers_dir = %s\nclaim = off\n"
            "threads = 2\n" % (cls.port, PW_VAR, cls.worker_id, HANDLERS))
        cls.log = os.path.join(cls.folder, "daemon.log")
        try:
            cls.daemon = start_daemon_conf(cls.ini, cls.log, cls.r, cls.worker_id,
                                           env=child_env(**{PW_VAR: cls.PASSWORD}))
        except Exception:
            stop_process(cls.redis_proc)
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.daemon)
        stop_process(cls.redis_proc)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def auth_failures(self):
        """Failed AUTHs so far, from the ACL LOG (Redis 7.0's INFO has no
        counter for them)."""
        return sum(int(e["count"]) for e in acl_denials(self.r, ("default",))
                   if e["reason"] == "auth")

    def test_call_with_password_from_env(self):
        self.assertNotIn(self.PASSWORD, read(self.ini))
        res = run_cli(["-c", self.ini, "call", "echo", '{"n":7}'],
                      env=child_env(**{PW_VAR: self.PASSWORD}))
        self.assertEqual(res.returncode, 0, res.stderr)
        reply = json.loads(res.stdout)
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], {"n": 7})
        self.assertEqual(reply["worker"], self.worker_id)
        # Both sides authenticated as the default user (no user name sent).
        users = {c["user"] for c in self.r.client_list()}
        self.assertEqual(users, {"default"})
        self.assertNotIn(self.PASSWORD, read(self.log))

    def test_daemon_wrong_password_exits_69_at_once(self):
        conf = write_file(os.path.join(self.folder, "wrong.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\npassword_env = %s\n\n"
            "[worker]\nid = sec-wrong\nchannels = request\nhandlers_dir = %s\n"
            % (self.port, PW_VAR, HANDLERS))
        wrong = "not-the-password-51c7"
        before = self.auth_failures()
        conns_before = int(self.r.info("stats")["total_connections_received"])
        start = time.monotonic()
        proc = subprocess.Popen([REDWORKD, "-c", conf], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=child_env(**{PW_VAR: wrong}))
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=5)
            self.fail("redworkd did not exit within 10 s with a wrong password:\n" + err)
        elapsed = time.monotonic() - start
        self.assertEqual(proc.returncode, 69, err)
        self.assertLess(elapsed, 3.0, "took %.2f s to give up" % elapsed)
        self.assertRegex(err, r"WRONGPASS|invalid username-password pair")
        self.assertIn("127.0.0.1:%d" % self.port, err)
        self.assertNotIn(wrong, err + out)
        # It tried once: one failed AUTH, one connection (ours is the other).
        self.assertEqual(self.auth_failures() - before, 1)
        conns = int(self.r.info("stats")["total_connections_received"]) - conns_before
        self.assertLessEqual(conns, 1, "the daemon connected %d times" % conns)

    def run_daemon_to_exit(self, conf, env):
        proc = subprocess.Popen([REDWORKD, "-c", conf], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
            self.fail("redworkd did not exit within 10 s")
        return proc.returncode, err

    def test_daemon_without_password(self):
        """password_env names an unset variable: a config error (78) naming
        it. An empty one: no AUTH is sent, the server refuses the
        subscription, the daemon says so and exits 69."""
        conf = write_file(os.path.join(self.folder, "nopw.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\npassword_env = %s\n\n"
            "[worker]\nid = sec-nopw\nchannels = request\nhandlers_dir = %s\n"
            % (self.port, PW_VAR, HANDLERS))
        status, err = self.run_daemon_to_exit(conf, child_env(**{PW_VAR: None}))
        self.assertEqual(status, 78, err)
        self.assertIn(PW_VAR, err)
        status, err = self.run_daemon_to_exit(conf, child_env(**{PW_VAR: ""}))
        self.assertEqual(status, 69, err)
        self.assertIn("NOAUTH", err)

    def test_cli_wrong_password_exits_2(self):
        wrong = "also-wrong-0e4f"
        res = run_cli(["-c", self.ini, "call", "echo", "{}"],
                      env=child_env(**{PW_VAR: wrong}), timeout=15)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertEqual(res.stdout, "")
        self.assertRegex(res.stderr, r"WRONGPASS|invalid username-password pair")
        self.assertIn("127.0.0.1:%d" % self.port, res.stderr)
        self.assertNotIn(wrong, res.stderr)


# ---------------------------------------------------------------------------


class AclUserTest(unittest.TestCase):
    """SECURITY.md's least-privilege users: AUTH with two arguments."""

    USERS = ("redwork-worker", "redwork-client", "redwork-client-stored")

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-sec-acl-")
        f = cls.folder
        cls.redis_proc, cls.port = start_redis(f)
        cls.daemons = []
        try:
            # An admin user, and the default user off: a program that does
            # not log in as its ACL user gets nothing done.
            boot = redis.Redis(host="127.0.0.1", port=cls.port, socket_timeout=WAIT_S)
            boot.execute_command("ACL", "SETUSER", "admin", "on", ">" + ADMIN_PW,
                                 "~*", "&*", "+@all")
            boot.execute_command("ACL", "SETUSER", "default", "off")
            boot.connection_pool.disconnect()
            cls.admin = redis.Redis(host="127.0.0.1", port=cls.port, username="admin",
                                    password=ADMIN_PW, socket_timeout=WAIT_S,
                                    decode_responses=True)
            cls.acl = create_users_from_security_md(
                cls.admin, {"redwork-worker": WORKER_PW, "redwork-client": CLIENT_PW,
                            "redwork-client-stored": CLIENT_PW})
            redis_section = ("[redis]\nhost = 127.0.0.1\nport = %d\nusername = %%s\n"
                             "password_env = %s\n\n" % (cls.port, PW_VAR))
            cls.worker_env = child_env(**{PW_VAR: WORKER_PW})
            cls.client_env = child_env(**{PW_VAR: CLIENT_PW})

            cls.pubsub_id = "sec-acl-pubsub-%d" % os.getpid()
            cls.pubsub_ini = write_file(os.path.join(f, "worker.ini"),
                redis_section % "redwork-worker" +
                "[worker]\nid = %s\nchannels = request, news_*\nhandlers_dir = %s\n"
                "claim = on\nreply_store = list\nthreads = 2\n\n[routes]\nnews_* = echo\n"
                % (cls.pubsub_id, HANDLERS))
            cls.pubsub_log = os.path.join(f, "worker.log")
            cls.daemons.append(start_daemon_conf(cls.pubsub_ini, cls.pubsub_log, cls.admin,
                                                 cls.pubsub_id, env=cls.worker_env))

            cls.stream_id = "sec-acl-stream-%d" % os.getpid()
            cls.stream_ini = write_file(os.path.join(f, "worker-stream.ini"),
                redis_section % "redwork-worker" +
                "[worker]\nid = %s\ntransport = stream\nchannels = jobs\n"
                "handlers_dir = %s\nthreads = 2\n" % (cls.stream_id, HANDLERS))
            cls.stream_log = os.path.join(f, "worker-stream.log")
            cls.daemons.append(start_daemon_conf(cls.stream_ini, cls.stream_log, cls.admin,
                                                 cls.stream_id, env=cls.worker_env))

            # A 1.1 client: one exact reply channel, named in reply_to.
            cls.client_ini = write_file(os.path.join(f, "client.ini"),
                redis_section % "redwork-client" +
                "[worker]\nchannels = request, news_*\n")
            # A client that fetches stored replies: the wider user.
            cls.client_stored_ini = write_file(os.path.join(f, "client-stored.ini"),
                redis_section % "redwork-client-stored" +
                "[worker]\nchannels = request, news_*\nreply_store = list\n")
            cls.client_stream_ini = write_file(os.path.join(f, "client-stream.ini"),
                redis_section % "redwork-client" +
                "[worker]\ntransport = stream\nchannels = jobs\n")
        except Exception:
            for d in cls.daemons:
                stop_process(d)
            stop_process(cls.redis_proc)
            shutil.rmtree(f, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        for d in cls.daemons:
            stop_process(d)
        stop_process(cls.redis_proc)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def setUp(self):
        self.admin.execute_command("ACL", "LOG", "RESET")

    def assert_nothing_refused(self):
        """Neither user was refused anything (Redis' ACL LOG), the daemons
        logged no refusal and lost no reply."""
        # A heartbeat (~1 s) and a stream trim (1 s) run in between.
        time.sleep(1.2)
        self.assertEqual(acl_denials(self.admin, self.USERS), [])
        for log, wid in ((self.pubsub_log, self.pubsub_id),
                         (self.stream_log, self.stream_id)):
            text = read(log)
            self.assertNotIn("NOPERM", text)
            self.assertNotIn("refused", text)
            self.assertEqual(heartbeat(self.admin, wid).get("lost"), "0")

    def call(self, ini, *args, env=None):
        res = run_cli(["-c", ini, *args], env=env or self.client_env)
        return res

    def test_call_on_request_channel(self):
        res = self.call(self.client_ini, "call", "echo", '{"n":1}')
        self.assertEqual(res.returncode, 0, res.stderr)
        reply = json.loads(res.stdout)
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], {"n": 1})
        self.assertEqual(reply["worker"], self.pubsub_id)
        # SET NX PX (the claim), RPUSH + PEXPIRE (the stored reply, at the
        # client's reply_to channel <prefix><client id>) ran.
        req_id = reply["req_id"]
        self.assertEqual(self.admin.get("redwork:claim:" + req_id), self.pubsub_id)
        reply_to = "callback:" + req_id.split(".")[0]
        self.assertTrue(reply_to.startswith("callback:rw-"), reply_to)
        stored = self.admin.lrange(reply_to, 0, -1)
        self.assertIn(req_id, [json.loads(s)["req_id"] for s in stored])
        self.assertGreater(self.admin.pttl(reply_to), 0)
        # The daemons are logged in as redwork-worker (the default user is
        # off, so the client was logged in as redwork-client).
        users = {c["user"] for c in self.admin.client_list()}
        self.assertIn("redwork-worker", users)
        self.assertLessEqual(users, {"admin", "redwork-worker", "redwork-client"})
        self.assert_nothing_refused()

    def test_call_with_stored_replies(self):
        res = self.call(self.client_stored_ini, "call", "echo", '{"n":2}')
        self.assertEqual(res.returncode, 0, res.stderr)
        reply = json.loads(res.stdout)
        self.assertTrue(reply["ok"], reply)
        stored = self.admin.lrange("callback:" + reply["req_id"], 0, -1)
        self.assertEqual([json.loads(s)["req_id"] for s in stored], [reply["req_id"]])
        self.assert_nothing_refused()

    def test_call_with_an_application_client_name(self):
        # A per-application user: SECURITY.md's client line with its own
        # prefix; the client names its id with --client-name.
        args = [a.replace("&callback:rw-*", "&callback:billing-*")
                for a in self.acl["redwork-client"]]
        args[2] = "redwork-billing"
        self.admin.execute_command(*args)
        self.addCleanup(self.admin.execute_command, "ACL", "DELUSER", "redwork-billing")
        conf = write_file(os.path.join(self.folder, "client-billing.ini"),
                          read(self.client_ini).replace("redwork-client", "redwork-billing"))
        res = self.call(conf, "--client-name", "billing", "call", "echo", '{"n":3}')
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(json.loads(res.stdout)["req_id"].startswith("billing-"), res.stdout)
        res = self.call(conf, "call", "echo", '{"n":4}')  # rw-...: not its channel
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("NOPERM", res.stderr)

    def test_call_on_pattern_channel(self):
        res = self.call(self.client_ini, "--channel", "news_sports", "call", "echo",
                        '{"headline":"hi"}')
        self.assertEqual(res.returncode, 0, res.stderr)
        reply = json.loads(res.stdout)
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], {"headline": "hi"})
        self.assertEqual(reply["worker"], self.pubsub_id)
        self.assert_nothing_refused()

    def test_call_on_stream(self):
        res = run_cli(["--transport", "stream", "-c", self.client_stream_ini,
                       "call", "echo", "{}"], env=self.client_env)
        self.assertEqual(res.returncode, 0, res.stderr)
        reply = json.loads(res.stdout)
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], {})
        self.assertEqual(reply["worker"], self.stream_id)
        # XACK + XDEL in the reply's round trip: nothing left pending.
        wait_until(lambda: self.admin.xpending("jobs", "redwork")["pending"] == 0,
                   WAIT_S, "jobs entries acknowledged")
        self.assert_nothing_refused()

    def test_stats_needs_the_extra_grant(self):
        res = self.call(self.client_ini, "stats", "--json")
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("NOPERM", res.stderr)
        try:
            self.admin.execute_command("ACL", "SETUSER", "redwork-client",
                                       "+scan", "+hgetall", "~redwork:worker:*")
            res = self.call(self.client_ini, "stats", "--json")
            self.assertEqual(res.returncode, 0, res.stderr)
            ids = {w["id"] for w in json.loads(res.stdout)}
            self.assertEqual(ids, {self.pubsub_id, self.stream_id})
        finally:  # back to SECURITY.md's line
            create_users_from_security_md(self.admin, {"redwork-client": CLIENT_PW})

    def user_client(self, user, password):
        r = redis.Redis(host="127.0.0.1", port=self.port, username=user,
                        password=password, socket_timeout=WAIT_S)
        self.addCleanup(r.close)
        self.assertTrue(r.ping())
        return r

    @staticmethod
    def subscribe(r, command, channel):
        """COMMAND CHANNEL on a connection of its own; returns the answer
        (or raises the refusal)."""
        conn = r.connection_pool.make_connection()
        try:
            conn.send_command(command, channel)
            return conn.read_response()
        finally:
            conn.disconnect()

    def assert_refused(self, fn, *args):
        with self.assertRaises(redis.exceptions.ResponseError,
                               msg="%s%r was allowed" % (fn.__name__, args)) as cm:
            fn(*args)
        self.assertIn("no permissions", str(cm.exception))

    def test_worker_user_is_confined(self):
        self.admin.set("somekey", "x")
        w = self.user_client("redwork-worker", WORKER_PW)
        self.assert_refused(w.keys, "*")
        self.assert_refused(w.flushall)
        self.assert_refused(w.flushdb)
        self.assert_refused(w.get, "somekey")
        self.assert_refused(w.set, "somekey", "y")
        self.assert_refused(w.delete, "somekey")
        self.assert_refused(w.publish, "otherchannel", "x")
        self.assert_refused(w.config_get, "*")
        self.assert_refused(w.eval, "return 1", 0)
        self.assert_refused(w.execute_command, "ACL", "WHOAMI")
        self.assert_refused(self.subscribe, w, "SUBSCRIBE", "otherchannel")
        self.assert_refused(self.subscribe, w, "PSUBSCRIBE", "other*")
        self.assert_refused(self.subscribe, w, "PSUBSCRIBE", "*")
        self.assertEqual(self.admin.get("somekey"), "x")
        # ...and it can do what it needs (the same session, to show the
        # refusals are about the commands).
        self.assertTrue(w.set("redwork:claim:sec-test", "me", nx=True, px=1000))

    def test_client_user_is_confined(self):
        c = self.user_client("redwork-client", CLIENT_PW)
        self.assert_refused(c.keys, "*")
        self.assert_refused(c.flushall)
        self.assert_refused(c.get, "redwork:claim:x")
        # It cannot claim a request, fake a worker's heartbeat, or publish
        # a forged reply.
        self.assert_refused(c.set, "redwork:claim:x", "me")
        self.assert_refused(c.hset, "redwork:worker:fake", "pid", "1")
        self.assert_refused(c.publish, "callback:someone-else", '{"ok":true}')
        self.assert_refused(c.publish, "callback:rw-0123456789abcdef", '{"ok":true}')
        self.assert_refused(c.publish, "otherchannel", "x")
        self.assert_refused(c.xadd, "otherstream", {"msg": "{}"})
        self.assert_refused(c.lpop, "redwork:worker:x")
        self.assert_refused(c.lpop, "callback:rw-0123456789abcdef")
        # It cannot listen to the requests (and learn other callers' ids),
        # nor to replies but its own kind's, nor on any pattern.
        self.assert_refused(self.subscribe, c, "SUBSCRIBE", "request")
        self.assert_refused(self.subscribe, c, "SUBSCRIBE", "news_sports")
        self.assert_refused(self.subscribe, c, "PSUBSCRIBE", "news_*")
        self.assert_refused(self.subscribe, c, "PSUBSCRIBE", "callback:*")
        self.assert_refused(self.subscribe, c, "PSUBSCRIBE", "*")
        self.assert_refused(self.subscribe, c, "SUBSCRIBE", "callback:billing-x")
        # ...and it can publish a request and listen on a reply channel.
        self.assertEqual(self.subscribe(c, "SUBSCRIBE", "callback:rw-0123456789abcdef")[0],
                         b"subscribe")
        self.assertGreaterEqual(c.publish("request", "{}"), 0)

    def test_worker_refused_an_ungranted_channel_exits_69(self):
        conf = write_file(os.path.join(self.folder, "worker-other.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\nusername = redwork-worker\n"
            "password_env = %s\n\n[worker]\nid = sec-acl-other\n"
            "channels = request, other_*\nhandlers_dir = %s\n"
            % (self.port, PW_VAR, HANDLERS))
        proc = subprocess.Popen([REDWORKD, "-c", conf], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.worker_env)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
            self.fail("redworkd kept running with a channel its user may not read")
        self.assertEqual(proc.returncode, 69, err)
        self.assertIn("NOPERM", err)

    def test_worker_wrong_password_exits_69(self):
        wrong = "wrong-worker-pw-9a"
        conf = write_file(os.path.join(self.folder, "worker-wrong.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\nusername = redwork-worker\n"
            "password_env = %s\n\n[worker]\nid = sec-acl-wrong\nchannels = request\n"
            "handlers_dir = %s\n" % (self.port, PW_VAR, HANDLERS))
        start = time.monotonic()
        proc = subprocess.Popen([REDWORKD, "-c", conf], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=child_env(**{PW_VAR: wrong}))
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
            self.fail("redworkd did not exit within 10 s with a wrong password")
        self.assertEqual(proc.returncode, 69, err)
        self.assertLess(time.monotonic() - start, 3.0)
        self.assertRegex(err, r"WRONGPASS|invalid username-password pair")
        self.assertIn("127.0.0.1:%d" % self.port, err)
        self.assertNotIn(wrong, err)


# ---------------------------------------------------------------------------


class DropOneAnswerProxy:
    """A TCP proxy to Redis that, once, forwards a command whose bytes
    contain MARKER and then drops the server's answer to it and closes both
    sides: the command ran, its sender never learns it. Every socket wait
    is bounded; stop() ends the threads."""

    def __init__(self, upstream_port, marker):
        self.upstream_port = upstream_port
        self.marker = marker
        self.armed = True
        self.dropped = threading.Event()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def accept_loop(self):
        while not self.stopping.is_set():
            try:
                down, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            for s in (down, up):
                s.settimeout(0.1)
            state = {"kill": False}
            with self.lock:
                self.sockets += [down, up]
            for args in ((down, up, state, True), (up, down, state, False)):
                t = threading.Thread(target=self.pump, args=args, daemon=True)
                t.start()
                self.threads.append(t)

    def pump(self, src, dst, state, to_server):
        while not self.stopping.is_set():
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if to_server:
                with self.lock:
                    if self.armed and self.marker in data:
                        self.armed = False
                        state["kill"] = True  # before the server can answer
            elif state["kill"]:
                self.dropped.set()
                break  # the answer is dropped
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=2)
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                s.close()


class ClaimRetryAclTest(unittest.TestCase):
    """The claim connection breaks after Redis ran a SET NX but before its
    answer arrived. The daemon reconnects and claims again: SET NX now
    answers nil (the key is its own), and only GET tells it the claim is
    its own. As SECURITY.md's worker user, that GET must be allowed, or the
    request is dropped without a reply."""

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="redwork-sec-claim-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.redis_proc, self.port = start_redis(self.folder)
        self.addCleanup(stop_process, self.redis_proc)
        self.admin = redis.Redis(host="127.0.0.1", port=self.port,
                                 socket_timeout=WAIT_S, decode_responses=True)
        self.addCleanup(self.admin.close)
        create_users_from_security_md(self.admin, {"redwork-worker": WORKER_PW})
        self.req_id = "dropme-%d" % os.getpid()
        self.proxy = DropOneAnswerProxy(self.port, b"redwork:claim:" + self.req_id.encode())
        self.addCleanup(self.proxy.stop)
        self.worker_id = "sec-claim-%d" % os.getpid()
        conf = write_file(os.path.join(self.folder, "worker.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\nusername = redwork-worker\n"
            "password_env = %s\n\n[worker]\nid = %s\nchannels = request\n"
            "handlers_dir = %s\nclaim = on\nthreads = 2\n"
            % (self.proxy.port, PW_VAR, self.worker_id, HANDLERS))
        self.log = os.path.join(self.folder, "daemon.log")
        self.daemon = start_daemon_conf(conf, self.log, self.admin, self.worker_id,
                                        env=child_env(**{PW_VAR: WORKER_PW}))
        self.addCleanup(stop_process, self.daemon)

    def request(self, req_id, timeout=5.0):
        """Subscribes to the reply, publishes, returns the reply or None."""
        p = self.admin.pubsub()
        try:
            p.subscribe("callback:" + req_id)
            wait_until(lambda: p.get_message(timeout=0.1) is not None, WAIT_S,
                       "subscribe confirmation")
            receivers = self.admin.publish(
                "request", json.dumps({"req_id": req_id, "handler": "echo", "x": 1}))
            self.assertEqual(receivers, 1)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = p.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if msg is not None and msg["type"] == "message":
                    return json.loads(msg["data"])
            return None
        finally:
            p.close()

    def test_request_served_when_the_claim_answer_is_lost(self):
        reply = self.request(self.req_id)
        self.assertTrue(self.proxy.dropped.is_set(),
                        "the proxy never saw the claim (test setup problem)")
        self.assertEqual(self.admin.get("redwork:claim:" + self.req_id), self.worker_id)
        self.assertIsNotNone(
            reply, "request %s dropped without a reply after its claim's answer was "
            "lost; ACL LOG: %s" % (self.req_id, acl_denials(self.admin, ("redwork-worker",))))
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["worker"], self.worker_id)
        self.assertEqual(acl_denials(self.admin, ("redwork-worker",)), [])
        # And the next request goes through as usual.
        reply = self.request(self.req_id + "-next")
        self.assertIsNotNone(reply)
        self.assertTrue(reply["ok"], reply)


# ---------------------------------------------------------------------------

JUNK_TOTAL = 100_000
JUNK_ANSWERABLE = 1_000
MAX_REQUEST_BYTES = 4096
DEEP = 70  # over the 64-level limit


def unanswerable_kinds():
    """Functions i -> bytes, each a message the daemon cannot answer: no
    usable top-level req_id can be found in it."""
    deep_obj = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    deep_arr = b"[" * DEEP + b"]" * DEEP
    return [
        lambda i: b"not json %d" % i,                                  # not JSON
        lambda i: b"",                                                 # empty
        lambda i: b" \t\r\n",                                          # blank
        lambda i: b'[%d,{"req_id":"arr%d"}]' % (i, i),                 # array
        lambda i: b'"req_id %d"' % i,                                  # string
        lambda i: b"%d" % i,                                           # number
        lambda i: b"null",
        lambda i: b'{"handler":"echo","n":%d}' % i,                    # no req_id
        lambda i: b'{"x":{"req_id":"nested%d"}}' % i,                  # not top level
        lambda i: b'{"req_id":"bad id %d"}' % i,                       # space
        lambda i: b'{"req_id":"a/b*%d"}' % i,                          # / and *
        lambda i: b'{"req_id":"cb%d\\u0000victim"}' % i,               # escaped NUL
        lambda i: b'{"req_id":"jun\\u006b%d"}' % i,                    # escaped letter
        lambda i: b'{"req_id":""}',                                    # empty id
        lambda i: b'{"req_id":-%d}' % (i + 1),                         # negative
        lambda i: b'{"req_id":%d.5}' % i,                              # fraction
        lambda i: b'{"req_id":9007199254740992}',                      # 2^53
        lambda i: b'{"req_id":1e300}',
        lambda i: b'{"req_id":true}',
        lambda i: b'{"req_id":null}',
        lambda i: b'{"req_id":{"id":"o%d"}}' % i,
        lambda i: b'{"req_id":["l%d"]}' % i,
        lambda i: b'{"req_id":"%s"}' % (b"%d" % i).rjust(129, b"a"),   # 129 chars
        lambda i: deep_obj,                                            # 70 deep
        lambda i: deep_arr,
        lambda i: b"[" * (DEEP + i % 1000),                            # unclosed
        lambda i: b"\xff\xfe\xfd%d" % i,                               # bad UTF-8
        lambda i: b'{"x":"\xc3\x28","n":%d}' % i,
        lambda i: b'{"req_id":"\xe2\x82%d"}' % i,
        lambda i: b"\x00" * 8,
        lambda i: b'{"req_id":"nu\x00l%d","handler":"echo"}' % i,
        lambda i: b'{"req_id":"bad id","req_id":"dup%d"}' % i,         # duplicate keys
        lambda i: b'{"req_id":[],"req_id":"dup%d"}' % i,
    ]


def answerable_kinds():
    """Functions (n, req_id) -> bytes with a usable req_id but otherwise
    invalid: each must get one bad_request on callback:<req_id>. N counts
    the messages of the kind."""
    deep = b"[" * DEEP + b"]" * DEEP
    return [
        lambda i, rid: b'{"req_id":"%s","handler":5}' % rid,
        lambda i, rid: b'{"req_id":"%s","handler":""}' % rid,
        lambda i, rid: b'{"req_id":"%s","timeout_ms":-1}' % rid,
        lambda i, rid: b'{"req_id":"%s","x":%s}' % (rid, deep),                 # too deep
        lambda i, rid: b'{"req_id":"%s","req_id":"victim","handler":5}' % rid,  # duplicate
        lambda i, rid: b'{"req_id":"%s","handler":5,"x":"\xff\xfe\xc3"}' % rid,  # bad UTF-8
        lambda i, rid: b'{"handler":{"a":1},"req_id":"%s"}' % rid,
        lambda i, rid: b'{"req_id":"%s"}\x00' % rid,                      # NUL after it
        lambda i, rid: b'{"req_id":"%s","x":}' % rid,                      # broken JSON
        lambda i, rid: b'{"req_id":"%s"' % rid,                            # truncated
        lambda i, rid: b'{"req_id":"%s"} x' % rid,                         # trailing garbage
        lambda i, rid: b'{"req_id":"%s"}{"req_id":"b"}' % rid,             # two values
        lambda i, rid: b'{"req_id":"%s","x":"\\udc80"}' % rid,           # lone surrogate
        lambda n, rid: (b'{"req_id":"%s","pad":"%s"}' % (rid, b"p" * MAX_REQUEST_BYTES)
                        if n % 5 == 0 else b'{"req_id":"%s","handler":[1]}' % rid),
    ]


def junk_messages():
    """JUNK_TOTAL messages, JUNK_ANSWERABLE of them answerable (spread
    evenly): a list of bytes, and the set of answerable req_ids."""
    bad, good = unanswerable_kinds(), answerable_kinds()
    step = JUNK_TOTAL // JUNK_ANSWERABLE
    messages, ids = [], set()
    for i in range(JUNK_TOTAL):
        if i % step == step // 2:
            rid = "junk%d" % i
            ids.add(rid)
            n = len(ids)
            messages.append(good[n % len(good)](n // len(good), rid.encode()))
        else:
            messages.append(bad[i % len(bad)](i))
    return messages, ids


class FloodTest(unittest.TestCase):
    """A flood of junk: the daemon stays up, answers what it can, counts the
    rest, and keeps its log short."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-sec-flood-")
        cls.redis_proc, cls.port = start_redis(cls.folder)
        cls.r = redis.Redis(host="127.0.0.1", port=cls.port, socket_timeout=WAIT_S,
                            decode_responses=True)
        cls.worker_id = "sec-flood-%d" % os.getpid()
        cls.ini = write_file(os.path.join(cls.folder, "redwork.ini"),
            "[redis]\nhost = 127.0.0.1\nport = %d\n\n[worker]\nid = %s\n"
            "channels = request\nhandlers_dir = %s\nclaim = off\nthreads = 2\n"
            "max_request_bytes = %d\n" % (cls.port, cls.worker_id, HANDLERS,
                                          MAX_REQUEST_BYTES))
        cls.log = os.path.join(cls.folder, "daemon.log")
        try:
            cls.daemon = start_daemon_conf(cls.ini, cls.log, cls.r, cls.worker_id)
        except Exception:
            stop_process(cls.redis_proc)
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.daemon)
        stop_process(cls.redis_proc)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def counter(self, name):
        return int(heartbeat(self.r, self.worker_id).get(name, -1))

    def test_flood_of_junk(self):
        messages, answerable = junk_messages()
        unanswerable = len(messages) - len(answerable)
        self.assertEqual(len(answerable), JUNK_ANSWERABLE)

        # Every reply, whatever its channel; bytes, to check the UTF-8.
        raw = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=WAIT_S)
        self.addCleanup(raw.close)
        sub = raw.pubsub()
        self.addCleanup(sub.close)
        sub.psubscribe("callback:*")
        wait_until(lambda: sub.get_message(timeout=0.1) is not None, WAIT_S,
                   "psubscribe confirmation")
        replies = {}  # channel -> [reply dicts]

        def drain(seconds):
            """Reads what has arrived, then waits up to SECONDS for more."""
            deadline = time.monotonic() + seconds
            while True:
                left = deadline - time.monotonic()
                msg = sub.get_message(timeout=max(0.0, min(0.05, left)))
                if msg is None:
                    if left <= 0:
                        return
                    continue
                if msg["type"] == "pmessage":
                    channel = msg["channel"].decode()
                    text = msg["data"].decode("utf-8")  # strict: must be UTF-8
                    replies.setdefault(channel, []).append(json.loads(text))

        received_before = self.counter("received")
        start = time.monotonic()
        pipe = raw.pipeline(transaction=False)
        for n in range(0, len(messages), 1000):
            for m in messages[n:n + 1000]:
                pipe.publish("request", m)
            self.assertEqual(pipe.execute(), [1] * len(messages[n:n + 1000]))
            drain(0)  # keep our subscriber's buffer small
            self.assertLess(time.monotonic() - start, 30, "publishing took too long")
        publish_s = time.monotonic() - start

        wait_until(lambda: self.counter("received") - received_before >= len(messages),
                   30, "the daemon to read the flood (received %d of %d)"
                   % (self.counter("received") - received_before, len(messages)))
        wait_until(lambda: self.counter("rejected") >= unanswerable, 10,
                   "rejected to reach %d" % unanswerable)
        self.assertEqual(self.counter("rejected"), unanswerable)
        process_s = time.monotonic() - start
        self.assertIsNone(self.daemon.poll(), "the daemon died")

        # Exactly one bad_request per answerable message, and nothing else.
        deadline = time.monotonic() + 10
        while (sum(len(v) for v in replies.values()) < len(answerable)
               and time.monotonic() < deadline):
            drain(0.2)
        drain(0.5)  # any late duplicate
        expected = {"callback:" + rid for rid in answerable}
        self.assertEqual(set(replies) - expected, set(), "replies on unexpected channels")
        self.assertEqual(expected - set(replies), set(), "answerable junk not answered")
        twice = {c: len(v) for c, v in replies.items() if len(v) != 1}
        self.assertEqual(twice, {}, "answered more than once")
        for channel, (reply,) in replies.items():
            self.assertEqual(str(reply["req_id"]), channel[len("callback:"):])
            self.assertFalse(reply["ok"])
            self.assertEqual(reply["error"]["code"], "bad_request", reply)
            self.assertIsNone(reply["handler"])

        # Good requests are served.
        res = run_cli(["-c", self.ini, "bench", "--requests", "100",
                       "--concurrency", "10", "--json"], timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        bench = json.loads(res.stdout)
        self.assertEqual((bench["ok"], bench["errors"], bench["timeouts"]), (100, 0, 0))
        self.assertIsNone(self.daemon.poll(), "the daemon died")

        # The log: a few lines a second, plus counts of what was left out.
        # The count of a second is written with the next message of its
        # kind, so one more junk message in a later second writes the last.
        pattern = re.compile(r"dispatch: (\d+) similar messages suppressed")

        def accounted():
            text = read(self.log)
            lines = [l for l in text.splitlines() if "rejected" in l]
            suppressed = sum(int(n) for n in pattern.findall(text))
            return lines, suppressed

        time.sleep(1.1)
        before_flush = len(accounted()[0]) + accounted()[1]
        self.assertEqual(raw.publish("request", b"not json: the last one"), 1)
        total = unanswerable + 1

        try:
            wait_until(lambda: len(accounted()[0]) + accounted()[1] >= total, 5,
                       "the log to account for %d rejections" % total)
        except TimeoutError:
            pass  # the assertion below gives the numbers
        lines, suppressed = accounted()
        seconds = time.monotonic() - start
        self.assertLess(len(lines), 100, "%d log lines mention 'rejected'" % len(lines))
        self.assertLessEqual(len(lines), 5 * (int(seconds) + 2))
        self.assertLess(os.path.getsize(self.log), 64 * 1024)
        self.assertEqual(len(lines) + suppressed, total,
                         "%d lines + %d suppressed != %d rejected"
                         % (len(lines), suppressed, total))
        print("\n    flood: published %d in %.1f s, processed in %.1f s; %d log lines "
              "mention 'rejected', %d suppressed (%d of %d accounted for before "
              "the last message)" % (len(messages), publish_s, process_s, len(lines),
                                     suppressed, before_flush, unanswerable))


if __name__ == "__main__":
    unittest.main()
