"""The deployment: ``Dockerfile`` and the Kubernetes manifests of ``deploy/``.

* ``deploy/base`` (and ``deploy/overlays/sqlite-single``) rendered by ``kubectl kustomize``, every
  document valid against the Kubernetes schema (``kubernetes-validate``, strict: an unknown field
  is an error), and what the service needs of them: several replicas, the Service that gives
  ``kayenta-py.kayenta.svc.cluster.local:8090``, the probes on ``/readyz`` and ``/healthz``, a
  PodDisruptionBudget over the Deployment's pods, the Secret it reads, non-root, resources.
* The pod's environment is accepted by the service's settings (every ``KAYENTA_*`` name exists),
  and the image's entrypoint run with that environment starts on a real PostgreSQL, migrates it
  and answers the probes and the image's HEALTHCHECK.
* ``config/argo-rollouts`` and ``config/flagger`` call kayenta-py at that Service
  (``tests/test_manifests.py`` checks those files against the CRDs and replays them).
* The ``Dockerfile``, statically; built and run only when a Docker daemon answers (``slow``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from conftest import fresh_postgres_database

from kayenta_py.cli.main import _parser
from kayenta_py.service.settings import Settings, environment_issues, load_settings

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "deploy" / "base"
SQLITE_SINGLE = ROOT / "deploy" / "overlays" / "sqlite-single"
DOCKERFILE = ROOT / "Dockerfile"
ROLLOUT_DIRS = (ROOT / "config" / "argo-rollouts", ROOT / "config" / "flagger")
NAMESPACE, NAME, PORT = "kayenta", "kayenta-py", 8090
POD_NAME = "kayenta-py-7d9c8b6f4d-x2k9q"  # what the downward API gives a pod of the Deployment
SERVICE_URL = f"http://{NAME}.{NAMESPACE}.svc.cluster.local:{PORT}"
# URLs in the rollout examples that are not kayenta-py's: the Kubernetes API (the Job step that
# stores the analysis id in a Secret).
NOT_KAYENTA = ("https://kubernetes.default.svc/",)
# The oldest Kubernetes the manifests are meant for, and the newest schema kubernetes-validate has.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KUBECTL = shutil.which("kubectl")

Doc = dict[str, Any]


def render(path: Path) -> list[Doc]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: the manifests cannot be rendered (kubectl kustomize)")
    done = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d is not None]
    assert all(isinstance(d, dict) for d in docs)
    return docs


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return render(BASE)


@pytest.fixture(scope="module")
def sqlite_single() -> list[Doc]:
    return render(SQLITE_SINGLE)


def one(docs: list[Doc], kind: str, name: str = NAME) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} documents"
    return found[0]


def container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: Doc = containers[0]
    return found


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a matchLabels-only label selector selects ``labels``."""
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize("overlay", ["base", "sqlite_single"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_document_is_valid(overlay: str, version: str, request: pytest.FixtureRequest) -> None:
    docs: list[Doc] = request.getfixturevalue(overlay)
    assert docs
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is not valid for Kubernetes {version}: {exc.message} at {list(exc.path)}")


def test_a_broken_document_is_refused() -> None:
    # The validation above is not vacuous: a misspelt field fails it.
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prots": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


# ---------------------------------------------------------------- what the service needs


def test_everything_is_in_the_kayenta_namespace(base: list[Doc]) -> None:
    assert one(base, "Namespace", NAMESPACE)
    for doc in base:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_deployment_runs_several_replicas_of_the_image(base: list[Doc]) -> None:
    deployment = one(base, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert selects(spec["selector"], spec["template"]["metadata"]["labels"])
    main = container(deployment)
    assert main["image"].split(":")[0].rsplit("/", 1)[-1] == NAME
    assert {"name": "http", "containerPort": PORT, "protocol": "TCP"} in main["ports"]
    # A rolling update never goes below the replicas (nor does the PDB allow more than one down).
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_service_gives_the_in_cluster_name(base: list[Doc]) -> None:
    service = one(base, "Service")
    deployment = one(base, "Deployment")
    # kayenta-py.kayenta.svc.cluster.local
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (NAME, NAMESPACE)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    (port,) = service["spec"]["ports"]
    assert port["port"] == PORT
    named = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert named.get(port["targetPort"], port["targetPort"]) == PORT


def test_probes_ask_readyz_and_healthz(base: list[Doc]) -> None:
    main = container(one(base, "Deployment"))
    named = {p["name"]: p["containerPort"] for p in main["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = main[probe]["httpGet"]
        assert get["path"] == path, probe
        assert named.get(get["port"], get["port"]) == PORT, probe
    # Both need no token (README: /healthz, /readyz and /metrics need no token).
    assert "httpHeaders" not in main["readinessProbe"]["httpGet"]


def test_pdb_selects_the_deployments_pods(base: list[Doc]) -> None:
    pdb = one(base, "PodDisruptionBudget")
    deployment = one(base, "Deployment")
    assert selects(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    replicas = deployment["spec"]["replicas"]
    if "minAvailable" in pdb["spec"]:
        assert 1 <= pdb["spec"]["minAvailable"] < replicas  # a drain can still proceed, one at a time
    else:
        assert pdb["spec"]["maxUnavailable"] == 1


def secret_refs(deployment: Doc) -> list[Doc]:
    refs = []
    for var in container(deployment).get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            refs.append({"env": var["name"], **ref})
    return refs


def test_secret_read_by_the_deployment_exists(base: list[Doc]) -> None:
    deployment = one(base, "Deployment")
    refs = secret_refs(deployment)
    assert {r["env"] for r in refs} >= {"KAYENTA_DATABASE_URL", "KAYENTA_API_TOKENS"}
    assert "envFrom" not in container(deployment)
    for ref in refs:
        secret = one(base, "Secret", ref["name"])
        data = {**secret.get("data", {}), **secret.get("stringData", {})}
        assert ref["key"] in data or ref.get("optional") is True, ref
        assert ref["env"] == ref["key"]  # one name for the setting, in the Secret and the pod
    # The database is PostgreSQL (several replicas need it), with a placeholder password.
    secret = one(base, "Secret")
    url = secret["stringData"]["KAYENTA_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "CHANGE-ME" in url


def test_pod_environment_names_only_real_settings(base: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    env = pod_environment(base)
    assert environment_issues(env) == []
    for name in [n for n in os.environ if n.upper().startswith("KAYENTA_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT / "deploy")  # no .env here
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.database_url is not None and settings.database_url.startswith("postgresql")
    assert {t.scope for t in settings.tokens()} == {"read", "write"}  # needed to bind 0.0.0.0
    assert settings.resolved_replica_id == POD_NAME  # the pod's name, from the downward API


def test_replica_id_is_the_pod_name(base: list[Doc], sqlite_single: list[Doc]) -> None:
    for docs in (base, sqlite_single):
        env = {v["name"]: v for v in container(one(docs, "Deployment"))["env"]}
        assert env["KAYENTA_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_service_links_are_off(base: list[Doc]) -> None:
    # Kubernetes would inject KAYENTA_PY_SERVICE_HOST, KAYENTA_PY_PORT... for the Service
    # kayenta-py, which the settings refuse: the pod must not get them.
    assert one(base, "Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False
    injected = {"KAYENTA_PY_SERVICE_HOST": "10.0.0.1", "KAYENTA_PY_PORT": f"tcp://10.0.0.1:{PORT}"}
    assert len(environment_issues(injected)) == 2


def test_runs_as_non_root_with_resources(base: list[Doc]) -> None:
    deployment = one(base, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid() != 0
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert set(main["resources"][kind]) == {"cpu", "memory"}, kind


def test_sqlite_overlay_is_one_replica_without_postgres(sqlite_single: list[Doc]) -> None:
    deployment = one(sqlite_single, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two processes on the file
    assert not [d for d in sqlite_single if d["kind"] == "PodDisruptionBudget"]
    assert "KAYENTA_DATABASE_URL" not in {v["name"] for v in container(deployment)["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    data = volumes[mounts[dockerfile_env()["KAYENTA_DATA_DIR"]]]
    claim = one(sqlite_single, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert claim["metadata"]["namespace"] == NAMESPACE


# ---------------------------------------------------------------- the pod's command, run here


def pod_environment(docs: list[Doc], **replace: str) -> dict[str, str]:
    """The container's environment as Kubernetes would give it: values, and the Secret's keys."""
    deployment = one(docs, "Deployment")
    env: dict[str, str] = {}
    for var in container(deployment)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        field = var["valueFrom"].get("fieldRef")
        if field is not None:  # the downward API: what Kubernetes gives a pod of the Deployment
            assert field == {"fieldPath": "metadata.name"}, field
            env[var["name"]] = POD_NAME
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        secret = one(docs, "Secret", ref["name"])
        if ref["key"] in secret.get("stringData", {}):
            env[var["name"]] = secret["stringData"][ref["key"]]
        else:
            assert ref.get("optional") is True, ref
    env.update(replace)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[str], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the service exited with {process.returncode}"
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200 within {timeout} s"
        time.sleep(0.3)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from fresh_postgres_database()


def test_entrypoint_with_the_pods_environment_serves_postgres(
    base: list[Doc], postgres_url: str, tmp_path: Path
) -> None:
    # The image's ENTRYPOINT, its installed console script, the pod's environment (the
    # Secret's PostgreSQL replaced by a fresh one), in a directory it cannot write to: it
    # migrates the database at start and answers the probes and the HEALTHCHECK.
    port = free_port()
    entrypoint = dockerfile_exec("ENTRYPOINT")
    assert entrypoint[0] == "kayenta-py"
    args = [a if a != str(PORT) else str(port) for a in entrypoint[1:]]
    script = Path(sys.executable).with_name("kayenta-py")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        **{k: v for k, v in dockerfile_env().items() if not k.startswith("KAYENTA_")},
        **pod_environment(base, KAYENTA_DATABASE_URL=postgres_url),
    }
    workdir = tmp_path / "readonly"
    workdir.mkdir()
    workdir.chmod(0o555)
    with subprocess.Popen(
        [str(script), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            ready = wait_for(f"http://127.0.0.1:{port}/readyz", process)
            assert ready.json()["status"] == "ready"
            health = healthcheck_command(port)
            assert subprocess.run(health, capture_output=True, timeout=10, check=False).returncode == 0
            token = pod_environment(base)["KAYENTA_API_TOKENS"].split(",")[1].split(":", 1)[1]
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/analyses", timeout=5).status_code == 401
            listed = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/analyses",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            assert listed.status_code == 200
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
    # SIGTERM (what Kubernetes sends) shuts it down cleanly (uvicorn re-raises the signal after).
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete." in output
    assert f"serving on http://0.0.0.0:{port} (bearer tokens required)" in output
    assert "CHANGE-ME" not in output  # the tokens are not logged
    # The HEALTHCHECK fails once nothing answers.
    assert subprocess.run(healthcheck_command(port), capture_output=True, timeout=10, check=False).returncode


# ---------------------------------------------------------------- the rollout examples


URL = re.compile(r"https?://[^\s\"'`)<>,]+")


def rollout_example_urls() -> list[tuple[str, str]]:
    found = []
    for directory in ROLLOUT_DIRS:
        for path in sorted(directory.iterdir()):
            if path.suffix in {".yaml", ".yml", ".md", ".json"}:
                for url in URL.findall(path.read_text(encoding="utf-8")):
                    found.append((str(path.relative_to(ROOT)), url))
    return found


def test_rollout_examples_call_the_service() -> None:
    urls = rollout_example_urls()
    assert len(urls) >= 10  # argo's two templates and their README, flagger's six hooks
    for where, url in urls:
        if url.startswith(NOT_KAYENTA):
            continue
        parts = urllib.parse.urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == SERVICE_URL, f"{where}: {url}"


def test_rollout_templates_default_to_the_service() -> None:
    # Parsed, not grepped: the values Argo and Flagger are given.
    argo = ROOT / "config" / "argo-rollouts"
    addresses = []
    for path in (argo / "analysis-template.yaml", argo / "kayenta-analysis-template.yaml"):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "AnalysisTemplate":
                addresses += [a["value"] for a in doc["spec"].get("args", []) if a["name"] == "kayenta-url"]
                for metric in doc["spec"]["metrics"]:
                    kayenta = metric["provider"].get("kayenta")
                    if kayenta:
                        addresses.append(kayenta["address"])
    assert len(addresses) == 4
    assert set(addresses) == {SERVICE_URL}
    canary = yaml.safe_load((ROOT / "config" / "flagger" / "canary.yaml").read_text(encoding="utf-8"))
    hooks = canary["spec"]["analysis"]["webhooks"]
    assert hooks and all(h["url"].startswith(SERVICE_URL + "/api/v1/flagger/") for h in hooks)


# ---------------------------------------------------------------- the Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def instruction(keyword: str) -> list[str]:
    return [rest for key, rest in dockerfile_instructions() if key == keyword]


def dockerfile_exec(keyword: str) -> list[str]:
    (text,) = instruction(keyword)
    parsed = json.loads(text)  # exec form: no shell between Docker and the process
    assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed)
    return parsed


def dockerfile_env() -> dict[str, str]:
    env = {}
    for text in instruction("ENV"):
        for item in shlex.split(text):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def dockerfile_uid() -> int:
    (user,) = instruction("USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric USER, so that Kubernetes' runAsNonRoot can check it"
    return int(uid)


def healthcheck_command(port: int = PORT) -> list[str]:
    (text,) = instruction("HEALTHCHECK")
    _, _, command = text.partition("CMD ")
    parsed = json.loads(command)
    assert isinstance(parsed, list) and parsed[0] == "python", "the image's python (slim has no curl)"
    return [sys.executable] + [p.replace(f":{PORT}/", f":{port}/") for p in parsed[1:]]


def test_dockerfile_base_user_port_healthcheck() -> None:
    (base,) = instruction("FROM")
    assert base == "python:3.11-slim"
    assert dockerfile_uid() != 0
    assert instruction("EXPOSE") == [str(PORT)]
    (health,) = instruction("HEALTHCHECK")
    assert "CMD" in health and f"http://127.0.0.1:{PORT}/healthz" in health
    assert "curl" not in health and "wget" not in health  # neither is in the slim image
    assert any("pip install" in run for run in instruction("RUN"))


def test_dockerfile_entrypoint_is_serve_on_all_interfaces() -> None:
    entrypoint = dockerfile_exec("ENTRYPOINT")
    assert entrypoint == ["kayenta-py", "serve", "--host", "0.0.0.0", "--port", str(PORT)]
    args = _parser().parse_args(entrypoint[1:])  # options serve really has
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", PORT)
    # KAYENTA_DATA_DIR is a setting, and the SQLite overlay mounts its volume there.
    assert environment_issues(dockerfile_env()) == []


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**" in lines  # everything out, then what the wheel needs back in
    copied = {p.split()[0] for p in instruction("COPY")}
    for source in copied:
        assert f"!{source}" in lines or f"!{source}/" in lines, source


def docker_problem() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        return "no Docker daemon answers (docker info failed)"
    return None


@pytest.mark.slow
def test_image_builds_and_answers_healthz() -> None:
    problem = docker_problem()
    if problem is not None:
        pytest.skip(problem)
    tag = f"kayenta-py-test:{uuid.uuid4().hex[:8]}"
    name = tag.replace(":", "-")
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1200)
    try:
        tokens = "KAYENTA_API_TOKENS=write:write-token-1,read:read-token-1"
        run = ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1::{PORT}", "-e", tokens, tag]
        subprocess.run(run, check=True, timeout=60)
        mapped = subprocess.run(
            ["docker", "port", name, str(PORT)], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://{mapped}/healthz", timeout=2)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the container did not answer /healthz"
            time.sleep(1)
        assert httpx.get(f"http://{mapped}/readyz", timeout=5).json()["status"] == "ready"
        user = subprocess.run(
            ["docker", "exec", name, "id", "-u"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        assert user == str(dockerfile_uid())
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=60, check=False)
