#!/usr/bin/python3
"""The web dashboard in a real headless Chromium (Debian's chromium and chromedriver, driven
with python3-selenium) against the real signround-server.

A plaintext server runs a slow job (one block a few tenths of a second): the test opens its
job page and watches the loss chart gain points while the job runs (no reload), saves a
screenshot of the chart with >= 3 points under --artifacts-dir, and checks the artifacts
table against GetJob. Jobs with hostile labels and a hostile error message show those strings
as text: no element or script is made of them. A second server with --tokens-file shows the
token form, refuses a wrong token and lists only the tenant's jobs for a submitter's token.
The JSON API's errors are checked over plain HTTP, and the dashboard is off with mutual TLS
but no tokens, and with --dashboard=false.

Usage: dashboard_test.py --server-bin PATH --worker-bin PATH --proto-dir DIR --artifacts-dir DIR
Exit codes: 0 passed, 1 failed, 77 skipped (grpc, selenium, chromium or chromedriver missing).
"""

import hashlib
import json
import os
import random
import re
import secrets
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_client_test as base  # noqa: E402 (exits 77 without grpc)

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError as e:
    print(f"SKIP: python3-selenium missing: {e}")
    sys.exit(SKIP)

ARGS = None
# Would run script or make elements if the page ever put data in as markup.
HOSTILE_LABEL = '<img src=x onerror="window.__pwned=1">&amp;</td><script>window.__pwned=2</script>'
HOSTILE_MODEL_TYPE = '<svg onload="window.__pwned=3"></svg><b>bold</b>&lt;'


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", "--no-first-run", "--disable-extensions",
                "--disable-background-networking"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def eventually(test, what, timeout=60, interval=0.2):
    """test()'s first truthy value within timeout seconds; fails naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = test()
            if value:
                return value
        except Exception as e:  # a page mid-render: try again
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def http_get(url, token=None):
    """(status, headers, JSON body or text) of a GET."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, e.read()
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, headers, json.loads(body)
    return status, headers, body.decode()


class BrowserTestCase(base.ServerTestCase):
    """A server (started by the subclass) and one Chromium for the class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.browser = start_browser()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "browser", None):
            cls.browser.quit()
        super().tearDownClass()

    @classmethod
    def write_calibration(cls):
        cls.calib = os.path.join(cls.tmp, "calib.jsonl")
        rng = random.Random(11)
        with open(cls.calib, "w") as f:
            for _ in range(8):
                f.write(json.dumps({"input_ids": [rng.randrange(128) for _ in range(32)]}) + "\n")

    def url(self, path):
        return "http://" + self.ready["metrics"] + path

    def open(self, fragment):
        self.browser.get(self.url("/dashboard/" + fragment))

    def spec(self, output, labels=None, iters=4, model=None, layers_model=None):
        pb2 = self.pb2
        spec = pb2.JobSpec(model_uri="file://" + (model or self.model),
                           calibration_uri="file://" + self.calib,
                           output_uri="file://" + os.path.join(self.tmp, output),
                           formats=["auto_round"], group_size=32, nsamples=4, seqlen=32,
                           batch_size=2, labels=labels or {})
        spec.iters.value = iters
        return spec

    def text(self, css):
        return self.browser.find_element(By.CSS_SELECTOR, css).text

    def assert_not_injected(self):
        """No script ran and no element was made from a hostile string."""
        self.assertIsNone(self.browser.execute_script("return window.__pwned === undefined ? null : window.__pwned"))
        for tag in ("img", "script:not([src])", "svg:not(#loss-chart)", "b"):
            self.assertEqual(self.browser.find_elements(By.CSS_SELECTOR, "main " + tag), [], tag)


class DashboardTest(BrowserTestCase):
    """No tokens: the page and the API are open, as the gRPC API is."""

    TMP_PREFIX = "signround-dash-"

    @classmethod
    def start(cls):
        cls.pb2, pb2_grpc = base.generate_stubs(ARGS.proto_dir, os.path.join(cls.tmp, "gen"))
        cls.make_model()
        # 12 blocks of 160 iterations: each takes a few tenths of a second on a 2-core CPU, so
        # the page sees the job running with only some of its blocks done.
        cls.slow_model = os.path.join(cls.tmp, "slow-model")
        base.subprocess.run([ARGS.worker_bin, "make-test-model", "--out", cls.slow_model,
                             "--hidden", "64", "--intermediate", "128", "--layers", "12",
                             "--heads", "2", "--kv-heads", "1", "--vocab", "128"], check=True,
                            stdout=base.subprocess.DEVNULL)
        cls.write_calibration()
        cls.start_server()
        cls.channel = base.grpc.insecure_channel(cls.ready["grpc"])
        cls.stub = pb2_grpc.QuantizationServiceStub(cls.channel)

    def submit(self, spec):
        return self.stub.SubmitJob(self.pb2.SubmitJobRequest(spec=spec), timeout=30).job

    def wait_ended(self, job_id, timeout=300):
        def ended():
            job = self.stub.GetJob(self.pb2.GetJobRequest(job_id=job_id), timeout=10)
            return job if job.state >= self.pb2.JOB_STATE_SUCCEEDED else None
        return eventually(ended, f"job {job_id} to end", timeout=timeout, interval=0.5)

    def test_ready_line_names_the_dashboard_and_root_redirects(self):
        self.assertEqual(self.ready["dashboard"], self.url("/dashboard/"))
        status, headers, body = http_get(self.url("/dashboard/"))
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"), headers)
        self.assertIn("script-src 'self'", headers["Content-Security-Policy"])
        self.assertIn('src="app.js"', body)
        # Every file the page loads is served by the server itself (the page works offline).
        for asset, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
            status, headers, _ = http_get(self.url("/dashboard/" + asset))
            self.assertEqual((status, headers["Content-Type"].split(";")[0]), (200, kind), asset)
        self.assertEqual(http_get(self.url("/dashboard/nope.js"))[0], 404)
        with urllib.request.urlopen(self.url("/"), timeout=10) as response:
            self.assertEqual(response.url, self.url("/dashboard/"))

    def test_api_errors_are_json_naming_the_field(self):
        cases = [("/api/v1/jobs?page_size=abc", 400, "INVALID_ARGUMENT", "page_size: 'abc'"),
                 ("/api/v1/jobs?page_size=5000", 400, "INVALID_ARGUMENT", "outside 0..1000"),
                 ("/api/v1/jobs?state=%3Cb%3E", 400, "INVALID_ARGUMENT", "state: '<b>'"),
                 ("/api/v1/jobs?label=novalue", 400, "INVALID_ARGUMENT", "not key=value"),
                 ("/api/v1/jobs?colour=red", 400, "INVALID_ARGUMENT", "unknown query parameter"),
                 ("/api/v1/jobs?page_token=garbage", 400, "INVALID_ARGUMENT", "page_token"),
                 ("/api/v1/jobs/j-0000000000000000", 404, "NOT_FOUND", "j-0000000000000000"),
                 ("/api/v1/jobs/%3Cscript%3E", 400, "INVALID_ARGUMENT", "is not a job id"),
                 ("/api/v1/jobs/j-0000000000000000/events?from=-1", 400, "INVALID_ARGUMENT",
                  "from: '-1'"),
                 ("/api/v1/jobs/j-0000000000000000/events?limit=0", 400, "INVALID_ARGUMENT",
                  "limit: 0 is outside 1..1000"),
                 ("/api/v2/jobs", 404, "NOT_FOUND", "no API route")]
        for path, status, code, message in cases:
            got_status, headers, body = http_get(self.url(path))
            self.assertEqual(got_status, status, (path, body))
            self.assertEqual(body["error"]["code"], code, path)
            self.assertIn(message, body["error"]["message"], path)
            self.assertEqual(headers["Cache-Control"], "no-store", path)
        request = urllib.request.Request(self.url("/api/v1/jobs"), method="POST", data=b"{}")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(caught.exception.code, 405)

    def test_chart_gains_points_while_the_job_runs(self):
        job = self.submit(self.spec("slow-out", {"team": "dashboard"}, iters=160,
                                    model=self.slow_model))
        self.open("#/jobs/" + job.id)
        b = self.browser

        def points():
            return len(b.find_elements(By.CSS_SELECTOR, "#loss-chart circle.point.best"))

        def running_with_some():
            state = self.text("#job-head .state")
            n = points()
            return (state, n) if state == "RUNNING" and 1 <= n < 12 else None
        _, first = eventually(running_with_some, "the running job's first chart points",
                              timeout=240, interval=0.05)
        # More points arrive on the open page: it is polled, not reloaded.
        b.execute_script("window.__samePage = true")
        grown = eventually(lambda: points() if points() >= max(3, first + 1) else None,
                           "the chart to gain points", timeout=240, interval=0.1)
        self.assertTrue(b.execute_script("return window.__samePage === true"))
        self.assertGreaterEqual(grown, 3)
        self.assertEqual(len(b.find_elements(By.CSS_SELECTOR, "#loss-chart circle.point.iter0")),
                         len(b.find_elements(By.CSS_SELECTOR, "#loss-chart circle.point.best")))
        os.makedirs(ARGS.artifacts_dir, exist_ok=True)
        shot = os.path.join(ARGS.artifacts_dir, "dashboard-chart.png")
        self.assertTrue(b.find_element(By.ID, "chart").screenshot(shot))
        self.assertGreater(os.path.getsize(shot), 5000)
        b.save_screenshot(os.path.join(ARGS.artifacts_dir, "dashboard-job.png"))

        done = self.wait_ended(job.id)
        self.assertEqual(done.state, self.pb2.JOB_STATE_SUCCEEDED)
        eventually(lambda: self.text("#job-head .state") == "SUCCEEDED", "the page to show it")
        self.assertEqual(points(), 12)
        # The page's losses are the job's: the last block's best loss is Job.latest_loss.
        last = b.find_element(By.CSS_SELECTOR, '#loss-chart circle.point.best[data-block="11"]')
        title = last.find_element(By.TAG_NAME, "title").get_attribute("textContent")
        shown_loss = float(re.search(r"best (\S+)", title).group(1))
        self.assertAlmostEqual(shown_loss / done.latest_loss, 1, delta=1e-3, msg=title)
        rows = eventually(lambda: [r for r in b.find_elements(By.CSS_SELECTOR, "#artifacts tbody tr")
                                   if len(r.find_elements(By.TAG_NAME, "td")) == 4],
                          "the artifacts table")
        shown = {tuple(td.text for td in r.find_elements(By.TAG_NAME, "td")[1::2]) for r in rows}
        self.assertEqual(shown, {(a.uri, a.sha256) for a in done.artifacts})
        b.save_screenshot(os.path.join(ARGS.artifacts_dir, "dashboard-job-done.png"))

    def test_hostile_labels_and_errors_are_shown_as_text(self):
        broken = os.path.join(self.tmp, "hostile-model")
        os.makedirs(broken, exist_ok=True)
        with open(os.path.join(broken, "config.json"), "w") as f:
            json.dump({"model_type": HOSTILE_MODEL_TYPE}, f)
        labels = {"note": HOSTILE_LABEL, "quote": "\"'`${x}</style>"}
        failed = self.submit(self.spec("hostile-out", labels, model=broken))
        failed = self.wait_ended(failed.id)
        self.assertEqual(failed.state, self.pb2.JOB_STATE_FAILED)
        self.assertIn(HOSTILE_MODEL_TYPE, failed.error)

        self.open("#/?label=quote%3D" + urllib.parse.quote(labels["quote"], safe=""))
        b = self.browser
        row = eventually(lambda: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{failed.id}"]'),
                         "the job in the filtered list")
        chips = sorted(c.get_attribute("textContent")
                       for c in row.find_elements(By.CSS_SELECTOR, ".label"))
        self.assertEqual(chips, sorted(f"{k}={v}" for k, v in labels.items()))
        self.assert_not_injected()

        self.open("#/jobs/" + failed.id)
        error = eventually(lambda: self.text("#job-error pre"), "the error box")
        self.assertEqual(b.find_element(By.CSS_SELECTOR, "#job-error pre")
                         .get_attribute("textContent"), failed.error)
        self.assertIn(HOSTILE_MODEL_TYPE, error)
        self.assert_not_injected()
        b.save_screenshot(os.path.join(ARGS.artifacts_dir, "dashboard-hostile.png"))


class DashboardTokenTest(BrowserTestCase):
    """--tokens-file: the API wants a token, the page asks for one, a submitter sees its
    tenant's jobs only."""

    TMP_PREFIX = "signround-dash-tok-"

    @classmethod
    def start(cls):
        cls.pb2, pb2_grpc = base.generate_stubs(ARGS.proto_dir, os.path.join(cls.tmp, "gen"))
        cls.tokens = {name: secrets.token_urlsafe(32) for name in ("alice", "bob")}
        tokens_file = os.path.join(cls.tmp, "tokens.json")
        with open(tokens_file, "w") as f:
            json.dump({"tokens": [
                {"sha256": hashlib.sha256(cls.tokens["alice"].encode()).hexdigest(),
                 "tenant": "team-a", "role": "submitter"},
                {"sha256": hashlib.sha256(cls.tokens["bob"].encode()).hexdigest(),
                 "tenant": "team-b", "role": "submitter"}]}, f)
        cls.make_model()
        cls.write_calibration()
        cls.start_server([f"--tokens-file={tokens_file}"])
        cls.channel = base.grpc.insecure_channel(cls.ready["grpc"])
        cls.stub = pb2_grpc.QuantizationServiceStub(cls.channel)

    def submit_as(self, who, output):
        return self.stub.SubmitJob(self.pb2.SubmitJobRequest(spec=self.spec(output)), timeout=30,
                                   metadata=[("authorization", "Bearer " + self.tokens[who])]).job

    def test_api_needs_the_token_and_scopes_to_the_tenant(self):
        a = self.submit_as("alice", "a-out")
        b_job = self.submit_as("bob", "b-out")
        status, headers, body = http_get(self.url("/api/v1/jobs"))
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["code"], "UNAUTHENTICATED")
        self.assertIn("Bearer", headers["WWW-Authenticate"])
        wrong = secrets.token_urlsafe(32)
        status, _, body = http_get(self.url("/api/v1/jobs"), token=wrong)
        self.assertEqual(status, 401)
        self.assertNotIn(wrong, json.dumps(body))
        status, _, body = http_get(self.url("/api/v1/jobs"), token=self.tokens["alice"])
        self.assertEqual(status, 200)
        self.assertEqual([j["id"] for j in body["jobs"]], [a.id])
        # Another tenant's job is NOT_FOUND, as over gRPC.
        self.assertEqual(http_get(self.url("/api/v1/jobs/" + b_job.id),
                                  token=self.tokens["alice"])[0], 404)
        self.assertEqual(http_get(self.url(f"/api/v1/jobs/{b_job.id}/events"),
                                  token=self.tokens["alice"])[0], 404)
        # The page itself holds no data and loads without a token.
        self.assertEqual(http_get(self.url("/dashboard/"))[0], 200)

    def test_page_asks_for_a_token_and_keeps_it_in_the_tab(self):
        a = self.submit_as("alice", "a2-out")
        b_job = self.submit_as("bob", "b2-out")
        self.open("")
        b = self.browser
        token_input = eventually(lambda: b.find_element(By.ID, "token-input"), "the token form")
        token_input.send_keys(secrets.token_urlsafe(32))
        b.find_element(By.ID, "token-save").click()
        eventually(lambda: "refused" in self.text("#token-reason"), "a refused token")
        b.find_element(By.ID, "token-input").send_keys(self.tokens["bob"])
        b.find_element(By.ID, "token-save").click()
        row = eventually(lambda: b.find_element(By.CSS_SELECTOR, f'tr[data-job="{b_job.id}"]'),
                         "bob's job in the list")
        self.assertTrue(row.is_displayed())
        self.assertEqual(b.find_elements(By.CSS_SELECTOR, f'tr[data-job="{a.id}"]'), [])
        self.assertEqual(b.execute_script("return sessionStorage.getItem('signround.token')"),
                         self.tokens["bob"])
        b.save_screenshot(os.path.join(ARGS.artifacts_dir, "dashboard-tokens.png"))


@unittest.skipUnless(base.shutil.which("openssl"), "openssl missing (makes the test PKI)")
class DashboardOffTest(base.ServerTestCase):
    """Where the dashboard is off: mutual TLS without tokens (the HTTP port checks no client
    certificate, so it would show what mTLS hides), and --dashboard=false."""

    TMP_PREFIX = "signround-dash-off-"

    @classmethod
    def start(cls):
        pki = base.make_test_pki(os.path.join(cls.tmp, "pki"))
        cls.start_server([f"--tls-cert={pki['server.pem']}", f"--tls-key={pki['server.key']}",
                          f"--tls-client-ca={pki['ca.pem']}"])

    def assert_off(self, ready):
        self.assertIsNone(ready["dashboard"])
        for path in ("/api/v1/jobs", "/dashboard/"):
            self.assertEqual(http_get(f"http://{ready['metrics']}{path}")[0], 404, path)
        self.assertEqual(http_get(f"http://{ready['metrics']}/healthz")[0], 200)

    def test_mutual_tls_without_tokens_turns_it_off_with_a_warning(self):
        self.assert_off(self.ready)
        with open(self.log_path) as f:
            self.assertIn("dashboard off: --tls-client-ca without --tokens-file", f.read())

    def test_dashboard_false_turns_it_off(self):
        data = os.path.join(self.tmp, "data-off")
        server = base.subprocess.Popen(
            [ARGS.server_bin, "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
             f"--data-dir={data}", f"--worker-bin={ARGS.worker_bin}", "--dashboard=false"],
            stdout=base.subprocess.PIPE, stderr=base.subprocess.DEVNULL, text=True)
        try:
            line = base.read_ready_line(server, 60)
            self.assertIsNotNone(line)
            self.assert_off(json.loads(line))
        finally:
            server.terminate()
            server.stdout.close()
            self.assertEqual(server.wait(30), 0)


def main():
    global ARGS
    ARGS, rest = base.parse_paths(("--server-bin", "--worker-bin", "--proto-dir",
                                   "--artifacts-dir"))
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            print(f"SKIP: {program} missing (Debian's chromium and chromium-driver)")
            return SKIP
    os.makedirs(ARGS.artifacts_dir, exist_ok=True)
    base.ARGS = ARGS
    return base.run_tests(rest, (DashboardTest, DashboardTokenTest, DashboardOffTest))


if __name__ == "__main__":
    sys.exit(main())
