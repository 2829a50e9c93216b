#!/usr/bin/python3
"""Checks deploy/ and the Dockerfile without a cluster or a Docker engine.

- deploy/k8s renders with `kubectl kustomize` ($KUBECTL, default kubectl; both kustomize v2,
  kubectl 1.20, and v5 render it), and the rendered YAML and deploy/ pass
  `yamllint --strict -c tests/deploy/yamllint.yaml` ($YAMLLINT, default yamllint);
- the rendered objects: roles, probes, GPU requests, Secret references, security context,
  PodDisruptionBudgets, Prometheus annotations, graceful termination;
- the Dockerfile, statically (hadolint is not in Debian): pinned bases, non-root USER, the
  README's scripts, no secrets, apt hygiene; and the runtime package list covers the
  libraries of the built executables ($SIGNROUND_BIN_DIR, default build/bin) when there.

Tests that need kubectl, yamllint or python3-yaml skip with the reason when those are absent.
Run: /usr/bin/python3 tests/deploy/k8s_manifests_test.py [-v]
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

try:
    import yaml
except ImportError:  # python3-yaml (scripts/install-deps.sh installs it)
    yaml = None

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
YAMLLINT_CONFIG = REPO / "tests" / "deploy" / "yamllint.yaml"
DOCKERFILE = REPO / "Dockerfile"
INSTALL_DEPS = REPO / "scripts" / "install-deps.sh"

METRICS_PORT = 9464
GRPC_PORT = 50051
SECRET_WORDS = {"SECRET", "PASSWORD", "PASSWD", "TOKEN", "KEY", "CREDENTIAL", "CREDENTIALS"}


def tool(env_name, default):
    """The executable named by $env_name (default `default`), or None when it is absent."""
    return shutil.which(os.environ.get(env_name, default))


def render():
    kubectl = tool("KUBECTL", "kubectl")
    if kubectl is None:
        raise unittest.SkipTest("kubectl not found (set KUBECTL or install kubernetes-client)")
    out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"{kubectl} kustomize {K8S} failed:\n{out.stderr}")
    return out.stdout


def secret_like(name):
    return any(part in SECRET_WORDS for part in re.split(r"[^A-Za-z0-9]+", name.upper()))


class YamllintTest(unittest.TestCase):
    def setUp(self):
        self.yamllint = tool("YAMLLINT", "yamllint")
        if self.yamllint is None:
            self.skipTest("yamllint not found (apt-get install yamllint)")

    def lint(self, *paths):
        out = subprocess.run([self.yamllint, "--strict", "-f", "parsable", "-c",
                              str(YAMLLINT_CONFIG), *map(str, paths)],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_rendered_yaml_passes_yamllint(self):
        with tempfile.TemporaryDirectory() as tmp:
            rendered = Path(tmp) / "rendered.yaml"
            rendered.write_text(render())
            self.lint(rendered)

    def test_deploy_sources_pass_yamllint(self):
        self.lint(REPO / "deploy", YAMLLINT_CONFIG)


class RenderedManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if yaml is None:
            raise unittest.SkipTest("python3-yaml not installed")
        docs = [d for d in yaml.safe_load_all(render()) if d]
        cls.objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        cls.docs = docs
        cls.config = cls.objects[("ConfigMap", "signround-config")]["data"]
        cls.api = cls.objects[("Deployment", "signround-api")]
        cls.worker = cls.objects[("Deployment", "signround-worker")]

    @staticmethod
    def container(deployment):
        containers = deployment["spec"]["template"]["spec"]["containers"]
        return containers[0]

    def args(self, deployment):
        """The container's args with $(VAR) taken from its env's ConfigMap references."""
        env = {}
        for e in self.container(deployment).get("env", []):
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                env[e["name"]] = self.objects[("ConfigMap", ref["name"])]["data"][ref["key"]]
        return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
                for a in self.container(deployment)["args"]]

    def flag(self, deployment, name):
        values = [a.split("=", 1)[1] for a in self.args(deployment)
                  if a.startswith(f"--{name}=")]
        self.assertEqual(len(values), 1, f"--{name} in {self.args(deployment)}")
        return values[0]

    def deployments(self):
        return [self.api, self.worker]

    def test_expected_objects_and_no_secret_objects(self):
        kinds = sorted(self.objects)
        for key in [("ConfigMap", "signround-config"), ("Deployment", "signround-api"),
                    ("Deployment", "signround-worker"), ("Service", "signround-api"),
                    ("PodDisruptionBudget", "signround-api"),
                    ("PodDisruptionBudget", "signround-worker")]:
            self.assertIn(key, self.objects, kinds)
        self.assertNotIn("Secret", {d["kind"] for d in self.docs},
                         "Secrets must not be part of the kustomization")
        self.assertTrue(all("namespace" not in d["metadata"] for d in self.docs),
                        "manifests must stay namespace-agnostic")
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        self.assertNotIn("secret.example.yaml", kustomization["resources"])
        self.assertTrue((K8S / "secret.example.yaml").is_file())

    def test_roles_and_listen_addresses(self):
        self.assertEqual(self.flag(self.api, "role"), "api")
        self.assertEqual(self.flag(self.worker, "role"), "worker")
        self.assertEqual(self.api["spec"]["replicas"], 2)
        self.assertEqual(self.flag(self.api, "listen"), f"0.0.0.0:{GRPC_PORT}")
        for d in self.deployments():
            self.assertEqual(self.flag(d, "metrics-listen"), f"0.0.0.0:{METRICS_PORT}")
            self.assertTrue(self.flag(d, "store").startswith("postgres://"))
            self.assertNotRegex(self.flag(d, "store"), r"//[^/@]*:[^/@]*@",
                                "the Postgres URL must not carry a password")

    def test_probes_on_health_endpoints_and_metrics_port(self):
        for d in self.deployments():
            c = self.container(d)
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
                get = c[probe]["httpGet"]
                self.assertEqual(get["path"], path, d["metadata"]["name"])
                port = ports.get(get["port"], get["port"])
                self.assertEqual(port, METRICS_PORT, d["metadata"]["name"])

    def test_worker_requests_one_gpu_with_one_slot(self):
        res = self.container(self.worker)["resources"]
        self.assertEqual(str(res["requests"]["nvidia.com/gpu"]), "1")
        self.assertEqual(str(res["limits"]["nvidia.com/gpu"]), "1")
        self.assertEqual(self.flag(self.worker, "devices"), "cuda:0")
        self.assertNotIn("nvidia.com/gpu", str(self.container(self.api)["resources"]))

    def test_resources_requested_and_limited(self):
        for d in self.deployments():
            res = self.container(d)["resources"]
            for kind in ("requests", "limits"):
                self.assertIn("cpu", res[kind], d["metadata"]["name"])
                self.assertIn("memory", res[kind], d["metadata"]["name"])

    def test_secrets_come_from_secret_key_refs(self):
        wanted = {"signround-api": {"PGPASSWORD"},
                  "signround-worker": {"PGPASSWORD", "AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY"}}
        for d in self.deployments():
            env = {e["name"]: e for e in self.container(d).get("env", [])}
            for name in wanted[d["metadata"]["name"]]:
                self.assertIn(name, env, d["metadata"]["name"])
                self.assertIn("secretKeyRef", env[name].get("valueFrom", {}), name)

    def test_no_plain_text_secret_values(self):
        for d in self.deployments():
            c = self.container(d)
            self.assertNotIn("envFrom", c)
            for e in c.get("env", []):
                if "value" in e:
                    self.assertFalse(secret_like(e["name"]), f"plain-text {e['name']}")
                if secret_like(e["name"]):
                    self.assertIn("secretKeyRef", e.get("valueFrom", {}), e["name"])
            for a in c.get("args", []):
                self.assertFalse(secret_like(a.split("=", 1)[0].lstrip("-")), a)
        for key, value in self.config.items():
            self.assertFalse(secret_like(key), key)
            self.assertNotRegex(value, r"//[^/@]*:[^/@]*@", key)

    def test_security_context(self):
        for d in self.deployments():
            pod = d["spec"]["template"]["spec"]
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            self.assertNotEqual(pod["securityContext"].get("runAsUser"), 0)
            self.assertFalse(pod.get("automountServiceAccountToken", True))
            c = self.container(d)
            sc = c["securityContext"]
            self.assertTrue(sc["readOnlyRootFilesystem"])
            self.assertFalse(sc["allowPrivilegeEscalation"])
            self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
            # Writable places are emptyDirs: /tmp, and the worker's data dir.
            empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            paths = ["/tmp"] + ([self.flag(d, "data-dir")] if d is self.worker else [])
            for path in paths:
                self.assertIn(mounts.get(path), empty, f"{d['metadata']['name']}: {path}")

    def test_graceful_termination_outlasts_the_drain(self):
        pod = self.worker["spec"]["template"]["spec"]
        drain = int(self.flag(self.worker, "drain-seconds"))
        self.assertGreater(pod["terminationGracePeriodSeconds"], drain)
        for d in self.deployments():
            self.assertNotIn("lifecycle", self.container(d), "SIGTERM alone drains: no preStop")

    def test_pod_disruption_budgets_select_the_deployments(self):
        for d in self.deployments():
            pdb = self.objects[("PodDisruptionBudget", d["metadata"]["name"])]
            labels = d["spec"]["template"]["metadata"]["labels"]
            selector = pdb["spec"]["selector"]["matchLabels"]
            self.assertTrue(selector.items() <= labels.items(), d["metadata"]["name"])
            self.assertTrue({"minAvailable", "maxUnavailable"} & set(pdb["spec"]))

    def test_service_routes_grpc_and_metrics(self):
        svc = self.objects[("Service", "signround-api")]["spec"]
        ports = {p["name"]: p["containerPort"] for p in self.container(self.api)["ports"]}
        targets = {p["port"]: ports.get(p["targetPort"], p["targetPort"]) for p in svc["ports"]}
        self.assertEqual(targets, {GRPC_PORT: GRPC_PORT, METRICS_PORT: METRICS_PORT})
        labels = self.api["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(svc["selector"].items() <= labels.items())

    def test_prometheus_scrape_annotations(self):
        for d in self.deployments():
            ann = d["spec"]["template"]["metadata"]["annotations"]
            self.assertEqual(ann["prometheus.io/scrape"], "true")
            self.assertEqual(ann["prometheus.io/port"], str(METRICS_PORT))
            self.assertEqual(ann["prometheus.io/path"], "/metrics")

    def test_images_pinned(self):
        for d in self.deployments():
            image = self.container(d)["image"]
            name, _, tag = image.rpartition(":")
            self.assertTrue(name and "/" not in tag and tag not in ("", "latest"), image)
        self.assertIn("cuda", self.container(self.worker)["image"])

    def test_prometheus_scrape_config(self):
        doc = yaml.safe_load((REPO / "deploy" / "prometheus" / "scrape.yaml").read_text())
        job = doc["scrape_configs"][0]
        self.assertEqual(job["kubernetes_sd_configs"], [{"role": "pod"}])
        labels = [label for r in job["relabel_configs"] for label in r["source_labels"]]
        for a in ("scrape", "path", "port"):
            self.assertIn(f"__meta_kubernetes_pod_annotation_prometheus_io_{a}", labels)


def dockerfile_instructions():
    """(stage index, INSTRUCTION, arguments) with continuations joined, comments dropped."""
    lines, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not buf and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    out, stage = [], -1
    for line in lines:
        instr, _, rest = line.strip().partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, rest.strip()))
    return out


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.instr = dockerfile_instructions()
        cls.global_args = {}
        for stage, instr, rest in cls.instr:
            if stage == -1 and instr == "ARG":
                name, _, default = rest.partition("=")
                cls.global_args[name] = default.strip('"')
        cls.stages = []  # (alias, base as written, base with ARG defaults)
        for stage, instr, rest in cls.instr:
            if instr == "FROM":
                words = [w for w in rest.split() if not w.startswith("--")]
                base = words[0]
                alias = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
                resolved = re.sub(r"\$\{?(\w+)\}?",
                                  lambda m: cls.global_args.get(m.group(1), ""), base)
                cls.stages.append((alias, base, resolved))
        cls.final = len(cls.stages) - 1

    def runs(self, stage=None):
        return [rest for s, i, rest in self.instr if i == "RUN" and stage in (None, s)]

    def stage_index(self, alias):
        return [a for a, _, _ in self.stages].index(alias)

    def test_base_images_pinned(self):
        aliases = set()
        for alias, base, resolved in self.stages:
            if resolved not in aliases:
                self.assertTrue(resolved, f"FROM {base}: unset ARG")
                name, _, tag = resolved.rpartition(":")
                digest = "@sha256:" in resolved
                self.assertTrue(digest or (name and "/" not in tag), f"untagged: FROM {base}")
                self.assertNotEqual(tag, "latest", f"FROM {base}")
            if alias:
                aliases.add(alias)
        # Every variant a build argument can select is a stage, and the CUDA base is pinned.
        torch = [a for a, _, _ in self.stages if a and a.startswith("torch-")]
        self.assertEqual(sorted(torch), ["torch-cpu", "torch-cuda"])
        self.assertRegex(self.global_args["BASE_IMAGE"], r"^debian:bookworm-\d{8}-slim$")
        self.assertNotIn("latest", self.global_args["CUDA_IMAGE"])

    def test_runs_as_non_root_with_signround_server_entrypoint(self):
        final = [(i, rest) for s, i, rest in self.instr if s == self.final]
        kinds = [i for i, _ in final]
        self.assertIn("USER", kinds)
        self.assertIn("ENTRYPOINT", kinds)
        user_at = max(n for n, i in enumerate(kinds) if i == "USER")
        self.assertLess(user_at, kinds.index("ENTRYPOINT"))
        user = final[user_at][1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        self.assertTrue(user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot")
        self.assertEqual(final[kinds.index("ENTRYPOINT")][1], '["signround-server"]')
        exposed = " ".join(rest for i, rest in final if i == "EXPOSE").split()
        self.assertEqual(sorted(exposed), sorted([str(GRPC_PORT), str(METRICS_PORT)]))

    def test_builds_with_the_readme_scripts(self):
        builder = self.runs(self.stage_index("builder"))
        self.assertTrue(any("./scripts/install-deps.sh" in r for r in builder))
        self.assertTrue(any("./scripts/build.sh" in r for r in builder))
        runtime = self.runs(self.final)
        self.assertTrue(any(re.search(r"scripts/install-deps\.sh --runtime", r)
                            for r in runtime))
        self.assertFalse(any(re.search(r"(^|[;&|]\s*)(cmake|ninja|make|g\+\+|c\+\+)\s", r)
                             for r in self.runs()), "a second build recipe")

    def test_no_secrets_in_env_or_args(self):
        for _, instr, rest in self.instr:
            if instr in ("ENV", "ARG"):
                names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", rest)
                for name in names:
                    self.assertFalse(secret_like(name), f"{instr} {name}")
        text = DOCKERFILE.read_text()
        self.assertNotRegex(text, r"AWS_(ACCESS|SECRET)|PGPASSWORD=")

    def test_apt_hygiene(self):
        for run in self.runs():
            if "apt-get install" in run:
                self.assertIn("--no-install-recommends", run)
                self.assertRegex(run, r"apt-get install -y\b")
            if "apt-get" in run or "install-deps.sh" in run:
                self.assertIn("rm -rf /var/lib/apt/lists/*", run, run)
            self.assertNotRegex(
                run, r"apt-get (dist-)?upgrade|\bsudo\b|curl\b[^|;&]*\|\s*(ba)?sh\b")
        deps = INSTALL_DEPS.read_text()
        self.assertRegex(deps, r"apt-get install -y[^\n]*--no-install-recommends")
        for _, instr, rest in self.instr:
            self.assertNotEqual(instr, "ADD", "COPY, not ADD")
        self.assertEqual(self.instr[0][1], "ARG")
        self.assertTrue(DOCKERFILE.read_text().startswith("# syntax=docker/dockerfile:1"))

    def test_dockerignore_excludes_build_trees_and_git(self):
        patterns = {p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                    if p.strip() and not p.startswith("#")}
        for p in (".git", "build", "build-*"):
            self.assertIn(p, patterns)


def runtime_packages():
    text = INSTALL_DEPS.read_text()
    body = re.search(r"^RUNTIME_PACKAGES=\((.*?)^\)", text, re.S | re.M).group(1)
    return {w for line in body.splitlines() for w in line.split("#")[0].split()}


def installed_depends():
    """Installed package -> the names it depends on (every alternative, virtual names too)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"],
                         capture_output=True, text=True).stdout
    deps = {}
    for line in out.splitlines():
        pkg, _, fields = line.partition("\t")
        deps.setdefault(pkg, set()).update(
            re.findall(r"(?:^|[,|]\s*)([a-z0-9][a-z0-9+.-]+)", fields))
    return deps


class RuntimePackagesTest(unittest.TestCase):
    """The image's runtime stage installs `install-deps.sh --runtime`: it must cover every
    shared library the executables link (checked on the build here, when there is one)."""

    def test_runtime_packages_cover_linked_libraries(self):
        bin_dir = Path(os.environ.get("SIGNROUND_BIN_DIR", REPO / "build" / "bin"))
        bins = [bin_dir / b for b in ("signround-server", "signround-worker", "signround")]
        bins = [b for b in bins if b.is_file()]
        if not bins or not shutil.which("dpkg") or not shutil.which("ldd"):
            self.skipTest(f"no executables in {bin_dir} (or no dpkg) to check")
        closure, todo, deps = set(), list(runtime_packages()), installed_depends()
        while todo:
            p = todo.pop()
            if p not in closure:
                closure.add(p)
                todo.extend(deps.get(p, ()))
        users = {}  # library (real path) -> the executables that link it
        for b in bins:
            ldd = subprocess.run(["ldd", str(b)], capture_output=True, text=True).stdout
            for lib in re.findall(r"=> (/\S+)", ldd):
                users.setdefault(os.path.realpath(lib), set()).add(b.name)
        # One dpkg -S for all; libraries of no package (a CUDA LibTorch) the image copies.
        owners = subprocess.run(["dpkg", "-S", *sorted(users)], capture_output=True,
                                text=True).stdout
        missing = {}
        for line in owners.splitlines():
            if line.startswith("diversion "):
                continue
            pkgs, _, path = line.partition(": ")
            for pkg in pkgs.split(", "):
                pkg = pkg.split(":")[0]
                if path in users and pkg not in closure:
                    missing.setdefault(pkg, set()).update(f"{u}: {path}" for u in users[path])
        self.assertEqual(missing, {}, "add these to RUNTIME_PACKAGES in scripts/install-deps.sh")
        self.assertIn("libsentencepiece0", runtime_packages(), "opened with dlopen at run time")


if __name__ == "__main__":
    unittest.main()
