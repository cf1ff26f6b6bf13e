"""InfluxQL templating: ``${variable}`` substitution that scope values cannot break out of.

Security rule: scope values are user input (a deploy pipeline passes them through) and can never
change a query's structure. Each ``${name}`` is escaped for where it stands in the template: inside
a single-quoted string literal (``'${scope}'``, a tag value) as that literal's content; inside a
double-quoted identifier (``"${measurement}"``) as the identifier's content; inside a regular
expression (``=~ /^${scope}-/``) with every regex metacharacter escaped (a backslash or a control
character is refused there). Outside quotes only a plain number or a plain identifier that is no
InfluxQL keyword is substituted; anything else is refused with an error naming the variable, as is
an undefined variable. Comments (``-- ...``, ``/* ... */``) are copied as they are.

The source's own fragments, ``${timeFilter}`` (``time >= ...s AND time < ...s``) and
``${interval}`` (the step, ``60s``), are substituted only outside quotes and win over scope
parameters of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kayenta_py.plugin import KayentaError, did_you_mean

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_NUMBER = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGEX_META = frozenset(r".+*?()|[]{}^$/")
_KEYWORDS = frozenset(
    [
        "ALL",
        "ALTER",
        "ANALYZE",
        "AND",
        "ANY",
        "AS",
        "ASC",
        "BEGIN",
        "BY",
        "CARDINALITY",
        "CONTINUOUS",
        "CREATE",
        "DATABASE",
        "DATABASES",
        "DEFAULT",
        "DELETE",
        "DESC",
        "DESTINATIONS",
        "DIAGNOSTICS",
        "DISTINCT",
        "DROP",
        "DURATION",
        "END",
        "EVERY",
        "EXACT",
        "EXPLAIN",
        "FALSE",
        "FIELD",
        "FILL",
        "FOR",
        "FROM",
        "GRANT",
        "GRANTS",
        "GROUP",
        "GROUPS",
        "IN",
        "INF",
        "INSERT",
        "INTO",
        "KEY",
        "KEYS",
        "KILL",
        "LIMIT",
        "MEASUREMENT",
        "MEASUREMENTS",
        "NAME",
        "NOT",
        "OFFSET",
        "ON",
        "OR",
        "ORDER",
        "PASSWORD",
        "POLICIES",
        "POLICY",
        "PRIVILEGES",
        "QUERIES",
        "QUERY",
        "READ",
        "REPLICATION",
        "RESAMPLE",
        "RETENTION",
        "REVOKE",
        "SELECT",
        "SERIES",
        "SET",
        "SHARD",
        "SHARDS",
        "SLIMIT",
        "SOFFSET",
        "STATS",
        "SUBSCRIPTION",
        "SUBSCRIPTIONS",
        "TAG",
        "TIME",
        "TO",
        "TRUE",
        "USER",
        "USERS",
        "VALUES",
        "WHERE",
        "WITH",
        "WRITE",
    ]
)
TIME_FILTER = "timeFilter"
INTERVAL = "interval"


class TemplateError(KayentaError):
    """An InfluxQL template cannot be rendered safely (undefined variable, unsafe placement)."""


def escape_string(value: str) -> str:
    """Escape ``value`` as the content of a quoted InfluxQL string or identifier (either quote)."""
    return value.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').replace("\n", "\\n")


def quote_identifier(value: str) -> str:
    """Return ``value`` as a double-quoted InfluxQL identifier."""
    return f'"{escape_string(value)}"'


def quote_string(value: str) -> str:
    """Return ``value`` as a single-quoted InfluxQL string literal."""
    return f"'{escape_string(value)}'"


def _escape_regex(value: str, name: str, what: str) -> str:
    """Escape ``value`` as literal text inside ``/.../`` (InfluxQL passes ``\\x`` through to RE2)."""
    if "\\" in value or any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise TemplateError(
            f"{what}: ${{{name}}} stands in a regular expression and its value {value!r} holds a "
            "backslash or a control character; compare with a quoted string instead: tag = '${...}'"
        )
    return "".join("\\" + char if char in _REGEX_META else char for char in value)


def _bare(value: str, name: str, what: str) -> str:
    if _NUMBER.match(value) or (_IDENTIFIER.match(value) and value.upper() not in _KEYWORDS):
        return value
    raise TemplateError(
        f"{what}: ${{{name}}} stands outside quotes and its value {value!r} is not a plain number or "
        f"identifier; put it inside a quoted tag value, e.g. \"version\" = '${{{name}}}'"
    )


def render(
    template: str,
    variables: Mapping[str, str],
    *,
    generated: Mapping[str, str] | None = None,
    what: str = "query",
) -> str:
    """Substitute ``${name}`` in an InfluxQL template, escaping each value for where it stands.

    ``generated`` holds the source's own fragments (``timeFilter``, ``interval``): trusted text,
    allowed only outside quotes, and taking precedence over ``variables`` of the same name.

    Raises
    ------
    TemplateError
        For an undefined variable (named, with the near match), a value that cannot stand where
        its placeholder is, or an unterminated string, identifier, regex or comment.
    """
    generated = generated or {}
    out: list[str] = []
    state: str | None = None  # None, "'" string, '"' identifier, "/" regex
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "$" else None
        if match is not None:
            out.append(_value(match.group(1), state, variables, generated, what))
            i = match.end()
            continue
        if state is None and template.startswith(("--", "/*"), i):  # comments are copied as is
            close = "\n" if template.startswith("--", i) else "*/"
            end = template.find(close, i + 2)
            if end < 0 and close == "*/":
                raise TemplateError(f"{what}: unterminated /* comment in the template")
            end = n if end < 0 else end + len(close) * (close == "*/")
            out.append(template[i:end])
            i = end
            continue
        out.append(char)
        if state is None:
            if char in "'\"":
                state = char
            elif char == "/" and re.search(r"[=!]~\s*$", template[:i]):
                state = "/"
        elif char == "\\" and i + 1 < n:
            if state != "/" or template[i + 1] == "/":  # a regex passes other \x through, unread
                out.append(template[i + 1])
                i += 1
        elif char == state:
            state = None
        i += 1
    if state is not None:
        kind = {"'": "string", '"': "identifier", "/": "regular expression"}[state]
        raise TemplateError(f"{what}: unterminated {kind} ({state}) in the template")
    return "".join(out)


def _value(
    name: str, state: str | None, variables: Mapping[str, str], generated: Mapping[str, str], what: str
) -> str:
    """The text a placeholder becomes where it stands (``state``: the quote it stands in, if any)."""
    if name in generated:
        if state is not None:
            raise TemplateError(f"{what}: ${{{name}}} is the source's own and must stand outside quotes")
        return generated[name]
    if name not in variables:
        known = ", ".join(sorted({*variables, *generated})) or "none"
        raise TemplateError(
            f"{what}: undefined variable ${{{name}}}{did_you_mean(name, [*variables, *generated])} "
            f"(defined: {known})"
        )
    value = variables[name]
    if state in ("'", '"'):
        return escape_string(value)
    if state == "/":
        return _escape_regex(value, name, what)
    return _bare(value, name, what)


def kayenta_query(query: Mapping[str, object], scope: str, *, what: str) -> tuple[str, dict[str, str]]:
    """Return the template of a Kayenta ``influxdb`` query and the generated fragment ``${scope}``.

    Kayenta's scope is ``name:value`` (``version:v1``), a tag and its value; it becomes the filter
    ``"name" = 'value'`` (identifier and string literal, escaped). A ``customInlineTemplate`` is
    used as written (``${scope}`` and ``${timeFilter}`` in it, outside quotes); otherwise the query
    is ``SELECT mean("field")... FROM "metricName" WHERE ${timeFilter} AND ${scope}``, by step.
    """
    tag, sep, value = scope.partition(":")
    if not sep or not tag:
        raise TemplateError(
            f"{what}: a Kayenta influxdb scope is name:value (e.g. version:v1), got {scope!r}"
        )
    fragments = {"scope": f"{quote_identifier(tag)} = {quote_string(value)}"}
    custom = query.get("customInlineTemplate")
    if custom:
        return str(custom), fragments
    measurement = query.get("metricName")
    if not isinstance(measurement, str) or not measurement:
        raise TemplateError(f"{what}: query.metricName is required unless customInlineTemplate is set")
    fields = query.get("fields") or ["value"]
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise TemplateError(f"{what}: query.fields must be a list of field names")
    selected = ", ".join(f"mean({quote_identifier(f)}) AS {quote_identifier(f)}" for f in fields)
    template = (
        f"SELECT {selected} FROM {quote_identifier(measurement)} "
        "WHERE ${timeFilter} AND ${scope} GROUP BY time(${interval})"
    )
    return template, fragments
