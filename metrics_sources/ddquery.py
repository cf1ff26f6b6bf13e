"""Datadog metric queries: ``${variable}`` substitution that scope values cannot break out of.

Security rule: scope values are user input and never change a query. The v1 query language has no
way to quote or escape a tag value, so each value is checked for where it stands instead:

* inside a ``{...}`` scope (``{version:${scope}}``, ``{${scope}}``, ``by {${key}}``) it must be
  Datadog tag text: letters, digits, ``_ - . : /``, starting with a letter, digit, ``_``, ``.`` or
  ``/`` (never ``-`` or ``!``, which negate), at most 200 characters. Commas (another filter),
  braces, spaces (``AND``/``OR``/``NOT``), ``*`` (a wildcard), ``!``, quotes and parentheses are
  refused;
* outside braces (in a metric name, ``avg:app.${service}.latency{*}``) it must be a plain metric
  name: letters, digits and ``_`` in dot-separated parts.

Anything else is refused before any request, by an error naming the variable, as is an undefined
variable. The source's own ``${interval}`` (the step in seconds) stands outside braces only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kayenta_py.plugin import KayentaError, did_you_mean

INTERVAL = "interval"
ROLLUPS = ("avg", "sum", "min", "max", "count")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_KAYENTA_VARIABLE = re.compile(r"\$(scope|location)\b")
_TAG = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:-]{0,199}")
_METRIC_NAME = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_FORMULA = frozenset("+-*/,")


class TemplateError(KayentaError):
    """A Datadog query template cannot be rendered safely (undefined variable, unsafe value)."""


def render(template: str, variables: Mapping[str, str], *, generated: Mapping[str, str], what: str) -> str:
    """Substitute ``${name}`` in a Datadog query template, checking each value for where it stands.

    ``generated`` holds the source's own values (``interval``), which win over ``variables`` and
    stand outside braces only.

    Raises
    ------
    TemplateError
        For an undefined variable (named, with the near match), a value that is not tag text
        inside braces or not a metric name outside them, or unbalanced braces.
    """
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "$" else None
        if match is not None:
            out.append(_value(match.group(1), depth > 0, variables, generated, what))
            i = match.end()
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError(f"{what}: unbalanced '}}' in the Datadog query template")
        out.append(char)
        i += 1
    if depth:
        raise TemplateError(f"{what}: unbalanced '{{' in the Datadog query template")
    return "".join(out)


def _value(
    name: str, in_braces: bool, variables: Mapping[str, str], generated: Mapping[str, str], what: str
) -> str:
    if name in generated:
        if in_braces:
            raise TemplateError(f"{what}: ${{{name}}} is the source's own and must stand outside braces")
        return generated[name]
    if name not in variables:
        known = ", ".join(sorted({*variables, *generated})) or "none"
        hint = did_you_mean(name, [*variables, *generated])
        raise TemplateError(f"{what}: undefined variable ${{{name}}}{hint} (defined: {known})")
    value = variables[name]
    if in_braces and _TAG.fullmatch(value):
        return value
    if not in_braces and _METRIC_NAME.fullmatch(value):
        return value
    rule = (
        "Datadog tag text (letters, digits, _ - . : /, not starting with - or !, at most 200 characters)"
        if in_braces
        else "a plain Datadog metric name (letters, digits and _ in dot-separated parts)"
    )
    raise TemplateError(
        f"{what}: ${{{name}}} has the value {value!r}, which is not {rule}; commas, braces, spaces, "
        "wildcards, quotes and parentheses could change the query and are refused"
    )


def is_formula(query: str) -> bool:
    """Whether ``query`` combines several queries (``+ - * /`` or ``,`` outside braces and parentheses)."""
    braces = parens = 0
    for char in query:
        if char == "{":
            braces += 1
        elif char == "}":
            braces -= 1
        elif char == "(":
            parens += 1
        elif char == ")":
            parens -= 1
        elif char in _FORMULA and braces == 0 and parens == 0:
            return True
    return False


def with_rollup(query: str, method: str, step: int, *, what: str) -> str:
    """Return ``query`` rolled up to the step (``.rollup(avg, 60)``) unless it rolls itself up.

    A query holding ``.rollup(`` is sent as written; a formula (``a / b``) must roll up each of its
    queries itself (``.rollup(sum, ${interval})``), since one rollup at its end would apply to the
    last query only.
    """
    if ".rollup(" in query:
        return query
    if is_formula(query):
        raise TemplateError(
            f"{what}: a formula of several Datadog queries needs .rollup(<method>, ${{{INTERVAL}}}) on "
            "each query (one rollup at the end would apply to the last query only)"
        )
    return f"{query}.rollup({method}, {step})"


def kayenta_template(
    query: Mapping[str, object], filter_template: str | None, *, what: str
) -> tuple[str, str | None]:
    """Return the template of a Kayenta ``datadog`` query and the rollup it implies (None: the setting's).

    ``customInlineTemplate`` (else the ``customFilterTemplate`` text) is used as written, with
    Kayenta's ``${scope}``, ``${location}`` and extended parameters. Otherwise Kayenta's
    ``metricName`` with the scope (a ``key:value`` tag) and ``tags`` appended in braces:
    ``metricName{${scope},tag,...}``; ``metricType: count`` makes it
    ``sum:metricName{...}.as_count()``, rolled up by sum.
    """
    custom = query.get("customInlineTemplate") or filter_template
    if custom:
        return _KAYENTA_VARIABLE.sub(r"${\1}", str(custom)), None
    name = query.get("metricName")
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{what}: query.metricName is required unless customInlineTemplate is set")
    if "{" in name or "}" in name or "$" in name:
        raise TemplateError(
            f"{what}: query.metricName {name!r} must be a metric (e.g. avg:system.cpu.user) without a "
            "scope: the scope is added in braces"
        )
    tags = query.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG.fullmatch(t) for t in tags):
        raise TemplateError(f"{what}: query.tags must be a list of Datadog tags (key:value)")
    metric_type = query.get("metricType") or "gauge"
    if metric_type not in ("gauge", "rate", "count"):
        raise TemplateError(f"{what}: query.metricType must be gauge, rate or count, got {metric_type!r}")
    scope = ",".join(["${scope}", *tags])
    if metric_type == "count":
        return f"sum:{name}{{{scope}}}.as_count()", "sum"
    return f"{name}{{{scope}}}", None
