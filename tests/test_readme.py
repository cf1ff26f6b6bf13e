"""The README's first contact, as written: its opening, and its service example on a fresh service.

- The README opens with a paragraph saying what the engine is and does, then the two commands
  (``scripts/demo``, ``scripts/test``), both executable scripts of this repository.
- The ``## The service`` block runs as written: its first line (``kayenta-py serve --demo``)
  starts a real service in an empty directory, with no ``KAYENTA_*`` variable set (only a port
  of its own, so that a busy 8090 does not matter); the remaining lines run in bash against it.
  The config is stored, the analysis starts, and the verdict printed is the one the README
  shows; the analyses page lists the analysis and ``/docs`` answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_harness import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def fenced_block_after(heading: str) -> str:
    """The first ```bash block after ``heading``."""
    at = README.find("\n" + heading + "\n")
    assert at >= 0, f"no {heading!r} in README.md"
    start = README.index("```bash\n", at) + len("```bash\n")
    return README[start : README.index("```", start)]


def json_values(text: str) -> list[Any]:
    """Every JSON document printed one after another (curl prints no newline after a body)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def test_the_readme_opens_with_what_it_is_then_the_two_commands() -> None:
    title, rest = README.split("\n", 1)
    assert title == "# kayenta-py"
    paragraph, after = rest.strip("\n").split("\n\n", 1)
    assert paragraph.startswith("kayenta-py is an automated canary analysis engine")
    for word in ("baseline", "canary", "metrics", "verdict", "`pass`", "`fail`", "service"):
        assert word in paragraph, word
    commands = after.split("```bash\n", 1)
    assert commands[0] == "", "the two commands must follow the opening paragraph"
    lines = commands[1].split("```", 1)[0].splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == ["scripts/demo", "scripts/test"]
    for script in ("demo", "test"):
        assert os.access(ROOT / "scripts" / script, os.X_OK), script


@pytest.fixture
def fresh_service(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """The block's first line, run in an empty directory on a free port; yields (port, the rest)."""
    block = fenced_block_after("## The service")
    first, rest = block.split("\n", 1)
    command = first.split("#", 1)[0].split()
    assert command == ["kayenta-py", "serve", "--demo"], first
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [*command, "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "kayenta-py serve --demo not ready in 60 s"
            time.sleep(0.1)
        yield port, rest
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_the_service_example_works_on_a_fresh_service(fresh_service: tuple[int, str], tmp_path: Path) -> None:
    port, script = fresh_service
    assert "localhost:8090" in script
    assert shutil.which("curl"), "the README's example uses curl: apt-get install curl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("localhost:8090", f"127.0.0.1:{port}")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""
    stored, verdict = json_values(run.stdout)
    assert stored["name"] == "checkout" and stored["version"] == 1, stored
    shown = [line[2:] for line in script.splitlines() if line.startswith("# {")]
    assert len(shown) == 1
    assert verdict == json.loads(shown[0])  # what the README says the verdict answers
    url = f"http://127.0.0.1:{port}"
    listed = httpx.get(f"{url}/api/v1/analyses?config=checkout", timeout=30).json()["items"]
    assert len(listed) == 1 and listed[0]["status"] == "running"
    assert listed[0]["baseline_scope"] == "v1" and listed[0]["canary_scope"] == "v2"
    page = httpx.get(f"{url}/", timeout=30)
    assert page.status_code == 200 and f'data-id="{listed[0]["id"]}"' in page.text
    assert page.text.count("<tr data-id=") == 3  # and the two demo analyses --demo started
    docs = httpx.get(f"{url}/docs", timeout=30)
    assert docs.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in docs.text
