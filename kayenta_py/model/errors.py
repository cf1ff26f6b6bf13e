"""Errors raised by kayenta-py; each names the file, line, field or path at fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class KayentaError(Exception):
    """Base class of every error kayenta-py raises on bad input or configuration.

    ``field`` names the input at fault (``thresholds.pass``, ``metadata.mode``) when the error
    has one (a :class:`FieldError`); doors turn it into their own location (an HTTP ``loc``).
    """

    field: str | None = None


class FieldError(KayentaError):
    """One input field is wrong: ``field`` names it and ``problem`` says what (``str``: both)."""

    field: str

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration: where it is (``metrics[2].judge.effect_size``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(KayentaError):
    """A configuration is invalid; ``issues`` lists every problem found, each with its path."""

    def __init__(self, issues: Sequence[ConfigIssue], *, source: str | None = None) -> None:
        self.issues = tuple(issues)
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{where}{issue}" for issue in self.issues]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class InputError(KayentaError):
    """Metric data is malformed; the message names the file and line where known."""


class PluginError(KayentaError):
    """A judge or metrics-source plugin is unknown, duplicated or broken."""


class ThresholdsError(FieldError, ValueError):
    """Score thresholds are out of range or inverted; the message starts with the field.

    ``key`` is the threshold at fault (``pass`` or ``marginal``; None: the thresholds as a whole)
    and ``problem`` the message without its field, so a door can name its own field.
    """

    def __init__(self, field: str, problem: str, *, key: str | None = None) -> None:
        super().__init__(field, problem)
        self.key = key


class StoreError(KayentaError):
    """A store operation was refused (a conflict, a missing record), or stored data is unreadable."""
