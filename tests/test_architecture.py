"""House rules of docs/architecture.md, checked: import layers, plugins on the public API, module sizes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kayenta_py", "judges", "metrics_sources")
MAX_LINES = 450
PUBLIC_API = {"kayenta_py", "kayenta_py.plugin"}


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_import_linter_contracts_hold() -> None:
    """The layered contracts in pyproject.toml (cli > http : integrations : backtest > service > ...)."""
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize("package", ["judges", "metrics_sources"])
def test_plugins_import_only_the_public_api(package: str) -> None:
    """Plugins are written against ``kayenta_py`` and ``kayenta_py.plugin``, as a third party's would be."""
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _modules(package)
        for line, name in _imports(path)
        if name.split(".")[0] == "kayenta_py" and name not in PUBLIC_API
    ]
    assert not offences, "\n".join(offences)


def test_the_core_never_imports_a_plugin() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _modules("kayenta_py")
        for line, name in _imports(path)
        if name.split(".")[0] in ("judges", "metrics_sources")
    ]
    assert not offences, "\n".join(offences)


def test_no_module_is_too_long() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in _modules(*PACKAGES)
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, "\n".join(long)
