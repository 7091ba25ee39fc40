"""TLS to a TLS-only redis-server: the daemon, the client library (through
the redwork command) and a refused certificate.

setUpClass makes a throwaway CA and a server certificate for 127.0.0.1
with the openssl command, starts redis-server with only a TLS port (no
plain port, no persistence), and redworkd with [redis] tls = on. Readiness
is read from the logs, since the test's own Redis client speaks no TLS.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from redwork_testlib import ROOT, free_port, stop_process, wait_until

REDWORK = os.path.join(ROOT, "bin", "redwork")
REDWORKD = os.path.join(ROOT, "bin", "redworkd")


def openssl(folder, *args):
    subprocess.run(["openssl", *args], cwd=folder, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(folder, name):
    """A self-signed CA NAME.crt/NAME.key in FOLDER."""
    openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=redwork test %s" % name, "-keyout", name + ".key",
            "-out", name + ".crt")


def log_has(path, text):
    try:
        with open(path) as f:
            return text in f.read()
    except FileNotFoundError:
        return False


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="redwork-tls-")
        f = cls.folder
        make_ca(f, "ca")
        make_ca(f, "other")
        with open(os.path.join(f, "san.cnf"), "w") as c:
            c.write("subjectAltName = IP:127.0.0.1\n")
        openssl(f, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", "server.key", "-out", "server.csr")
        openssl(f, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")
        cls.port = free_port()
        cls.redis_log = os.path.join(f, "redis.log")
        cls.redis = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(cls.port), "--bind", "127.0.0.1",
             "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
             "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
             "--save", "", "--appendonly", "no", "--dir", f, "--logfile", cls.redis_log],
            cwd=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: log_has(cls.redis_log, "Ready to accept connections"),
                       10.0, "redis-server with TLS")
            cls.ini = cls.write_ini("good.ini", "ca.crt", "tls-good")
            cls.daemon_log = os.path.join(f, "daemon.log")
            with open(cls.daemon_log, "w") as log:
                cls.daemon = subprocess.Popen([REDWORKD, "-c", cls.ini], stderr=log)
            wait_until(lambda: cls.daemon.poll() is not None or log_has(cls.daemon_log, " ready: "),
                       10.0, "redworkd over TLS")
            if cls.daemon.poll() is not None:
                with open(cls.daemon_log) as log:
                    raise RuntimeError("redworkd exited %d:\n%s" % (cls.daemon.returncode,
                                                                   log.read()))
        except Exception:
            stop_process(cls.redis)
            shutil.rmtree(f, ignore_errors=True)
            raise

    @classmethod
    def write_ini(cls, name, ca, worker_id):
        path = os.path.join(cls.folder, name)
        with open(path, "w") as c:
            c.write("[redis]\nport = %d\ntls = on\ntls_ca_file = %s\n"
                    "[worker]\nid = %s\nchannels = request\nclaim = off\n"
                    "handlers_dir = %s\n" % (cls.port, ca, worker_id,
                                             os.path.join(ROOT, "handlers")))
        return path

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.daemon)
        stop_process(cls.redis)
        shutil.rmtree(cls.folder, ignore_errors=True)

    def redwork(self, ini, *args):
        return subprocess.run([REDWORK, "-c", ini, *args], capture_output=True, text=True,
                              timeout=30)

    def test_call_through_tls(self):
        out = self.redwork(self.ini, "call", "echo", '{"over":"tls"}')
        self.assertEqual(out.returncode, 0, out.stderr)
        reply = json.loads(out.stdout)
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], {"over": "tls"})
        self.assertEqual(reply["worker"], "tls-good")

    def test_many_calls_through_tls(self):
        out = self.redwork(self.ini, "bench", "--requests", "2000", "--concurrency", "32",
                           "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual(result["ok"], 2000, result)

    def test_untrusted_certificate_is_refused(self):
        bad = self.write_ini("bad.ini", "other.crt", "tls-bad")
        started = time.monotonic()
        out = subprocess.run([REDWORKD, "-c", bad], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 69, out.stderr)
        self.assertIn("TLS handshake failed", out.stderr)
        self.assertIn("certificate", out.stderr)
        self.assertIn("127.0.0.1:%d" % self.port, out.stderr)
        self.assertLess(time.monotonic() - started, 10.0)
        client = self.redwork(bad, "call", "echo", "{}")
        self.assertEqual(client.returncode, 2)
        self.assertIn("TLS handshake failed", client.stderr)

    def test_last_words_of_the_server_reach_the_client(self):
        # A TLS server of the test's that answers the first command with an
        # error line and hangs up at once, as Redis does after a protocol
        # error: that line must get through the TLS pump before the close.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(self.folder, "server.crt"),
                                os.path.join(self.folder, "server.key"))
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        listener.settimeout(20)
        port = listener.getsockname()[1]

        def serve():
            try:
                conn, _ = listener.accept()
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"-ERR last words before the close\r\n")
            except OSError:
                pass  # the test's assertions say what went wrong

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        ini = os.path.join(self.folder, "last-words.ini")
        with open(ini, "w") as c:
            c.write("[redis]\nport = %d\ntls = on\ntls_ca_file = ca.crt\n"
                    "[worker]\nchannels = request\n" % port)
        out = self.redwork(ini, "call", "echo", "{}")
        server.join(timeout=20)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("last words before the close", out.stderr)

if __name__ == "__main__":
    unittest.main()
