"""Slack Block Kit pieces within Slack's limits: escaping, clipping, sections, buttons, metric lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from kayenta_py.model.formatting import format_number
from kayenta_py.model.types import FAILING_CLASSIFICATIONS

# Slack's Block Kit limits (https://api.slack.com/reference/block-kit).
MAX_BLOCKS = 50


MAX_SECTION_TEXT = 3000


MAX_HEADER_TEXT = 150


MAX_BUTTON_TEXT = 75


MAX_URL = 3000


MAX_FALLBACK_TEXT = 3000  # Slack accepts more, but a notification preview shows a line or two


MAX_METRIC_LINE = 600  # one metric's entry; a longer reason is cut


MAX_METRIC_SECTIONS = 5  # sections listing metrics; the rest is counted and left to the report




VERDICT_EMOJI = {"pass": ":white_check_mark:", "marginal": ":warning:", "fail": ":x:"}


def escape(text: str) -> str:
    """Escape text for Slack mrkdwn, so user input cannot make links or mentions (``<!channel>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending with ``ellipsis`` when cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:  # never leave half an escape (``&am``)
        cut = cut[:amp]
    return cut + ellipsis


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def _header(text: str) -> dict[str, Any]:
    plain = {"type": "plain_text", "text": clip(text, MAX_HEADER_TEXT), "emoji": True}
    return {"type": "header", "text": plain}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}]}


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, MAX_BUTTON_TEXT), "emoji": True},
        "url": url[:MAX_URL],
        "action_id": action_id,
    }






def _when(epoch: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M %Z")


def metric_label(metric: Mapping[str, Any]) -> str:
    """Return a metric's name with its tags (``latency{region=eu}``)."""
    tags = metric.get("tags") or {}
    name = str(metric.get("name", "?"))
    return name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(tags.items())) + "}" if tags else "")


def not_passing(metrics: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return the metrics that did not pass: critical failures first, then failures, then no data."""
    chosen = [m for m in metrics if m.get("classification") != "Pass" and not m.get("muted")]

    def rank(metric: Mapping[str, Any]) -> int:
        failing = metric.get("classification") in FAILING_CLASSIFICATIONS
        return 0 if failing and metric.get("critical") else 1 if failing else 2

    return sorted(chosen, key=rank)  # stable: the config's order within a rank


def metric_line(metric: Mapping[str, Any]) -> str:
    """Return one metric's mrkdwn entry: classification, effect size, confidence interval, reason."""
    critical = " (critical)" if metric.get("critical") else ""
    parts = [f"• *{escape(metric_label(metric))}*{critical}: {escape(str(metric.get('classification')))}"]
    if metric.get("effect_size") is not None:
        measure = metric.get("effect_measure")
        size = f"effect size {format_number(metric['effect_size'])}"
        parts.append(size + (f" ({escape(str(measure))})" if measure else ""))
    ci = metric.get("ci")
    if isinstance(ci, Sequence) and len(ci) == 2:
        parts.append(f"CI [{format_number(ci[0])}, {format_number(ci[1])}]")
    line = ", ".join(parts)
    reason = str(metric.get("reason") or "").strip()
    if reason:
        line += f"\n   _{escape(reason)}_"
    return clip(line, MAX_METRIC_LINE)


def pack_lines(lines: Sequence[str], *, heading: str, max_sections: int) -> list[str]:
    """Pack lines into at most ``max_sections`` texts of at most 3,000 characters each.

    Lines that do not fit are counted in a closing "…and N more metrics" line.
    """
    texts: list[str] = []
    current = heading
    for index, line in enumerate(lines):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= MAX_SECTION_TEXT:
            current = candidate
            continue
        if len(texts) + 1 < max_sections:  # start a new section
            texts.append(current)
            current = line
            continue
        rest = len(lines) - index
        more = f"\n…and {rest} more metric{'s' if rest != 1 else ''} (see the report)"
        while current and len(current) + len(more) > MAX_SECTION_TEXT:  # make room for the note
            current = current.rsplit("\n", 1)[0] if "\n" in current else ""
            rest += 1
            more = f"\n…and {rest} more metrics (see the report)"
        texts.append(current + more)
        return texts
    if current:
        texts.append(current)
    return texts


def limit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return at most 50 blocks, keeping the last (the links) when blocks must be dropped."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], blocks[-1]]


