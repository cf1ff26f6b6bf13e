"""PromQL templating: ``${variable}`` substitution that scope values cannot break out of.

Scope values are user input (a deploy pipeline passes them through). Each
``${name}`` must stand inside a quoted PromQL string, where its value is
escaped as a string literal's content; outside quotes only a plain identifier
or number is allowed. So a scope such as ``v2"} or vector(1) #`` stays a label
value and can never change the query's structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kayenta_py import KayentaError, MetricConfig, Scope, did_you_mean

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_BARE_SAFE = re.compile(r"^(?:[A-Za-z_:][A-Za-z0-9_:]*|[0-9]+(?:\.[0-9]+)?)$")
PROMQL_PREFIX = "PromQL:"


class TemplateError(KayentaError):
    """A query template cannot be rendered safely (undefined variable, unsafe placement)."""


def escape_string(value: str, quote: str) -> str:
    """Escape ``value`` as the content of a PromQL string quoted with ``quote``."""
    if quote == "`":
        if "`" in value:
            raise TemplateError(f"value {value!r} contains a backtick and cannot go inside a `raw string`")
        return value
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def render(template: str, variables: Mapping[str, str], *, what: str = "query") -> str:
    """Substitute ``${name}`` in a PromQL template, escaping each value for where it stands.

    Raises
    ------
    TemplateError
        For an undefined variable (named, with the near match), or a value
        outside quotes that is not a plain identifier or number.
    """
    out: list[str] = []
    quote: str | None = None  # the quote character of the string literal we are in
    i = 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "$" else None
        if match is not None:
            name = match.group(1)
            if name not in variables:
                known = ", ".join(sorted(variables)) or "none"
                suggestion = did_you_mean(name, variables)
                raise TemplateError(f"{what}: undefined variable ${{{name}}}{suggestion} (defined: {known})")
            value = variables[name]
            if quote is not None:
                out.append(escape_string(value, quote))
            elif _BARE_SAFE.match(value):
                out.append(value)
            else:
                raise TemplateError(
                    f"{what}: ${{{name}}} stands outside quotes and its value {value!r} is not a plain "
                    f'identifier or number; put it inside a quoted label value, e.g. label="${{{name}}}"'
                )
            i = match.end()
            continue
        if quote is None and char == "#":  # a comment runs to the end of the line, copied as is
            end = template.find("\n", i)
            end = len(template) if end < 0 else end
            out.append(template[i:end])
            i = end
            continue
        out.append(char)
        if quote is None:
            if char in "\"'`":
                quote = char
        elif char == "\\" and quote != "`" and i + 1 < len(template):
            out.append(template[i + 1])
            i += 1
        elif char == quote:
            quote = None
        i += 1
    if quote is not None:
        raise TemplateError(f"{what}: unterminated {quote}-quoted string in the template")
    return "".join(out)


def build_query(metric: MetricConfig, scope: Scope) -> str:
    """Return the PromQL for ``metric`` and ``scope``, native or Kayenta style.

    Native: ``metric.query`` rendered with ``${scope}``, ``${location}`` and the
    scope's extended parameters. Kayenta (``metric.kayenta_query``): the custom
    filter (``customInlineTemplate``, else the ``customFilterTemplate`` text) is
    rendered; a result starting with ``PromQL:`` is the whole query, otherwise
    it is a label filter: ``avg(metricName{filter,labelBindings...}) by (groupByFields)``.
    """
    variables = scope.variables()
    if metric.query is not None:
        return render(metric.query, variables, what=f"metric {metric.name!r}")
    query = metric.kayenta_query
    if query is None:
        raise TemplateError(f"metric {metric.name!r} has no query")
    variables.setdefault("project", "")
    variables.setdefault("resourceType", str(query.get("resourceType") or ""))
    custom = query.get("customInlineTemplate") or metric.filter_template
    what = f"metric {metric.name!r}"
    custom_filter = render(str(custom), variables, what=what) if custom else ""
    if custom_filter.startswith(PROMQL_PREFIX):
        return custom_filter[len(PROMQL_PREFIX) :].strip()
    name = query.get("metricName")
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{what}: query.metricName is required unless the template starts with PromQL:")
    filters = [custom_filter] if custom_filter else _resource_filters(query, scope, what)
    filters += [render(str(binding), variables, what=what) for binding in query.get("labelBindings") or []]
    selector = name + ("{" + ",".join(filters) + "}" if filters else "")
    expression = f"avg({selector})"
    group_by = _strings(query.get("groupByFields"), f"{what}: query.groupByFields")
    if group_by:
        expression += " by (" + ",".join(group_by) + ")"
    return expression


def _resource_filters(query: Mapping[str, Any], scope: Scope, what: str) -> list[str]:
    """Kayenta's built-in filters for ``resourceType`` gce_instance and aws_ec2_instance."""
    resource = query.get("resourceType") or scope.params.get("resourceType")
    if not resource:
        raise TemplateError(f"{what}: needs a custom filter template or a resourceType")
    if not scope.location:
        raise TemplateError(f"{what}: resourceType {resource!r} needs the scope's location (region)")
    location = escape_string(scope.location, '"')
    value = escape_string(scope.scope, '"')
    if resource == "gce_instance":
        label = scope.params.get("scopeLabel", "instance")
        _check_label(label, what)
        project = scope.params.get("project")
        zone = ".+/" + ("projects/" + escape_string(project, '"') + "/" if project else "")
        filters = [f'{label}=~"{value}-.{{4}}"'] if scope.scope else []
        return [*filters, f'zone=~"{zone}zones/{location}-.{{1}}"']
    if resource == "aws_ec2_instance":
        filters = [f'asg_groupName="{value}"'] if scope.scope else []
        return [*filters, f'zone=~"{location}.{{1}}"']
    raise TemplateError(
        f"{what}: resourceType {resource!r} has no built-in filter; "
        "use labelBindings and a custom filter template"
    )


def _check_label(label: str, what: str) -> None:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", label):
        raise TemplateError(f"{what}: scopeLabel {label!r} is not a valid label name")


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TemplateError(f"{what} must be a list of label names")
    for label in value:
        _check_label(label, what)
    return list(value)
