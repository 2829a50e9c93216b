#!/usr/bin/python3
"""A Python client of the job service, as an MLOps pipeline would write one.

Generates stubs from proto/signround/v1 with Debian's python3-grpc-tools at test
time, starts the real signround-server on loopback, makes a tiny checkpoint with
`signround-worker make-test-model`, then submits (with an idempotency key),
watches, gets and lists jobs, and asks gRPC health and reflection.
A second server runs with TLS, client certificates and bearer tokens of two
tenants and an admin (a throwaway PKI made with the openssl CLI; that class is
skipped without openssl).

Usage: python_client_test.py --server-bin PATH --worker-bin PATH --proto-dir DIR
Exit codes: 0 passed, 1 failed, 77 skipped (grpc or grpc_tools missing).
"""

import argparse
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse

SKIP = 77

try:
    import grpc
    import grpc_tools.protoc  # noqa: F401 (presence check)
except ImportError as e:
    print(f"SKIP: python3-grpcio / python3-grpc-tools missing: {e}")
    sys.exit(SKIP)

ARGS = None  # the parsed command line
SERVICE = "signround.v1.QuantizationService"


def generate_stubs(proto_dir, out_dir):
    """Runs grpc_tools.protoc on the service proto; returns (pb2, pb2_grpc)."""
    proto = os.path.join(proto_dir, "signround", "v1", "quantization_service.proto")
    os.makedirs(out_dir)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
           f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", proto]
    subprocess.run(cmd, check=True)
    sys.path.insert(0, out_dir)
    from signround.v1 import quantization_service_pb2 as pb2
    from signround.v1 import quantization_service_pb2_grpc as pb2_grpc
    return pb2, pb2_grpc


def read_ready_line(proc, timeout):
    """The server's first stdout line (the ready line), or None on timeout/exit."""
    result = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result and result[0] else None


def varint(data, pos):
    """Decodes a protobuf varint at pos; returns (value, next position)."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(data):
    """The (field number, value) pairs of a serialized message: ints or bytes."""
    pos, out = 0, []
    while pos < len(data):
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 2:
            length, pos = varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.append((number, value))
    return out


def length_delimited(number, payload):
    """One length-delimited field (payload shorter than 128 bytes)."""
    assert len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


def make_test_pki(out_dir):
    """A throwaway PKI made with the openssl CLI (EC P-256, one day): ca.pem, server.pem/.key
    (SANs DNS:localhost, IP:127.0.0.1), client.pem/.key signed by the CA, and
    rogue-client.pem/.key signed by an unrelated CA. Returns {file name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    config = os.path.join(out_dir, "pki.cnf")
    with open(config, "w") as f:
        f.write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = signround-test\n"
                "[ca_ext]\nbasicConstraints = critical,CA:TRUE\n"
                "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
                "[server_ext]\nbasicConstraints = critical,CA:FALSE\n"
                "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
                "[client_ext]\nbasicConstraints = critical,CA:FALSE\n"
                "keyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def path(name):
        return os.path.join(out_dir, name)

    def make_ca(name, cn):
        openssl("req", "-config", config, "-x509", *new_key, "-keyout", path(name + ".key"),
                "-out", path(name + ".pem"), "-days", "1", "-subj", "/CN=" + cn,
                "-extensions", "ca_ext")

    def make_leaf(name, cn, ca, extensions):
        csr = path(name + ".csr")
        openssl("req", "-config", config, "-new", *new_key, "-keyout", path(name + ".key"),
                "-out", csr, "-subj", "/CN=" + cn)
        openssl("x509", "-req", "-in", csr, "-CA", path(ca + ".pem"), "-CAkey", path(ca + ".key"),
                "-set_serial", str(random.SystemRandom().randrange(1, 2**62)), "-days", "1",
                "-out", path(name + ".pem"), "-extfile", config, "-extensions", extensions)
        os.remove(csr)

    make_ca("ca", "signround-test-ca")
    make_leaf("server", "localhost", "ca", "server_ext")
    make_leaf("client", "signround-test-client", "ca", "client_ext")
    make_ca("rogue-ca", "signround-rogue-ca")
    make_leaf("rogue-client", "signround-rogue-client", "rogue-ca", "client_ext")
    return {name: path(name) for name in ("ca.pem", "server.pem", "server.key", "client.pem",
                                          "client.key", "rogue-client.pem", "rogue-client.key")}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class ServerTestCase(unittest.TestCase):
    """A real signround-server for the class, on loopback ports in a scratch
    directory: a subclass's start() prepares its inputs and calls start_server()."""

    TMP_PREFIX = "signround-py-"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=cls.TMP_PREFIX)
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()  # unittest does not call it when setUpClass fails
            raise

    @classmethod
    def make_model(cls):
        """A 2-layer test checkpoint in TMP/model."""
        cls.model = os.path.join(cls.tmp, "model")
        subprocess.run([ARGS.worker_bin, "make-test-model", "--out", cls.model, "--hidden", "64",
                        "--intermediate", "128", "--layers", "2", "--heads", "2",
                        "--kv-heads", "1", "--vocab", "128"], check=True,
                       stdout=subprocess.DEVNULL)

    @classmethod
    def start_server(cls, extra_args=()):
        """Starts the server (its log in TMP/server.log) and reads its ready line."""
        cls.log_path = os.path.join(cls.tmp, "server.log")
        cls.log = open(cls.log_path, "w")
        cls.server = subprocess.Popen(
            [ARGS.server_bin, "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
             f"--data-dir={os.path.join(cls.tmp, 'data')}", "--devices=cpu",
             f"--worker-bin={ARGS.worker_bin}", *extra_args],
            stdout=subprocess.PIPE, stderr=cls.log, text=True)
        line = read_ready_line(cls.server, 60)
        if line is None:
            raise RuntimeError("no ready line from signround-server; log:\n" + cls.log_tail())
        cls.ready = json.loads(line)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "channel", None):
            cls.channel.close()
        if getattr(cls, "server", None) and cls.server.poll() is None:
            cls.server.send_signal(signal.SIGTERM)
            try:
                cls.stop_code = cls.server.wait(30)
            except subprocess.TimeoutExpired:
                cls.server.kill()
                cls.server.wait()
                cls.stop_code = "timeout"
        if getattr(cls, "log", None):
            cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def log_tail(cls, lines=30):
        with open(cls.log_path) as f:
            return "".join(f.readlines()[-lines:])


class PythonClientTest(ServerTestCase):
    """One server for every test: the tests share the tiny model and the finished job."""

    @classmethod
    def start(cls):
        cls.pb2, pb2_grpc = generate_stubs(ARGS.proto_dir, os.path.join(cls.tmp, "gen"))
        cls.make_model()
        cls.calib = os.path.join(cls.tmp, "calib.jsonl")
        rng = random.Random(7)
        with open(cls.calib, "w") as f:
            for _ in range(8):
                f.write(json.dumps({"input_ids": [rng.randrange(128) for _ in range(32)]}) + "\n")
        cls.start_server()
        cls.channel = grpc.insecure_channel(cls.ready["grpc"])
        cls.stub = pb2_grpc.QuantizationServiceStub(cls.channel)

    def spec(self, output, labels, key=""):
        """A 2-block SignRound job on the tiny model (4 iterations: under a second)."""
        pb2 = self.pb2
        spec = pb2.JobSpec(model_uri="file://" + self.model, calibration_uri="file://" + self.calib,
                           output_uri="file://" + os.path.join(self.tmp, output),
                           formats=["auto_round", "fake"], group_size=32, nsamples=4, seqlen=32,
                           batch_size=2, recipe=pb2.RECIPE_DEFAULT, labels=labels,
                           idempotency_key=key)
        spec.iters.value = 4
        return spec

    def submit(self, spec):
        return self.stub.SubmitJob(self.pb2.SubmitJobRequest(spec=spec), timeout=30)

    def watch(self, job_id):
        request = self.pb2.WatchJobRequest(job_id=job_id)
        return list(self.stub.WatchJob(request, timeout=120))

    def check_events(self, events):
        """A successful job's events: sequences 1..n, states in order, blocks 0..N-1."""
        pb2 = self.pb2
        self.assertEqual([e.sequence for e in events], list(range(1, len(events) + 1)))
        states = [(getattr(e.state_change, "from"), e.state_change.to)
                  for e in events if e.WhichOneof("kind") == "state_change"]
        self.assertEqual(states, [
            (pb2.JOB_STATE_UNSPECIFIED, pb2.JOB_STATE_QUEUED),
            (pb2.JOB_STATE_QUEUED, pb2.JOB_STATE_RUNNING),
            (pb2.JOB_STATE_RUNNING, pb2.JOB_STATE_UPLOADING),
            (pb2.JOB_STATE_UPLOADING, pb2.JOB_STATE_SUCCEEDED)])
        self.assertEqual(events[-1].state_change.to, pb2.JOB_STATE_SUCCEEDED)
        blocks = [e.block_progress for e in events if e.WhichOneof("kind") == "block_progress"]
        self.assertEqual([b.block_index for b in blocks], [0, 1])
        for b in blocks:
            self.assertEqual(b.block_count, 2)
            self.assertEqual(b.layers_quantized, 7)  # q, k, v, o, gate, up, down
            self.assertFalse(b.resumed)
            self.assertGreaterEqual(b.loss_iter0, b.best_loss)
        kinds = [e.WhichOneof("kind") for e in events]
        # Uploads happen between UPLOADING and SUCCEEDED, after the last block.
        first_upload = kinds.index("artifact_uploaded")
        self.assertGreater(first_upload, max(i for i, k in enumerate(kinds)
                                             if k == "block_progress"))
        self.assertNotIn("error", kinds)
        return [e.artifact_uploaded.artifact for e in events
                if e.WhichOneof("kind") == "artifact_uploaded"]

    def check_artifacts(self, artifacts, output):
        """Each artifact is a file under the output dir with its stated size and sha256."""
        root = os.path.join(self.tmp, output)
        self.assertTrue(artifacts)
        for a in artifacts:
            parsed = urllib.parse.urlparse(a.uri)
            self.assertEqual(parsed.scheme, "file", a.uri)
            self.assertTrue(parsed.path.startswith(root + "/"), a.uri)
            with open(parsed.path, "rb") as f:
                data = f.read()
            self.assertEqual(len(data), a.bytes, a.uri)
            self.assertEqual(hashlib.sha256(data).hexdigest(), a.sha256, a.uri)
        formats = {a.format for a in artifacts}
        self.assertEqual(formats, {"auto_round", "fake", "report"})
        self.assertTrue(os.path.isfile(os.path.join(root, "report.json")))
        self.assertTrue(os.path.isfile(os.path.join(root, "auto_round", "model.safetensors")))

    def test_submit_watch_get_list(self):
        pb2 = self.pb2
        spec = self.spec("out-a", {"suite": "python", "case": "a"}, key="py-key-a")
        first = self.submit(spec)
        self.assertTrue(first.created)
        self.assertRegex(first.job.id, r"^j-[0-9a-f]{16}$")
        self.assertEqual(first.job.spec.model_uri, spec.model_uri)
        # A retried submission (same key, even with other fields) returns the same job.
        again = self.submit(self.spec("elsewhere", {"suite": "other"}, key="py-key-a"))
        self.assertFalse(again.created)
        self.assertEqual(again.job.id, first.job.id)

        events = self.watch(first.job.id)
        errors = [e.error.message for e in events if e.WhichOneof("kind") == "error"]
        self.assertEqual(errors, [], self.log_tail())
        uploaded = self.check_events(events)
        job = self.stub.GetJob(pb2.GetJobRequest(job_id=first.job.id), timeout=30)
        self.assertEqual(job.state, pb2.JOB_STATE_SUCCEEDED, self.log_tail())
        self.assertEqual((job.blocks_done, job.block_count), (2, 2))
        self.assertEqual(job.attempts, 1)
        self.assertEqual(job.last_sequence, events[-1].sequence)
        self.assertEqual(job.device, "cpu")
        self.assertLessEqual(job.start_time.ToNanoseconds(), job.end_time.ToNanoseconds())
        self.assertEqual(json.loads(job.effective_settings_json)["iters"], 4)
        self.assertEqual(sorted(a.uri for a in job.artifacts), sorted(a.uri for a in uploaded))
        self.check_artifacts(job.artifacts, "out-a")

        # A second job (RTN, another label): the label filter tells them apart.
        rtn = pb2.JobSpec(model_uri="file://" + self.model,
                          output_uri="file://" + os.path.join(self.tmp, "out-b"),
                          group_size=32, recipe=pb2.RECIPE_RTN,
                          labels={"suite": "python", "case": "b"})
        second = self.submit(rtn)
        self.assertTrue(second.created)
        self.assertNotEqual(second.job.id, first.job.id)
        self.assertEqual(self.watch(second.job.id)[-1].state_change.to, pb2.JOB_STATE_SUCCEEDED)

        def listed(**kwargs):
            request = pb2.ListJobsRequest(**kwargs)
            return [j.id for j in self.stub.ListJobs(request, timeout=30).jobs]
        self.assertEqual(listed(labels={"case": "a"}), [first.job.id])
        self.assertEqual(listed(labels={"case": "b", "suite": "python"}), [second.job.id])
        self.assertEqual(listed(labels={"suite": "python"}), [second.job.id, first.job.id])
        self.assertEqual(listed(labels={"case": "c"}), [])
        self.assertEqual(listed(labels={"suite": "python"}, state=pb2.JOB_STATE_QUEUED), [])
        # Paging: one job per page, newest first, then an empty token.
        page = self.stub.ListJobs(pb2.ListJobsRequest(labels={"suite": "python"}, page_size=1))
        self.assertEqual([j.id for j in page.jobs], [second.job.id])
        self.assertTrue(page.next_page_token)
        page = self.stub.ListJobs(pb2.ListJobsRequest(labels={"suite": "python"}, page_size=1,
                                                      page_token=page.next_page_token))
        self.assertEqual([j.id for j in page.jobs], [first.job.id])

    def test_replay_from_sequence(self):
        """WatchJob on an ended job replays its stored events from a given sequence."""
        pb2 = self.pb2
        job = self.submit(pb2.JobSpec(model_uri="file://" + self.model,
                                      output_uri="file://" + os.path.join(self.tmp, "out-r"),
                                      group_size=32, recipe=pb2.RECIPE_RTN)).job
        full = self.watch(job.id)
        self.assertEqual(full[-1].state_change.to, pb2.JOB_STATE_SUCCEEDED)
        tail = list(self.stub.WatchJob(pb2.WatchJobRequest(job_id=job.id, from_sequence=3),
                                       timeout=30))
        self.assertEqual([e.SerializeToString() for e in tail],
                         [e.SerializeToString() for e in full[2:]])

    def test_invalid_request_names_the_field(self):
        spec = self.spec("out-bad", {"suite": "bad"})
        spec.bits = 5
        with self.assertRaises(grpc.RpcError) as caught:
            self.submit(spec)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(caught.exception.details().startswith("spec.bits"),
                        caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.GetJob(self.pb2.GetJobRequest(job_id="j-ffffffffffffffff"), timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_health_serving(self):
        """grpc.health.v1.Health/Check by hand: HealthCheckRequest{string service = 1},
        HealthCheckResponse{ServingStatus status = 1}, SERVING = 1."""
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        for service in ["", SERVICE]:
            request = length_delimited(1, service.encode()) if service else b""
            response = check(request, timeout=30)
            self.assertEqual(fields(response), [(1, 1)], f"service '{service}'")
        with self.assertRaises(grpc.RpcError) as caught:
            check(length_delimited(1, b"no.such.Service"), timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_reflection_lists_the_service(self):
        """ServerReflectionInfo by hand: a request with list_services (field 7) is answered
        with list_services_response (field 6) of ServiceResponse{name = 1}."""
        info = self.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        responses = list(info(iter([length_delimited(7, b"")]), timeout=30))
        self.assertEqual(len(responses), 1)
        listed = [v for n, v in fields(responses[0]) if n == 6]
        self.assertEqual(len(listed), 1, fields(responses[0]))
        names = {dict(fields(s))[1].decode() for n, s in fields(listed[0]) if n == 1}
        self.assertIn(SERVICE, names)
        self.assertIn("grpc.health.v1.Health", names)


@unittest.skipUnless(shutil.which("openssl"), "openssl missing (makes the test PKI)")
class PythonTlsTokenTest(ServerTestCase):
    """Issue 8 as a Python client sees it: a server with --tls-cert/--tls-key,
    --tls-client-ca (mutual TLS) and --tokens-file (two submitter tenants and an admin);
    the client sends its token as `authorization: Bearer TOKEN` metadata."""

    TMP_PREFIX = "signround-py-tls-"

    @classmethod
    def start(cls):
        cls.pb2, cls.pb2_grpc = generate_stubs(ARGS.proto_dir, os.path.join(cls.tmp, "gen"))
        cls.pki = make_test_pki(os.path.join(cls.tmp, "pki"))
        # Tokens: URL-safe base64 (RFC 6750 token68); the file holds only their digests.
        cls.tokens = {name: secrets.token_urlsafe(32) for name in ("alice", "bob", "admin")}
        entries = [("alice", "team-a", "submitter"), ("bob", "team-b", "submitter"),
                   ("admin", "ops", "admin")]
        tokens_file = os.path.join(cls.tmp, "tokens.json")
        with open(tokens_file, "w") as f:
            json.dump({"tokens": [{"sha256": hashlib.sha256(cls.tokens[n].encode()).hexdigest(),
                                   "tenant": tenant, "role": role}
                                  for n, tenant, role in entries],
                       "tenants": {"team-a": {"s3_buckets": ["bucket-a"]}}}, f)
        cls.make_model()
        pki = cls.pki
        cls.start_server([f"--tls-cert={pki['server.pem']}", f"--tls-key={pki['server.key']}",
                          f"--tls-client-ca={pki['ca.pem']}", f"--tokens-file={tokens_file}"])
        cls.channel = cls.tls_channel("client")
        cls.stub = cls.pb2_grpc.QuantizationServiceStub(cls.channel)

    @classmethod
    def tls_channel(cls, client):
        """A TLS channel to the server, verified against ca.pem, presenting `client`.pem
        (None: no client certificate)."""
        pki = cls.pki
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read_bytes(pki["ca.pem"]),
            private_key=read_bytes(pki[client + ".key"]) if client else None,
            certificate_chain=read_bytes(pki[client + ".pem"]) if client else None)
        return grpc.secure_channel(cls.ready["grpc"], credentials)

    def auth(self, who):
        return [("authorization", "Bearer " + self.tokens[who])]

    def assert_code(self, code, call, *args, **kwargs):
        with self.assertRaises(grpc.RpcError) as caught:
            call(*args, timeout=30, **kwargs)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        return caught.exception

    def rtn_spec(self, output):
        return self.pb2.JobSpec(model_uri="file://" + self.model,
                                output_uri="file://" + os.path.join(self.tmp, output),
                                group_size=32, recipe=self.pb2.RECIPE_RTN,
                                labels={"suite": "python-tls"})

    def test_ready_line_says_tls(self):
        self.assertIs(self.ready.get("tls"), True, self.ready)

    def test_tenants_see_only_their_jobs(self):
        pb2, stub = self.pb2, self.stub
        submitted = stub.SubmitJob(pb2.SubmitJobRequest(spec=self.rtn_spec("out-alice")),
                                   metadata=self.auth("alice"), timeout=30)
        self.assertTrue(submitted.created)
        job_id = submitted.job.id
        get = pb2.GetJobRequest(job_id=job_id)

        # Another tenant's job does not exist for bob: NOT_FOUND, not PERMISSION_DENIED.
        self.assert_code(grpc.StatusCode.NOT_FOUND, stub.GetJob, get, metadata=self.auth("bob"))
        self.assert_code(grpc.StatusCode.NOT_FOUND, stub.CancelJob,
                         pb2.CancelJobRequest(job_id=job_id), metadata=self.auth("bob"))
        bobs = stub.ListJobs(pb2.ListJobsRequest(), metadata=self.auth("bob"), timeout=30)
        self.assertNotIn(job_id, [j.id for j in bobs.jobs])

        # No token, an unknown one, or one without the scheme: UNAUTHENTICATED, never echoed.
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, stub.GetJob, get)
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, stub.SubmitJob,
                         pb2.SubmitJobRequest(spec=self.rtn_spec("out-anon")))
        unknown = secrets.token_urlsafe(32)
        refused = self.assert_code(grpc.StatusCode.UNAUTHENTICATED, stub.GetJob, get,
                                   metadata=[("authorization", "Bearer " + unknown)])
        self.assertNotIn(unknown, refused.details() or "")
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED, stub.GetJob, get,
                         metadata=[("authorization", self.tokens["alice"])])

        # The owner watches it to the end (a stream with the token); the admin sees it too.
        events = list(stub.WatchJob(pb2.WatchJobRequest(job_id=job_id),
                                    metadata=self.auth("alice"), timeout=120))
        self.assertEqual(events[-1].state_change.to, pb2.JOB_STATE_SUCCEEDED, self.log_tail())
        self.assert_code(grpc.StatusCode.UNAUTHENTICATED,
                         lambda request, **kw: list(stub.WatchJob(request, **kw)),
                         pb2.WatchJobRequest(job_id=job_id))
        mine = stub.GetJob(get, metadata=self.auth("alice"), timeout=30)
        self.assertEqual(mine.state, pb2.JOB_STATE_SUCCEEDED)
        seen = stub.GetJob(get, metadata=self.auth("admin"), timeout=30)
        self.assertEqual(seen.id, job_id)
        self.assertEqual(seen.state, pb2.JOB_STATE_SUCCEEDED)
        listed = stub.ListJobs(pb2.ListJobsRequest(labels={"suite": "python-tls"}),
                               metadata=self.auth("admin"), timeout=30)
        self.assertIn(job_id, [j.id for j in listed.jobs])

    def test_client_certificate_required(self):
        """Without a client certificate, with one from another CA, or in plaintext: the
        connection fails (UNAVAILABLE) whatever the token."""
        get = self.pb2.GetJobRequest(job_id="j-ffffffffffffffff")
        channels = [self.tls_channel(None), self.tls_channel("rogue-client"),
                    grpc.insecure_channel(self.ready["grpc"])]
        for channel in channels:
            with channel:
                stub = self.pb2_grpc.QuantizationServiceStub(channel)
                self.assert_code(grpc.StatusCode.UNAVAILABLE, stub.GetJob, get,
                                 metadata=self.auth("admin"))
        # The good client gets past TLS and authentication to the service's own answer.
        self.assert_code(grpc.StatusCode.NOT_FOUND, self.stub.GetJob, get,
                         metadata=self.auth("admin"))


def exit_code(result, classes):
    """0 when the tests passed and each class's signround-server stopped cleanly on SIGTERM."""
    for test_class in classes:
        stop_code = getattr(test_class, "stop_code", None)
        if stop_code not in (None, 0):
            print(f"FAIL: signround-server ({test_class.__name__}) exited {stop_code} on SIGTERM")
            return 1
    return 0 if result.wasSuccessful() else 1


def parse_paths(flags):
    """The command line's path flags (each required), made absolute, and the rest of it (for
    unittest)."""
    parser = argparse.ArgumentParser()
    for flag in flags:
        parser.add_argument(flag, required=True)
    args, rest = parser.parse_known_args()
    for name in vars(args):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    return args, rest


def run_tests(rest, classes):
    """Runs unittest on the command line `rest`; exit_code() of the result."""
    result = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2).result
    return exit_code(result, classes)


def main():
    global ARGS
    ARGS, rest = parse_paths(("--server-bin", "--worker-bin", "--proto-dir"))
    return run_tests(rest, (PythonClientTest, PythonTlsTokenTest))


if __name__ == "__main__":
    sys.exit(main())
