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


def _compared_strings(path: Path) -> list[tuple[int, str]]:
    """String constants ``path`` compares with (``x == "demo"``, ``x in ("a", "b")``), with their line."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                strings = [c.value for c in items if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                out += [(node.lineno, value) for value in strings]
    return out


def test_core_names_no_judge_or_source_in_its_code() -> None:
    """No core module branches on a built-in judge's or source's name (config defaults aside)."""
    plugins = {"sequential-count", "sequential-histogram", "sequential-rank", "mann-whitney", "threshold"}
    plugins |= {"prometheus", "demo", "csv"}
    not_plugins = {("kayenta_py/backtest/generate.py", "csv")}  # --labels csv: a file format
    found = [
        f"{path.relative_to(ROOT)}:{line}: compares with {value!r}"
        for path in _modules("kayenta_py")
        for line, value in _compared_strings(path)
        if value in plugins and (str(path.relative_to(ROOT)), value) not in not_plugins
    ]
    assert not found, "\n".join(found)


def test_a_third_party_sequential_judge_gets_the_batch_shape_it_declares() -> None:
    """A judge registered under a new name, declaring ``counts``, is fetched events and traffic."""
    import numpy as np

    from judges import SequentialCountJudge
    from kayenta_py import load_config
    from kayenta_py.config.registry import Registry
    from kayenta_py.engine.batches import fetch_sequential_batch
    from kayenta_py.plugin import MetricConfig, MetricSet, Scope

    class ThirdPartyCount(SequentialCountJudge):
        name = "acme-count"

    registry = Registry().load_entry_points()  # the built-ins, plus the third-party judge
    registry.register_judge(ThirdPartyCount)

    class Steps:
        def fetch(self, metric: MetricConfig, scope: Scope, *window: object) -> list[MetricSet]:
            value = 1000.0 if metric.name.endswith("#traffic") else 3.0
            return [MetricSet(metric.name, np.full(5, value), timestamps=60.0 * np.arange(1.0, 6.0))]

    judge = {"type": "acme-count"}
    metric = {"name": "errors", "kind": "errors", "query": "e", "traffic_query": "r", "judge": judge}
    config = load_config({"name": "acme", "metrics": [metric]}, registry=registry, mode="sequential")
    batch = fetch_sequential_batch(
        config, Steps(), Scope("b"), Scope("c"), start=0.0, end=300.0, step=60.0, registry=registry
    )
    events, traffic = batch.baseline["errors"]
    assert list(events) == [3.0] * 5 and list(traffic) == [1000.0] * 5
