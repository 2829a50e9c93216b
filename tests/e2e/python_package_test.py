#!/usr/bin/python3
"""The installable Python client (clients/python) against the real signround-server.

Installs the package the way the README says (a venv with Debian's site packages, `pip
install --no-index --no-build-isolation`, which generates the stubs at build time) into a
scratch folder, then reruns itself with that venv's interpreter and drives two real
servers on loopback with `signround_client` only: a plaintext one (the README's example,
typed events, hidden paging, errors mapped from status codes, a watch that resumes after
its connection is cut by a proxy, cancel) and one with TLS, client certificates and
bearer tokens.

Usage: python_package_test.py --server-bin PATH --worker-bin PATH --proto-dir DIR
           --package-dir DIR --readme PATH
Exit codes: 0 passed, 1 failed, 77 skipped (grpc, grpc_tools, venv or pip missing).
"""

import argparse
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

SKIP = 77
ARGS = None
IN_VENV = "SIGNROUND_PY_PACKAGE_VENV"  # set when rerun inside the venv


def install_and_rerun(args):
    """Creates the venv, installs the package, reruns this script inside; its exit code."""
    for module in ("grpc", "grpc_tools.protoc", "venv", "ensurepip"):
        try:
            __import__(module)
        except ImportError as e:
            print(f"SKIP: {module} missing: {e}")
            return SKIP
    scratch = tempfile.mkdtemp(prefix="signround-pypkg-")
    try:
        venv = os.path.join(scratch, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                       check=True)
        # A copy of the package: the build folder pip writes stays out of the source tree.
        package = os.path.join(scratch, "signround-client")
        shutil.copytree(args.package_dir, package,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        python = os.path.join(venv, "bin", "python")
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index",
                        "--no-build-isolation", package], check=True,
                       env=dict(os.environ, SIGNROUND_PROTO_DIR=args.proto_dir))
        env = dict(os.environ, **{IN_VENV: "1"})
        return subprocess.run([python, os.path.abspath(__file__), *sys.argv[1:]],
                              env=env).returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class CuttingProxy:
    """A TCP proxy on loopback to `target`; sever() closes every open connection (both
    sides), as a load balancer restart or a network blip would. New connections work."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.accepted += 1
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def sever(self):
        with self.lock:
            sockets, self.open = self.open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()
        self.sever()


def readme_example():
    """The fenced python block of the README's "Python client" section."""
    with open(ARGS.readme) as f:
        text = f.read()
    section = text.split("### Python client", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def define_tests():
    """The test classes; defined only inside the venv, where signround_client imports."""
    import signround_client as sr

    import python_client_test as base  # the server fixture and the test PKI
    base.ARGS = ARGS

    class PackageTest(base.ServerTestCase):
        TMP_PREFIX = "signround-pypkg-plain-"

        @classmethod
        def start(cls):
            cls.make_model()
            cls.calib = os.path.join(cls.tmp, "calib.jsonl")
            rng = random.Random(11)
            with open(cls.calib, "w") as f:
                for _ in range(32):
                    ids = [rng.randrange(128) for _ in range(128)]
                    f.write(json.dumps({"input_ids": ids}) + "\n")
            cls.start_server()
            cls.client = sr.Client(cls.ready["grpc"])

        @classmethod
        def tearDownClass(cls):
            if getattr(cls, "client", None):
                cls.client.close()
            super().tearDownClass()

        def uri(self, name):
            return "file://" + os.path.join(self.tmp, name)

        def signround_job(self, output, iters=4, **settings):
            return self.client.submit(self.uri("model"), self.uri(output),
                                      calibration_uri="file://" + self.calib,
                                      formats=["auto_round", "fake"], group_size=32, nsamples=4,
                                      seqlen=32, batch_size=2, iters=iters, **settings)

        def test_readme_example(self):
            code = readme_example()
            for placeholder, value in (("localhost:50051", self.ready["grpc"]),
                                       ("file:///data/models/tiny-llama", self.uri("model")),
                                       ("file:///data/calib.jsonl", "file://" + self.calib),
                                       ("file:///data/out/tiny-llama-w4", self.uri("out-readme"))):
                self.assertIn(placeholder, code)
                code = code.replace(placeholder, value)
            printed = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, timeout=300)
            self.assertEqual(printed.returncode, 0, printed.stderr + self.log_tail())
            lines = printed.stdout.splitlines()
            self.assertEqual([l.split()[0:2] for l in lines if l.startswith("block")],
                             [["block", "1/2:"], ["block", "2/2:"]], printed.stdout)
            self.assertTrue(lines[-1].startswith("SUCCEEDED "), printed.stdout)
            self.assertTrue(os.path.isfile(os.path.join(self.tmp, "out-readme", "auto_round",
                                                        "model.safetensors")))

        def test_submit_watch_wait_typed(self):
            job = self.signround_job("out-a", labels={"suite": "pkg", "case": "a"},
                                     idempotency_key="pkg-a")
            self.assertIsInstance(job, sr.Job)
            self.assertTrue(job.created)
            self.assertRegex(job.id, r"^j-[0-9a-f]{16}$")
            self.assertEqual(job.labels, {"suite": "pkg", "case": "a"})
            self.assertEqual(job.spec.iters.value, 4)
            again = self.signround_job("elsewhere", idempotency_key="pkg-a")
            self.assertIs(again.created, False)
            self.assertEqual(again.id, job.id)

            events = list(job.watch())
            self.assertEqual([e.sequence for e in events], list(range(1, len(events) + 1)))
            self.assertTrue(all(e.job_id == job.id and e.time is not None for e in events))
            changes = [(e.from_state, e.to_state) for e in events
                       if isinstance(e, sr.StateChanged)]
            S = sr.JobState
            self.assertEqual(changes, [(S.UNSPECIFIED, S.QUEUED), (S.QUEUED, S.RUNNING),
                                       (S.RUNNING, S.UPLOADING), (S.UPLOADING, S.SUCCEEDED)])
            blocks = [e for e in events if isinstance(e, sr.BlockFinished)]
            self.assertEqual([(b.block_index, b.block_count) for b in blocks], [(0, 2), (1, 2)])
            for b in blocks:
                self.assertEqual(b.layers_quantized, 7)
                self.assertLessEqual(b.best_loss, b.loss_iter0)
                self.assertGreater(b.loss_iter0, 0.0)
                self.assertEqual(b.attempt, 1)
            uploaded = [e.artifact for e in events if isinstance(e, sr.ArtifactUploaded)]
            self.assertEqual({a.format for a in uploaded}, {"auto_round", "fake", "report"})
            self.assertFalse([e for e in events if isinstance(e, sr.JobErrorEvent)])

            done = job.wait(timeout=120)
            self.assertEqual(done.state, sr.JobState.SUCCEEDED)
            self.assertTrue(done.state.ended)
            self.assertEqual((done.blocks_done, done.block_count), (2, 2))
            self.assertEqual(done.last_sequence, events[-1].sequence)
            self.assertEqual(done.effective_settings["iters"], 4)
            self.assertLessEqual(done.start_time, done.end_time)
            self.assertEqual(sorted(done.artifacts, key=lambda a: a.uri),
                             sorted(uploaded, key=lambda a: a.uri))
            for a in done.artifacts:
                with open(urllib.parse.urlparse(a.uri).path, "rb") as f:
                    data = f.read()
                self.assertEqual((len(data), hashlib.sha256(data).hexdigest()),
                                 (a.bytes, a.sha256), a.uri)
            # Replay from a sequence: the stored tail, identical.
            self.assertEqual(list(job.watch(from_sequence=3)), events[2:])
            self.assertEqual(repr(done), f"Job(id='{job.id}', state=SUCCEEDED, blocks=2/2)")

        def test_list_hides_paging(self):
            label = {"suite": "pkg-list"}
            ids = [self.client.submit(self.uri("model"), self.uri(f"out-l{i}"), group_size=32,
                                      recipe="rtn", labels=label).id for i in range(3)]
            for job_id in ids:
                self.client.wait(job_id, timeout=120)
            listed = [j.id for j in self.client.list(labels=label, page_size=1)]
            self.assertEqual(listed, ids[::-1])  # newest first, across three pages
            self.assertEqual(len(list(self.client.list(labels=label, page_size=2))), 3)
            self.assertEqual([j.id for j in self.client.list(labels=label,
                                                              state=sr.JobState.QUEUED)], [])
            self.assertEqual(list(self.client.list(labels={"suite": "nothing"})), [])

        def test_errors_from_status_codes(self):
            with self.assertRaises(sr.InvalidArgument) as caught:
                self.signround_job("out-bad", bits=5)
            self.assertTrue(caught.exception.message.startswith("spec.bits"),
                            caught.exception.message)
            self.assertIsInstance(caught.exception, sr.SignroundError)
            with self.assertRaises(sr.NotFound):
                self.client.get("j-ffffffffffffffff")
            with self.assertRaises(TypeError):
                self.client.submit(self.uri("model"), self.uri("x"), no_such_setting=1)
            # A job that fails at run time: wait() raises JobFailed with the job's error.
            broken = os.path.join(self.tmp, "broken-model")
            os.makedirs(broken, exist_ok=True)
            with open(os.path.join(broken, "config.json"), "w") as f:
                f.write("{ not json")
            job = self.client.submit("file://" + broken, self.uri("out-broken"), recipe="rtn")
            with self.assertRaises(sr.JobFailed) as failed:
                job.wait(timeout=120)
            self.assertEqual(failed.exception.job.state, sr.JobState.FAILED)
            self.assertIn("config.json", failed.exception.job.error)
            self.assertEqual(job.wait(raise_on_failure=False).state, sr.JobState.FAILED)
            with self.assertRaises(sr.FailedPrecondition):
                job.cancel()

        def test_cancel(self):
            job = self.signround_job("out-c", iters=5000)
            cancelled = job.cancel()
            self.assertEqual(cancelled.state, sr.JobState.CANCELLED)
            self.assertEqual(job.wait(raise_on_failure=False).state, sr.JobState.CANCELLED)
            with self.assertRaises(sr.JobFailed):
                job.wait()

        def test_long_replay_to_slow_readers(self):
            """A job with more events than a stream queues (64) replayed to readers that
            lag: the server leaves them behind and refills them from the store; each gets
            every event once, in order."""
            model = os.path.join(self.tmp, "deep-model")
            subprocess.run([ARGS.worker_bin, "make-test-model", "--out", model, "--hidden",
                            "32", "--intermediate", "64", "--layers", "80", "--heads", "2",
                            "--kv-heads", "1", "--vocab", "128"], check=True,
                           stdout=subprocess.DEVNULL)
            job = self.client.submit("file://" + model, self.uri("out-deep"),
                                     calibration_uri="file://" + self.calib, formats=["fake"],
                                     group_size=32, nsamples=2, seqlen=16, batch_size=1, iters=1)
            done = job.wait(timeout=300)
            self.assertEqual(done.blocks_done, 80)
            self.assertGreater(done.last_sequence, 64)
            expected = list(range(1, done.last_sequence + 1))
            results = {}

            # A 1 KiB HTTP/2 window: the server's writes to a lagging reader wait for it.
            slow = sr.Client(self.ready["grpc"], options=[("grpc.http2.lookahead_bytes", 1024),
                                                          ("grpc.http2.bdp_probe", 0)])
            self.addCleanup(slow.close)

            def read(name, pause):
                sequences = []
                for event in slow.watch(job.id):
                    sequences.append(event.sequence)
                    if len(sequences) < 100:
                        time.sleep(pause)
                results[name] = sequences
            readers = [threading.Thread(target=read, args=(f"r{i}", 0.002 * i))
                       for i in range(4)]
            for r in readers:
                r.start()
            for r in readers:
                r.join(120)
            self.assertEqual(sorted(results), ["r0", "r1", "r2", "r3"])
            for name, sequences in results.items():
                self.assertEqual(sequences, expected, name)

        def test_watch_resumes_after_cut(self):
            """The connection is cut after the first event: watch() opens the stream again
            from the next sequence, and the events are those of an uncut watch."""
            proxy = CuttingProxy(self.ready["grpc"])
            try:
                with sr.Client(proxy.address) as client:
                    job = client.submit(self.uri("model"), self.uri("out-w"),
                                        calibration_uri="file://" + self.calib, group_size=32,
                                        nsamples=4, seqlen=32, batch_size=2, iters=200)
                    received = []
                    for event in job.watch():
                        received.append(event)
                        if len(received) in (1, 3):
                            proxy.sever()
                    self.assertGreaterEqual(proxy.accepted, 3)
            finally:
                proxy.close()
            self.assertEqual(received, list(self.client.watch(job.id)))
            self.assertEqual([e.sequence for e in received],
                             list(range(1, len(received) + 1)))
            self.assertEqual(received[-1].to_state, sr.JobState.SUCCEEDED)

    @unittest.skipUnless(shutil.which("openssl"), "openssl missing (makes the test PKI)")
    class PackageTlsTokenTest(base.ServerTestCase):
        TMP_PREFIX = "signround-pypkg-tls-"

        @classmethod
        def start(cls):
            cls.pki = base.make_test_pki(os.path.join(cls.tmp, "pki"))
            cls.tokens = {name: secrets.token_urlsafe(32) for name in ("alice", "bob", "admin")}
            entries = [("alice", "team-a", "submitter"), ("bob", "team-b", "submitter"),
                       ("admin", "ops", "admin")]
            tokens_file = os.path.join(cls.tmp, "tokens.json")
            with open(tokens_file, "w") as f:
                json.dump({"tokens": [{"sha256": hashlib.sha256(cls.tokens[n].encode())
                                       .hexdigest(), "tenant": tenant, "role": role}
                                      for n, tenant, role in entries]}, f)
            cls.make_model()
            pki = cls.pki
            cls.start_server([f"--tls-cert={pki['server.pem']}", f"--tls-key={pki['server.key']}",
                              f"--tls-client-ca={pki['ca.pem']}", f"--tokens-file={tokens_file}"])

        def client(self, who, client_cert="client", as_bytes=False):
            pki = self.pki
            read = base.read_bytes if as_bytes else (lambda path: path)
            tls = sr.Tls(root_certificates=read(pki["ca.pem"]),
                         certificate_chain=read(pki[client_cert + ".pem"]) if client_cert else None,
                         private_key=read(pki[client_cert + ".key"]) if client_cert else None)
            return sr.Client(self.ready["grpc"], token=self.tokens.get(who), tls=tls)

        def test_tls_and_tokens(self):
            with self.client("alice") as alice, self.client("bob", as_bytes=True) as bob, \
                    self.client("admin") as admin, self.client(None) as anonymous:
                job = alice.submit("file://" + os.path.join(self.tmp, "model"),
                                   "file://" + os.path.join(self.tmp, "out-alice"),
                                   group_size=32, recipe=sr.Recipe.RTN, labels={"who": "alice"})
                self.assertEqual(job.tenant, "team-a")
                self.assertEqual(job.wait(timeout=120).state, sr.JobState.SUCCEEDED)
                with self.assertRaises(sr.NotFound):  # another tenant's job
                    bob.get(job.id)
                self.assertNotIn(job.id, [j.id for j in bob.list()])
                with self.assertRaises(sr.Unauthenticated) as refused:
                    anonymous.get(job.id)
                self.assertNotIn(self.tokens["alice"], str(refused.exception))
                with self.assertRaises(sr.Unauthenticated):
                    list(anonymous.watch(job.id))
                self.assertIn(job.id, [j.id for j in admin.list(labels={"who": "alice"})])
                self.assertEqual(admin.get(job.id).state, sr.JobState.SUCCEEDED)
            # No client certificate: the handshake fails, reported as Unavailable.
            with self.client("admin", client_cert=None) as no_cert:
                with self.assertRaises(sr.Unavailable):
                    no_cert.get(job.id)

    return [PackageTest, PackageTlsTokenTest]


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    for flag in ("--server-bin", "--worker-bin", "--proto-dir", "--package-dir", "--readme"):
        parser.add_argument(flag, required=True)
    ARGS, rest = parser.parse_known_args()
    for name in ("server_bin", "worker_bin", "proto_dir", "package_dir", "readme"):
        setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    if not os.environ.get(IN_VENV):
        return install_and_rerun(ARGS)
    classes = define_tests()
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c)
                               for c in classes)
    if rest:
        suite = unittest.defaultTestLoader.loadTestsFromNames(
            rest, module=type("tests", (), {c.__name__: c for c in classes}))
    import python_client_test as base
    return base.exit_code(unittest.TextTestRunner(verbosity=2).run(suite), classes)


if __name__ == "__main__":
    sys.exit(main())
