"""The validate and plugins commands: a config checked and shown, the registered plugins listed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from kayenta_py.cli.options import EXIT_PASS
from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import Registry


def _validate(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out.write(
        f"ok: {args.config} is a valid {config.format} config '{config.name}' "
        f"with {len(config.metrics)} metrics\n"
    )
    for m in config.metrics:
        params: dict[str, Any] = dict(m.judge_params)
        out.write(
            f"  {m.name}: kind {m.kind.value}, groups {','.join(m.groups)}, direction "
            f"{m.direction.value}, critical {str(m.critical).lower()}, judge {m.judge_type} "
            f"{json.dumps(params, sort_keys=True)}\n"
        )
    return EXIT_PASS


def _plugins(registry: Registry, out: TextIO) -> int:
    out.write("judges: " + ", ".join(registry.judge_names()) + "\n")
    out.write("metrics sources: " + ", ".join(registry.source_names()) + "\n")
    return EXIT_PASS


