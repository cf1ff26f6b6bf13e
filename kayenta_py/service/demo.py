"""The demo: two live analyses on generated data, one healthy canary and one regressed."""

from __future__ import annotations

import sys

import yaml

from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.model.spec import AnalysisSpec, DoorRecord
from kayenta_py.service.analyses import Service
from kayenta_py.service.store.records import Analysis

DEMO_CANARIES = {"healthy": "canary-healthy", "regressed": "canary-regressed"}


def start_demo(service: Service) -> None:
    """Start the demo analyses (1-minute lifetime, an interval every 10 s) and say where to look.

    They state no mode, so the service's default applies (``choose_mode``): the example config
    names fixed judges (``mann-whitney``, ``threshold``), so they run in fixed mode, as the banner says.
    """
    config = yaml.safe_load((EXAMPLES_DIR / "checkout.yaml").read_text(encoding="utf-8"))
    base = (service.settings.public_url or f"http://{service.settings.host}:{service.settings.port}").rstrip(
        "/"
    )
    previous = service.runner.on_finish

    def report(record: Analysis) -> None:
        if previous is not None:
            previous(record)
        if record.door.demo:
            print(
                f"demo {record.door.demo} canary finished: {record.verdict.upper()} "
                f"(score {record.score}) - {record.reason}",
                file=sys.stderr,
                flush=True,
            )

    service.runner.on_finish = report
    for label, scope in DEMO_CANARIES.items():
        spec = AnalysisSpec(
            config=config,
            baseline_scope="baseline",
            canary_scope=scope,
            source="demo",
            lifetime="PT1M",
            interval="PT10S",
            step=1.0,
            record=DoorRecord(demo=label),
        )
        record = service.create_analysis(spec)
        print(
            f"demo {label} canary: verdict {base}/api/v1/analyses/{record.id}/verdict, "
            f"report {base}/api/v1/analyses/{record.id}/report "
            f"(mode {record.mode}: {record.mode_reason or 'stated'})",
            file=sys.stderr,
            flush=True,
        )
