"""The README's handler tutorial, run as written.

Takes the C code of README.md's "Write a handler in 5 minutes", builds it
with the README's plain `cc` line into a fresh handlers folder, starts
redworkd on it against a throwaway redis-server, and calls it with
examples/python/redwork_client.py, the README's client. If the tutorial and
the SDK drift apart, this fails.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from redwork_testlib import ROOT, start_daemon, start_redis, stop_process

sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
from redwork_client import call  # noqa: E402


def tutorial_source():
    """The first ```c block after the tutorial's heading in README.md."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Write a handler"):]
    match = re.search(r"```c\n(.*?)```", section, re.S)
    if match is None:
        raise AssertionError("README.md: no C code in the handler tutorial")
    return match.group(1)


class TutorialTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-tutorial-")
        handlers = os.path.join(cls.folder, "handlers")
        os.mkdir(handlers, 0o755)
        source = os.path.join(handlers, "hello.c")
        with open(source, "w") as f:
            f.write(tutorial_source())
        build = subprocess.run(
            ["cc", "-shared", "-fPIC", "-I" + os.path.join(ROOT, "include"),
             "-o", os.path.join(handlers, "hello.so"), source, "-lcjson"],
            capture_output=True, text=True, timeout=60)
        if build.returncode != 0:
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise AssertionError("the tutorial's handler does not build:\n" + build.stderr)
        os.chmod(os.path.join(handlers, "hello.so"), 0o755)
        cls.redis_proc, cls.port = start_redis(cls.folder)
        try:
            cls.daemon, cls.r = start_daemon(
                cls.folder, cls.port, "py-tutorial-%d" % os.getpid(),
                "channels = request\nhandlers_dir = %s\n" % handlers)
        except Exception:
            stop_process(cls.redis_proc)
            shutil.rmtree(cls.folder, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.daemon)
        stop_process(cls.redis_proc)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def test_hello_replies(self):
        reply = call(self.r, "request", {"handler": "hello", "name": "Bob"}, timeout=5.0)
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], "Hi, Bob!")
        self.assertEqual(reply["handler"], "hello")

    def test_hello_without_name_is_bad_request(self):
        reply = call(self.r, "request", {"handler": "hello"}, timeout=5.0)
        self.assertFalse(reply["ok"], reply)
        self.assertEqual(reply["error"]["code"], "bad_request")


if __name__ == "__main__":
    unittest.main()
