"""CloudWatch queries: a metric's ``query`` as GetMetricData's ``MetricDataQueries``, scope-safe.

A metric's query is one of:

* a **metric-math or SEARCH expression** (``SEARCH('{App,Version} Version="${scope}"', 'Average',
  ${period})``), sent as one expression query with id ``e1``;
* a **MetricStat**, written as YAML (or JSON) in the query text, or as a mapping in a Kayenta
  format config: ``namespace``, ``metricName``, ``dimensions`` (a mapping, or a list of
  ``{name, value}``), ``stat`` and optionally ``unit``, ``label``, ``accountId``;
* **metricDataQueries**, the shape of Argo Rollouts' cloudwatch provider (and of the API): a list
  of ``{id, expression | metricStat, label, returnData, period, accountId}``. Keys may be written
  as Argo writes them (``metricStat``) or as the API does (``MetricStat``).

Security rule: scope values never change a query. In a MetricStat every ``${variable}`` fills a
value sent as an API parameter (a dimension value is compared as an exact string): safe by
construction, any text allowed (empty values are refused: CloudWatch needs 1 to 1024 characters).
In an expression, where quotes and operators have meaning, a value must be plain text
(letters, digits and ``_ . - : / @ +``) standing inside quotes (``'...'`` or ``"..."``), and not
``AND``/``OR``/``NOT`` outside double quotes; outside quotes only a number is substituted.
Anything else is refused before any request, by an error naming the variable.

``${period}`` is the source's own: the step in seconds. Every MetricStat and expression query is
sent with ``Period`` = the step; a ``period`` written in the query must equal it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from kayenta_py.plugin import KayentaError, MetricConfig, Scope, did_you_mean

PERIOD = "period"
MAX_QUERIES = 500  # MetricDataQuery structures in one GetMetricData call
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_STRUCTURED = re.compile(r"^\s*(?:[\[{]|[A-Za-z][A-Za-z0-9_]*\s*:(?:\s|$))")
_QUOTED_TEXT = re.compile(r"[A-Za-z0-9_.:/@+-]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_ID = re.compile(r"[a-z][A-Za-z0-9_]*")
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_QUERY_KEYS = ("Id", "Expression", "MetricStat", "Label", "ReturnData", "Period", "AccountId")
_STAT_KEYS = ("Metric", "Stat", "Unit", "Period")
_METRIC_KEYS = ("Namespace", "MetricName", "Dimensions")
_FLAT_KEYS = ("Namespace", "MetricName", "Dimensions", "Stat", "Unit", "Label", "AccountId", "Period", "Id")


class TemplateError(KayentaError):
    """A CloudWatch query cannot be built safely (bad shape, undefined variable, unsafe value)."""


def valid_period(metric: str, step: int) -> int:
    """Return ``step`` if it is a CloudWatch period (1, 5, 10, 30 s or a multiple of 60 s)."""
    if step in (1, 5, 10, 30) or (step > 0 and step % 60 == 0):
        return step
    raise KayentaError(
        f"metric {metric!r}: a step of {step} s is not a CloudWatch period "
        "(1, 5, 10 or 30 s, or a multiple of 60 s)"
    )


def build_queries(metric: MetricConfig, scope: Scope, period: int | str) -> list[dict[str, Any]]:
    """Return the ``MetricDataQueries`` of ``metric`` for ``scope``, every variable filled.

    ``period`` is the step in seconds (a string only for display, when no step is known).

    Raises
    ------
    TemplateError
        For a query of the wrong shape (naming the field), an undefined variable or an unsafe value.
    """
    what = f"metric {metric.name!r}"
    if metric.query is not None:
        document: Any = _parse_text(metric.query, what)
    elif metric.kayenta_query is not None:
        document = dict(metric.kayenta_query)
        kind = document.pop("type", "cloudwatch")
        if kind != "cloudwatch":
            raise TemplateError(f"{what}: query.type {kind!r} is not a CloudWatch query (type: cloudwatch)")
    else:
        raise TemplateError(f"{what} has no query")
    raw = _as_queries(document, what)
    variables = scope.variables()
    generated = {PERIOD: str(period)}
    out = [_query(q, f"{what}: query{path}", variables, generated, period) for path, q in raw]
    ids = [q["Id"] for q in out]
    if len(set(ids)) != len(ids):
        raise TemplateError(f"{what}: query ids must be unique, got {ids}")
    if not any(q.get("ReturnData", True) for q in out):
        raise TemplateError(f"{what}: no query returns data (every returnData is false)")
    return out


def render_queries(queries: list[dict[str, Any]]) -> str:
    """The queries as one line of JSON (what ``kayenta-py query`` shows)."""
    return json.dumps(queries, separators=(", ", ": "))


def _parse_text(text: str, what: str) -> Any:
    """A query's text: structured YAML/JSON when it starts like a mapping or list, else an expression."""
    if not _STRUCTURED.match(text):
        if not text.strip():
            raise TemplateError(f"{what}: the query is empty")
        return {"Id": "e1", "Expression": text.strip()}
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError(f"{what}: the query is neither an expression nor valid YAML: {problem}") from None
    if not isinstance(document, dict | list):
        raise TemplateError(f"{what}: the query must be an expression, a MetricStat or metricDataQueries")
    return document


def _as_queries(document: Any, what: str) -> list[tuple[str, Any]]:
    """The raw MetricDataQuery mappings of a document, with their paths in messages."""
    if isinstance(document, dict):
        keys = {_key(k) for k in document}
        if "MetricDataQueries" in keys:
            extra = sorted(k for k in document if _key(k) != "MetricDataQueries")
            if extra:
                hint = " (the analysis window sets the range)" if "interval" in extra else ""
                raise TemplateError(f"{what}: query.{extra[0]}: not a field of a CloudWatch query{hint}")
            listed = next(v for k, v in document.items() if _key(k) == "MetricDataQueries")
            return _listed(listed, ".metricDataQueries", what)
        if keys & {"Expression", "MetricStat"}:
            default = {} if "Id" in keys else {"Id": "m1" if "MetricStat" in keys else "e1"}
            return [("", {**default, **document})]
        if keys & {"Namespace", "MetricName"}:
            return [("", _flat(document, what))]
        raise TemplateError(
            f"{what}: the query has none of metricDataQueries, expression, metricStat or "
            f"namespace/metricName (fields: {', '.join(map(str, document)) or 'none'})"
        )
    return _listed(document, "", what)


def _listed(value: Any, path: str, what: str) -> list[tuple[str, Any]]:
    if not isinstance(value, list) or not value:
        raise TemplateError(f"{what}: query{path} must be a non-empty list of MetricDataQuery")
    if len(value) > MAX_QUERIES:
        raise TemplateError(
            f"{what}: query{path} has {len(value)} queries; GetMetricData takes {MAX_QUERIES}"
        )
    return [(f"{path}[{i}]", item) for i, item in enumerate(value)]


def _flat(document: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The shorthand ``{namespace, metricName, dimensions, stat}`` as a MetricDataQuery."""
    given = _fields(document, _FLAT_KEYS, "query", what)
    metric = {k: given[k] for k in _METRIC_KEYS if k in given}
    stat: dict[str, Any] = {
        "Metric": metric,
        **{k: given[k] for k in ("Stat", "Unit", "Period") if k in given},
    }
    query: dict[str, Any] = {"Id": given.get("Id", "m1"), "MetricStat": stat}
    query.update({k: given[k] for k in ("Label", "AccountId") if k in given})
    return query


def _query(
    raw: Any, path: str, variables: Mapping[str, str], generated: Mapping[str, str], period: int | str
) -> dict[str, Any]:
    """One MetricDataQuery, checked, with its variables filled and its Period set to the step."""
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{path}: must be a mapping (id, expression or metricStat, ...)")
    given = _fields(raw, _QUERY_KEYS, path, "")
    query_id = given.get("Id")
    if not isinstance(query_id, str) or not _ID.fullmatch(query_id):
        raise TemplateError(
            f"{path}.id: {query_id!r} must start with a lowercase letter (then letters, digits, _)"
        )
    _same_period(given.get("Period"), period, f"{path}.period")
    out: dict[str, Any] = {"Id": query_id}
    if ("Expression" in given) == ("MetricStat" in given):
        raise TemplateError(f"{path}: give exactly one of expression and metricStat")
    if "Expression" in given:
        text = given["Expression"]
        if not isinstance(text, str) or not text.strip():
            raise TemplateError(f"{path}.expression: must be a non-empty string")
        out["Expression"] = expression(text, variables, generated, what=f"{path}.expression")
        out["Period"] = period
    else:
        out["MetricStat"] = _metric_stat(
            given["MetricStat"], f"{path}.metricStat", variables, generated, period
        )
    for key in ("Label", "AccountId"):
        if key in given:
            out[key] = _value(given[key], f"{path}.{key[0].lower()}{key[1:]}", variables, generated)
    if "ReturnData" in given:
        if not isinstance(given["ReturnData"], bool):
            raise TemplateError(f"{path}.returnData: must be true or false")
        out["ReturnData"] = given["ReturnData"]
    return out


def _metric_stat(
    raw: Any, path: str, variables: Mapping[str, str], generated: Mapping[str, str], period: int | str
) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{path}: must be a mapping (metric, stat, unit)")
    given = _fields(raw, _STAT_KEYS, path, "")
    _same_period(given.get("Period"), period, f"{path}.period")
    if not isinstance(given.get("Metric"), Mapping):
        raise TemplateError(f"{path}.metric: required, a mapping (namespace, metricName, dimensions)")
    metric = _fields(given["Metric"], _METRIC_KEYS, f"{path}.metric", "")
    built: dict[str, Any] = {}
    for key in ("Namespace", "MetricName"):
        if key not in metric:
            raise TemplateError(f"{path}.metric.{key[0].lower()}{key[1:]}: required")
        built[key] = _value(metric[key], f"{path}.metric.{key[0].lower()}{key[1:]}", variables, generated)
    if "Dimensions" in metric:
        built["Dimensions"] = _dimensions(
            metric["Dimensions"], f"{path}.metric.dimensions", variables, generated
        )
    if "Stat" not in given:
        raise TemplateError(f"{path}.stat: required (Average, Sum, Maximum, p99, ...)")
    out = {
        "Metric": built,
        "Period": period,
        "Stat": _value(given["Stat"], f"{path}.stat", variables, generated),
    }
    if "Unit" in given:
        out["Unit"] = _value(given["Unit"], f"{path}.unit", variables, generated)
    return out


def _dimensions(
    raw: Any, path: str, variables: Mapping[str, str], generated: Mapping[str, str]
) -> list[dict[str, str]]:
    """Dimensions as ``[{Name, Value}]``, from a mapping or a list of ``{name, value}``."""
    if isinstance(raw, Mapping):
        pairs = [(f"{path}.{name}", name, value) for name, value in raw.items()]
    elif isinstance(raw, list):
        pairs = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise TemplateError(f"{path}[{i}]: must be a mapping {{name, value}}")
            fields = _fields(item, ("Name", "Value"), f"{path}[{i}]", "")
            if "Name" not in fields or "Value" not in fields:
                raise TemplateError(f"{path}[{i}]: needs both name and value")
            pairs.append((f"{path}[{i}]", fields["Name"], fields["Value"]))
    else:
        raise TemplateError(f"{path}: must be a mapping of name to value or a list of {{name, value}}")
    if len(pairs) > 30:
        raise TemplateError(f"{path}: {len(pairs)} dimensions; CloudWatch takes at most 30")
    return [
        {
            "Name": _value(name, f"{where} (name)", variables, generated),
            "Value": _value(value, where, variables, generated),
        }
        for where, name, value in pairs
    ]


def _value(raw: Any, path: str, variables: Mapping[str, str], generated: Mapping[str, str]) -> str:
    """A string field sent as an API value: variables filled with their text as it is (never parsed)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TemplateError(f"{path}: must be a string, got {raw!r}")

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return generated[name] if name in generated else _defined(name, variables, generated, path)

    text = _PLACEHOLDER.sub(value, str(raw))
    if not 1 <= len(text) <= 1024:
        what = "empty" if not text else f"{len(text)} characters long"
        raise TemplateError(
            f"{path}: the value {str(raw)!r} is {what} once filled; CloudWatch takes 1 to 1024"
        )
    return text


def expression(text: str, variables: Mapping[str, str], generated: Mapping[str, str], *, what: str) -> str:
    """Fill the ``${variables}`` of a metric-math/SEARCH expression, refusing any value that could
    change it (see the module's security rule). ``generated`` (``period``) stands anywhere."""
    out: list[str] = []
    quotes: list[str] = []  # the quotes open at this point: "'" and/or '"'
    i = 0
    while i < len(text):
        char = text[i]
        match = _PLACEHOLDER.match(text, i)
        if match is not None:
            out.append(_expression_value(match.group(1), quotes, variables, generated, what))
            i = match.end()
            continue
        out.append(char)
        if char == "\\" and quotes and i + 1 < len(text):
            out.append(text[i + 1])
            i += 1
        elif char in "'\"":
            if quotes and quotes[-1] == char:
                quotes.pop()
            elif char not in quotes:
                quotes.append(char)
        i += 1
    if quotes:
        raise TemplateError(f"{what}: unterminated quote ({quotes[-1]}) in the expression")
    return "".join(out)


def _expression_value(
    name: str, quotes: list[str], variables: Mapping[str, str], generated: Mapping[str, str], what: str
) -> str:
    if name in generated:
        return generated[name]
    value = _defined(name, variables, generated, what)
    if not quotes:
        if _NUMBER.fullmatch(value):
            return value
        problem = "stands outside quotes, where only a number is substituted"
    elif not _QUOTED_TEXT.fullmatch(value):
        problem = "may only hold letters, digits and _ . - : / @ + inside an expression's quotes"
    elif '"' not in quotes and value.upper() in _OPERATORS:
        problem = "would be a search operator; put it in double quotes"
    else:
        return value
    raise TemplateError(
        f"{what}: ${{{name}}} has the value {value!r} and {problem}: it could change the expression "
        "(quotes, braces, commas, parentheses, spaces and functions are refused); pass such values "
        "as metricStat dimensions, which are sent as values"
    )


def _defined(name: str, variables: Mapping[str, str], generated: Mapping[str, str], what: str) -> str:
    if name not in variables:
        known = ", ".join(sorted({*variables, *generated})) or "none"
        hint = did_you_mean(name, [*variables, *generated])
        raise TemplateError(f"{what}: undefined variable ${{{name}}}{hint} (defined: {known})")
    return variables[name]


def _same_period(given: Any, period: int | str, path: str) -> None:
    if given is None or isinstance(period, str):
        return
    if isinstance(given, bool) or not isinstance(given, int) or given != period:
        raise TemplateError(
            f"{path}: {given!r} is not the analysis step ({period} s); remove it: the source sends the step"
        )


def _key(name: Any) -> str:
    """A field name as the API spells it: ``metricStat`` -> ``MetricStat``."""
    text = str(name)
    return text[:1].upper() + text[1:]


def _fields(raw: Mapping[Any, Any], allowed: tuple[str, ...], path: str, what: str) -> dict[str, Any]:
    """The mapping keyed by API names; an unknown or repeated field is an error naming it."""
    out: dict[str, Any] = {}
    where = f"{what}: {path}" if what else path
    for name, value in raw.items():
        key = _key(name)
        if key not in allowed:
            spelled = [k[0].lower() + k[1:] for k in allowed]
            hint = did_you_mean(str(name), spelled)
            raise TemplateError(f"{where}.{name}: unknown field{hint} (fields: {', '.join(spelled)})")
        if key in out:
            raise TemplateError(f"{where}.{name}: given twice")
        out[key] = value
    return out
