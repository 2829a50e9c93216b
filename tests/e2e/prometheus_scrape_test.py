#!/usr/bin/python3
"""A real Prometheus (Debian's `prometheus`) scrapes a real signround-server on loopback,
with deploy/prometheus/alerts.yaml loaded, and the test reads it back through
Prometheus's HTTP API: the target is up, the job and RPC series count what the test did,
the rules load and evaluate, and a failed job fires SignroundJobsFailing.

Usage: prometheus_scrape_test.py --server-bin PATH --worker-bin PATH --proto-dir DIR
           --rules PATH
Exit codes: 0 passed, 1 failed, 77 skipped (prometheus, grpc or grpc_tools missing).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77

if not shutil.which("prometheus"):
    print("SKIP: prometheus missing (Debian: prometheus)")
    sys.exit(SKIP)

import python_client_test as base  # exits 77 without grpc / grpc_tools


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusScrapeTest(base.ServerTestCase):
    TMP_PREFIX = "signround-prom-"

    @classmethod
    def start(cls):
        cls.pb2, pb2_grpc = base.generate_stubs(ARGS.proto_dir, os.path.join(cls.tmp, "gen"))
        cls.make_model()
        cls.start_server()
        cls.channel = base.grpc.insecure_channel(cls.ready["grpc"])
        cls.stub = pb2_grpc.QuantizationServiceStub(cls.channel)
        config = os.path.join(cls.tmp, "prometheus.yml")
        with open(config, "w") as f:
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "rule_files": [ARGS.rules],
                       "scrape_configs": [{"job_name": "signround", "static_configs": [
                           {"targets": [cls.ready["metrics"]]}]}]}, f)  # JSON is YAML
        cls.prometheus_url = "http://127.0.0.1:%d" % free_port()
        cls.prometheus_log = open(os.path.join(cls.tmp, "prometheus.log"), "w")
        cls.prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(cls.tmp, 'tsdb')}",
             f"--web.listen-address={cls.prometheus_url[len('http://'):]}"],
            stdout=cls.prometheus_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not cls.get_ok("/-/ready"):
            if cls.prometheus.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready; log:\n" +
                                   open(cls.prometheus_log.name).read()[-3000:])
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "prometheus", None):
            cls.prometheus.terminate()
            try:
                cls.prometheus.wait(30)
            except subprocess.TimeoutExpired:
                cls.prometheus.kill()
                cls.prometheus.wait()
            cls.prometheus_log.close()
        super().tearDownClass()

    @classmethod
    def get_ok(cls, path):
        try:
            with urllib.request.urlopen(cls.prometheus_url + path, timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path, **params):
        url = self.prometheus_url + "/api/v1/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def query(self, promql):
        """{frozenset(labels without __name__/instance/job): value} of an instant query."""
        result = self.api("query", query=promql)["result"]
        return {frozenset((k, v) for k, v in s["metric"].items()
                          if k not in ("__name__", "instance", "job")): float(s["value"][1])
                for s in result}

    def eventually(self, check, what, timeout=60):
        """Calls check() until it returns a true value (retrying on AssertionError)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = check()
                if value:
                    return value
                problem = "no result"
            except AssertionError as e:
                problem = str(e)
            if time.monotonic() > deadline:
                self.fail(f"{what} within {timeout} s: {problem}")
            time.sleep(0.5)

    def run_job(self, model):
        pb2 = self.pb2
        spec = pb2.JobSpec(model_uri="file://" + model,
                           output_uri="file://" + os.path.join(self.tmp, "out-" + model[-4:]),
                           group_size=32, recipe=pb2.RECIPE_RTN)
        job = self.stub.SubmitJob(pb2.SubmitJobRequest(spec=spec), timeout=30).job
        events = list(self.stub.WatchJob(pb2.WatchJobRequest(job_id=job.id), timeout=120))
        return events[-1].state_change.to

    def test_scrape_series_and_alert(self):
        pb2 = self.pb2
        # Scraped before any job: every known outcome is already a 0 series, so the first
        # failure is an increase Prometheus can see.
        self.eventually(lambda: self.query('up{job="signround"}') == {frozenset(): 1.0},
                        "the target up")
        self.eventually(lambda: self.query('signround_job_attempts_total{outcome="failed"}')
                        == {frozenset({("outcome", "failed")}): 0.0}, "a failed-attempts 0")
        # increase() extrapolates to the evaluation time, up to 1.1 sample intervals past the
        # last sample: on a series with only two samples one failure reads as ~2. With at least
        # 6 samples (5 intervals) before the failure it reads at most 1 + 1.1 / 5 = 1.22, which
        # the description prints as 1 (a series older than the 15 min window reads ~1.001).
        self.eventually(lambda: self.query(
            'count_over_time(signround_job_attempts_total{outcome="failed"}[5m]) >= 6'),
            "six samples of the failed-attempts series")
        rules = self.api("rules")["groups"]
        self.assertEqual({r["name"] for g in rules for r in g["rules"]},
                         {"SignroundJobsFailing", "SignroundQueueGrowing",
                          "SignroundLeaseRenewalsFailing", "SignroundWorkerLeaseLapsed",
                          "SignroundSlowBlocks"})

        broken = os.path.join(self.tmp, "bad-model")
        os.makedirs(broken)
        with open(os.path.join(broken, "config.json"), "w") as f:
            f.write("[]")
        self.assertEqual(self.run_job(self.model), pb2.JOB_STATE_SUCCEEDED, self.log_tail())
        self.assertEqual(self.run_job(broken), pb2.JOB_STATE_FAILED, self.log_tail())

        def counted():
            self.assertEqual(self.query('signround_job_submissions_total'),
                             {frozenset({("result", "created")}): 2.0,
                              frozenset({("result", "duplicate")}): 0.0})
            attempts = self.query('signround_job_attempts_total')
            self.assertEqual(attempts[frozenset({("outcome", "succeeded")})], 1.0)
            self.assertEqual(attempts[frozenset({("outcome", "failed")})], 1.0)
            self.assertEqual(self.query('signround_jobs{state=~"SUCCEEDED|FAILED"}'),
                             {frozenset({("state", "SUCCEEDED")}): 1.0,
                              frozenset({("state", "FAILED")}): 1.0})
            self.assertEqual(self.query('signround_rpc_total{method="SubmitJob"}'),
                             {frozenset({("method", "SubmitJob"), ("code", "OK")}): 2.0})
            self.assertEqual(self.query('signround_queue_depth'), {frozenset(): 0.0})
            self.assertEqual(self.query('signround_watch_streams'), {frozenset(): 0.0})
            self.assertEqual(self.query('signround_lease_renewals_total{result="failed"}'),
                             {frozenset({("result", "failed")}): 0.0})
            return True
        self.eventually(counted, "the scraped series to count two jobs")

        def firing():
            alerts = self.api("alerts")["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "SignroundJobsFailing"
                    and a["state"] == "firing"]
        alert = self.eventually(firing, "SignroundJobsFailing firing")[0]
        self.assertEqual(alert["labels"]["severity"], "warning")
        self.assertTrue(alert["annotations"]["description"].startswith("1 job(s) failed"),
                        alert)
        others = [a["labels"]["alertname"] for a in self.api("alerts")["alerts"]
                  if a["labels"]["alertname"] != "SignroundJobsFailing"]
        self.assertEqual(others, [])
        # Every rule evaluated against the real series without an error.
        for group in self.api("rules")["groups"]:
            for rule in group["rules"]:
                self.assertEqual(rule["health"], "ok", rule)


def main():
    global ARGS
    ARGS, rest = base.parse_paths(("--server-bin", "--worker-bin", "--proto-dir", "--rules"))
    base.ARGS = ARGS
    return base.run_tests(rest, (PrometheusScrapeTest,))


if __name__ == "__main__":
    sys.exit(main())
