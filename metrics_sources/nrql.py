"""NRQL templating: ``${variable}`` substitution that scope values cannot break out of.

Security rule: scope values are user input and never change a query. Each ``${name}`` is escaped
for where it stands: inside a string literal (``'${scope}'``, or ``"..."``) as that literal's
content, backslashes and quotes escaped with a backslash; inside a backtick identifier
(```${attribute}```) as its content (a backtick is refused there). A value in the pattern of
``LIKE '...'`` may not hold ``%`` (a wildcard would widen the match), nor may any value hold a
control character (a newline, a tab...). Outside quotes only a plain number or a plain identifier
that is no NRQL keyword is substituted. Anything else is refused with an error naming the
variable, as is an undefined variable. Comments (``-- ...``, ``// ...``, ``/* ... */``) are copied
as they are.

The source's own values (``${startEpochSeconds}``, ``${endEpochSeconds}``) stand outside quotes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kayenta_py.plugin import KayentaError, Scope, did_you_mean

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_LIKE = re.compile(r"\bLIKE\s*$", re.IGNORECASE)
_KEYWORDS = frozenset(
    [
        "AGO",
        "AND",
        "AS",
        "AUTO",
        "BY",
        "COMPARE",
        "DESC",
        "ASC",
        "EXTRAPOLATE",
        "FACET",
        "FALSE",
        "FROM",
        "IN",
        "IS",
        "LIKE",
        "LIMIT",
        "MAX",
        "NOT",
        "NULL",
        "OFFSET",
        "OR",
        "ORDER",
        "RAW",
        "SELECT",
        "SINCE",
        "SLIDE",
        "TIMESERIES",
        "TIMEZONE",
        "TRUE",
        "UNTIL",
        "WHERE",
        "WITH",
    ]
)
TIME_CLAUSES = re.compile(r"\b(SINCE|UNTIL|TIMESERIES|COMPARE)\b", re.IGNORECASE)


class TemplateError(KayentaError):
    """An NRQL template cannot be rendered safely (undefined variable, unsafe value or placement)."""


def escape_string(value: str) -> str:
    """Escape ``value`` as the content of a quoted NRQL string (either quote)."""
    return value.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')


def quote_string(value: str, name: str = "value", what: str = "query") -> str:
    """Return ``value`` as a single-quoted NRQL string literal (control characters refused)."""
    _no_control(value, name, what)
    return f"'{escape_string(value)}'"


def quote_identifier(value: str, name: str, what: str) -> str:
    """Return ``value`` as a backtick-quoted NRQL attribute name."""
    _no_control(value, name, what)
    if "`" in value or not value:
        raise TemplateError(
            f"{what}: {name} {value!r} cannot be an NRQL attribute name (empty or a backtick)"
        )
    return f"`{value}`"


def _no_control(value: str, name: str, what: str) -> None:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise TemplateError(f"{what}: {name} has the value {value!r}, which holds a control character")


def render(
    template: str, variables: Mapping[str, str], *, generated: Mapping[str, str], what: str
) -> tuple[str, str]:
    """Substitute ``${name}`` in an NRQL template, escaping each value for where it stands.

    Returns the query and its code outside quotes and comments (to look for clauses in).

    Raises
    ------
    TemplateError
        For an undefined variable (named, with the near match), a value that cannot stand where
        its placeholder is, or an unterminated string, identifier or comment.
    """
    out: list[str] = []
    code: list[str] = []
    state: str | None = None  # None, "'" or '"' a string, "`" an identifier
    opened_at = 0
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "$" else None
        if match is not None:
            like = state in ("'", '"') and bool(_LIKE.search(template[:opened_at]))
            text = _value(match.group(1), state, like, variables, generated, what)
            out.append(text)
            if state is None:
                code.append(text)
            i = match.end()
            continue
        if state is None and template.startswith(("--", "//", "/*"), i):
            close = "*/" if template.startswith("/*", i) else "\n"
            end = template.find(close, i + 2)
            if end < 0 and close == "*/":
                raise TemplateError(f"{what}: unterminated /* comment in the NRQL template")
            end = n if end < 0 else end + len(close)
            out.append(template[i:end])
            code.append(" ")
            i = end
            continue
        out.append(char)
        if state is None:
            if char in "'\"`":
                state, opened_at = char, i
            else:
                code.append(char)
        elif char == "\\" and state != "`" and i + 1 < n:
            out.append(template[i + 1])
            i += 1
        elif char == state:
            state = None
            code.append(" ")
        i += 1
    if state is not None:
        kind = {"'": "string", '"': "string", "`": "identifier"}[state]
        raise TemplateError(f"{what}: unterminated {kind} ({state}) in the NRQL template")
    return "".join(out), "".join(code)


def _value(
    name: str,
    state: str | None,
    like: bool,
    variables: Mapping[str, str],
    generated: Mapping[str, str],
    what: str,
) -> str:
    if name in generated:
        if state is not None:
            raise TemplateError(f"{what}: ${{{name}}} is the source's own and must stand outside quotes")
        return generated[name]
    if name not in variables:
        known = ", ".join(sorted({*variables, *generated})) or "none"
        hint = did_you_mean(name, [*variables, *generated])
        raise TemplateError(f"{what}: undefined variable ${{{name}}}{hint} (defined: {known})")
    value = variables[name]
    label = f"${{{name}}}"
    if state == "`":
        return quote_identifier(value, label, what)[1:-1]
    if state is not None:
        _no_control(value, label, what)
        if like and "%" in value:
            raise TemplateError(
                f"{what}: {label} stands in a LIKE pattern and its value {value!r} holds %, a wildcard "
                "that would widen the match; compare with = instead"
            )
        return escape_string(value)
    if _NUMBER.fullmatch(value) or (_IDENTIFIER.fullmatch(value) and value.upper() not in _KEYWORDS):
        return value
    raise TemplateError(
        f"{what}: {label} stands outside quotes and its value {value!r} is not a plain number or "
        f"identifier; put it inside a quoted string, e.g. appName = '{label}'"
    )


def kayenta_query(
    query: Mapping[str, object],
    filter_template: str | None,
    scope: Scope,
    *,
    scope_key: str | None,
    location_key: str | None,
    what: str,
) -> tuple[str, bool]:
    """Return the NRQL template of a Kayenta ``newrelic`` query and whether it holds its own time clauses.

    ``customInlineTemplate`` (else the ``customFilterTemplate`` text) is used as written: it holds
    ``TIMESERIES`` and ``SINCE ${startEpochSeconds} UNTIL ${endEpochSeconds}``. Otherwise, as
    Kayenta builds it, ``SELECT <select> WHERE (<q>) AND <param> LIKE '${param}' ... AND
    <scope key> LIKE '${scope}' [AND <location key> LIKE '${location}']`` (the source adds the time
    clauses; the values are escaped when rendered): the keys come from the ``_scope_key`` and
    ``_location_key`` parameters or the settings; other parameters starting with ``_`` are skipped.
    """
    custom = query.get("customInlineTemplate") or filter_template
    if custom:
        return re.sub(r"\$(scope|location)\b", r"${\1}", str(custom)), True
    select = query.get("select")
    if not isinstance(select, str) or not select.strip():
        raise TemplateError(f"{what}: query.select is required unless customInlineTemplate is set")
    select = re.sub(r"^\s*SELECT\s+", "", select, flags=re.IGNORECASE)
    if not re.search(r"\bFROM\b", select, re.IGNORECASE):
        raise TemplateError(f"{what}: query.select needs its FROM clause, e.g. count(*) FROM Transaction")
    params = scope.params
    key = params.get("_scope_key") or scope_key
    if not key:
        raise TemplateError(
            f"{what}: no scope key: give the extended scope parameter _scope_key or the setting "
            "newrelic_scope_key (KAYENTA_NEWRELIC_SCOPE_KEY), e.g. appName"
        )
    clauses = [f"({query['q']})"] if query.get("q") else []
    for name in params:
        if not name.startswith("_"):
            if name in ("scope", "location") or not _PLACEHOLDER.fullmatch("${" + name + "}"):
                raise TemplateError(f"{what}: extended scope parameter {name!r} cannot be an NRQL attribute")
            clauses.append(f"{_key(name, what)} LIKE '${{{name}}}'")
    clauses.append(f"{_key(key, what)} LIKE '${{scope}}'")
    if scope.location:
        where_key = params.get("_location_key") or location_key
        if not where_key:
            raise TemplateError(
                f"{what}: the scope has a location ({scope.location!r}) but no location key: give "
                "_location_key or the setting newrelic_location_key (KAYENTA_NEWRELIC_LOCATION_KEY)"
            )
        clauses.append(f"{_key(where_key, what)} LIKE '${{location}}'")
    return f"SELECT {select} WHERE " + " AND ".join(clauses), False


def _key(name: str, what: str) -> str:
    if "$" in name:
        raise TemplateError(f"{what}: {name!r} cannot be an NRQL attribute name ($)")
    return quote_identifier(name, f"attribute {name!r}", what)
