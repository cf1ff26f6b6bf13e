"""Settings are strict and ``kayenta-py serve`` says what it runs on (issue 11, parts 5 and 6).

* An unknown ``KAYENTA_*`` environment variable is an error naming the nearest setting, as an
  unknown key of the settings file or ``.env`` is; the variables this project's own tooling
  reads are allowed, and a test scans the repository so that a new one cannot slip through.
* ``serve`` exits 2 (a usage error, never 3, which means marginal) with a one-line message
  and no traceback: an unknown variable, a port already in use.
* The start banner names the default source (or "none") and the database URL, its password
  masked; ``--demo`` makes demo the default source, nothing else does implicitly.

``serve`` runs as a real subprocess; the banner test uses a fresh PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import fresh_postgres_database
from prometheus_harness import free_port
from sqlalchemy.engine import make_url

from kayenta_py.model.errors import ConfigError
from kayenta_py.service.settings import TOOLING_VARIABLES, Settings, load_settings, setting_variables
from kayenta_py.service.store.checks import masked_url

KAYENTA_PY = Path(sys.executable).with_name("kayenta-py")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No KAYENTA_* variable of the caller's environment, and no .env file, in play."""
    for name in list(os.environ):
        if name.upper().startswith("KAYENTA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KAYENTA_")}
    env.update({"KAYENTA_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def run_serve(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``kayenta-py serve *args`` to its end (it must exit), output captured."""
    return subprocess.run(
        [str(KAYENTA_PY), "serve", *args],
        cwd=tmp_path,
        env=environment(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str, **extra: str) -> Iterator[tuple[str, Path]]:
    """Run ``kayenta-py serve`` until the block ends; yield its URL and its stderr file."""
    port = free_port()
    err_path = tmp_path / "serve.err"
    with err_path.open("w") as err:
        process = subprocess.Popen(
            [str(KAYENTA_PY), "serve", "--port", str(port), *args],
            cwd=tmp_path,
            env=environment(tmp_path, **extra),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 40
            while True:
                if process.poll() is not None:
                    pytest.fail(f"serve exited with {process.returncode}: {err_path.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, "serve did not become ready in 40 s"
                time.sleep(0.1)
            yield url, err_path
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# ---------------------------------------------------------------- unknown variables


def test_an_unknown_variable_is_an_error_naming_the_near_match(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYENTA_PROMETHEUS_ULR", "http://prometheus:9090")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "KAYENTA_PROMETHEUS_ULR" in str(error.value)
    assert "did you mean KAYENTA_PROMETHEUS_URL?" in str(error.value)
    with pytest.raises(ConfigError):  # also when Settings are built directly
        Settings(_env_file=None)


def test_variables_are_compared_in_upper_case(monkeypatch: pytest.MonkeyPatch) -> None:
    # the settings read variables case-insensitively, so a lower-case typo must not slip through
    monkeypatch.setenv("kayenta_api_token", "write:abcdefgh")
    with pytest.raises(ConfigError, match="did you mean KAYENTA_API_TOKENS"):
        load_settings()


def test_every_setting_and_tooling_variable_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOOLING_VARIABLES:
        if name != "KAYENTA_SETTINGS_FILE":  # (names a file that must exist)
            monkeypatch.setenv(name, "1")
    monkeypatch.setenv("KAYENTA_FETCH_CONCURRENCY", "4")
    monkeypatch.setenv("kayenta_port", "8091")
    settings = load_settings()
    assert (settings.fetch_concurrency, settings.port) == (4, 8091)
    assert "KAYENTA_PROMETHEUS_URL" in setting_variables() and "KAYENTA_SLACK_CHANNELS" in setting_variables()


def test_a_kubernetes_service_link_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYENTA_SERVICE_HOST", "10.0.0.7")
    with pytest.raises(ConfigError, match="enableServiceLinks: false"):
        load_settings()


def test_unknown_keys_of_the_settings_file_and_dotenv_name_the_near_match(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("prometheus_urll: http://prometheus:9090\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"prometheus_urll: unknown setting; did you mean prometheus_url\?"):
        load_settings(settings)
    (tmp_path / ".env").write_text("KAYENTA_DEFAULT_SOURSE=demo\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean KAYENTA_DEFAULT_SOURCE"):
        load_settings()


# How code reads or sets a variable: os.environ[...] / .get(...), getenv(...), setenv(...),
# env[...] / environment[...], YAML env lists (- name: X), and X=value (shell, keyword arguments).
READ_OR_SET = re.compile(
    r"""(?:(?:environ(?:\.get\(|\[)|getenv\(|setenv\(|env(?:ironment)?\[)\s*["']|-\s+name:\s+)"""
    r"""(KAYENTA_[A-Z0-9_]*[A-Z0-9])\b|\b(KAYENTA_[A-Z0-9_]*[A-Z0-9])=""",
)


def test_every_variable_the_repository_reads_or_sets_is_a_setting_or_allowed() -> None:
    """Scan code, scripts, notebooks and manifests: a KAYENTA_* variable the project reads from
    the environment (or sets for a process) must be a setting or a documented tooling variable,
    or ``serve`` would refuse to start where it is set."""
    allowed = set(setting_variables()) | set(TOOLING_VARIABLES)
    # Client-side variables of the Argo Rollouts examples: set in the analysis Job's container
    # and a user's shell, never where `kayenta-py serve` runs (the README says so).
    clients = {"KAYENTA_URL", "KAYENTA_TOKEN", "KAYENTA_WRITE_TOKEN"}
    found: dict[str, set[str]] = {}
    suffixes = {".py", ".ipynb", ".sh", ".yaml", ".yml", ".md", ".toml", ".json"}
    for path in REPO.rglob("*"):
        parts = set(path.relative_to(REPO).parts)
        if parts & {".venv", ".git", "kayenta-data", ".mypy_cache", ".ruff_cache", "kayenta_py.egg-info"}:
            continue
        if not path.is_file() or (path.suffix not in suffixes and path.parent.name != "scripts"):
            continue
        if path.name in (Path(__file__).name, "test_source_settings.py"):  # misspelt or made-up on purpose
            continue
        for match in READ_OR_SET.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.setdefault(match.group(1) or match.group(2), set()).add(str(path.relative_to(REPO)))
    assert "KAYENTA_CONFORMANCE_FILE" in found and "KAYENTA_TEST_POSTGRES_URL" in found  # the scan works
    stray = {name: sorted(where) for name, where in found.items() if name not in allowed | clients}
    assert not stray, f"KAYENTA_* variables neither settings nor allowed: {stray}"
    # and the README documents the allowed ones
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in (*TOOLING_VARIABLES, *clients))


def test_default_source_is_checked_when_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYENTA_DEFAULT_SOURCE", "prometheus")
    with pytest.raises(ConfigError, match="needs prometheus_url"):
        load_settings()
    monkeypatch.setenv("KAYENTA_DEFAULT_SOURCE", "demo-data")
    with pytest.raises(ConfigError, match="default_source"):
        load_settings()
    monkeypatch.setenv("KAYENTA_DEFAULT_SOURCE", "")  # empty is unset
    monkeypatch.setenv("KAYENTA_PROMETHEUS_URL", "")
    assert load_settings().resolved_default_source() is None
    monkeypatch.setenv("KAYENTA_PROMETHEUS_URL", "http://prometheus:9090")
    assert load_settings().resolved_default_source() == "prometheus"


# ---------------------------------------------------------------- serve: exit codes


def test_serve_with_an_unknown_variable_exits_2_naming_it(tmp_path: Path) -> None:
    done = run_serve(tmp_path, "--port", str(free_port()), KAYENTA_PROMETHEUS_ULR="http://prometheus:9090")
    assert done.returncode == 2, done.stderr
    assert "KAYENTA_PROMETHEUS_ULR" in done.stderr and "did you mean KAYENTA_PROMETHEUS_URL?" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_on_a_port_in_use_exits_2_naming_host_and_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, "--port", str(port))
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert f"127.0.0.1:{port}" in done.stderr and "already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "data" / "kayenta.db").exists()  # refused before touching the database


def test_serve_on_an_unusable_database_exits_2_without_a_traceback(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://kayenta:hunter2secret@127.0.0.1:{free_port()}/kayenta"
    done = run_serve(tmp_path, "--port", str(free_port()), KAYENTA_DATABASE_URL=url)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "kayenta:***@127.0.0.1" in done.stderr and "hunter2secret" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- serve: banner and the demo source


def test_the_banner_names_no_default_source_and_masks_the_database_password(tmp_path: Path) -> None:
    with contextlib.contextmanager(fresh_postgres_database)() as url:  # trust auth: any password works
        with_password = make_url(url).set(password="hunter2secret").render_as_string(hide_password=False)
        with serving(tmp_path, KAYENTA_DATABASE_URL=with_password) as (base, err):
            banner = err.read_text()
            refused = httpx.post(
                f"{base}/api/v1/analyses",
                json={
                    "config": {"name": "c", "metrics": [{"name": "error-ratio", "kind": "errors"}]},
                    "baseline_scope": "b",
                    "canary_scope": "c",
                },
                timeout=10,
            )
        assert "default source none" in banner and "KAYENTA_PROMETHEUS_URL" in banner, banner
        assert masked_url(with_password) in banner and "postgres:***@" in banner, banner
        assert "hunter2secret" not in banner
        assert refused.status_code == 422 and "KAYENTA_DEFAULT_SOURCE" in refused.text


def test_serve_demo_makes_demo_the_default_source(tmp_path: Path) -> None:
    with serving(tmp_path, "--demo") as (base, err):
        created = httpx.post(
            f"{base}/api/v1/analyses",
            json={
                "config": {"name": "c", "metrics": [{"name": "error-ratio", "kind": "errors"}]},
                "baseline_scope": "baseline",
                "canary_scope": "canary",
                "lifetime": "PT1M",
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        source = httpx.get(f"{base}/api/v1/analyses/{created.json()['id']}", timeout=10).json()["source"]
        deadline = time.monotonic() + 20
        while "demo regressed canary" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        banner = err.read_text()
    assert source == "demo"
    assert (
        "default source demo" in banner
        and "demo healthy canary" in banner
        and "demo regressed canary" in banner
    )


def test_scripts_demo_asks_for_the_demo_source() -> None:
    script = (REPO / "scripts" / "demo").read_text(encoding="utf-8")
    assert re.search(r"kayenta-py serve --demo\b", script)
