"""The report page's fixed parts: colours, CSS, the content security policy, escaping, number cells."""

from __future__ import annotations

import html
from typing import Any

from kayenta_py.model.formatting import format_number

FAILING_ROW_COLOR = "#fbd5d5"
"""Background of a failing metric's row (a color used nowhere else on the page)."""


MAX_PLOT_POINTS = 500
"""At most this many points per line of a time series; longer series are downsampled (min/max per bucket)."""


BASELINE_COLOR = "#1f6fb4"


CANARY_COLOR = "#e8710a"




VERDICT_COLORS = {"pass": "#1a7f37", "marginal": "#b26b00", "fail": "#c62828", "pending": "#5f6b7a"}


CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""The page's policy: inline styles only; no script, font, frame or fetch of anything."""


_CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; padding: 24px 32px 48px; font: 14px/1.45 "DejaVu Sans", Verdana, Arial, sans-serif;
  color: #1d2733; background: #ffffff; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d8dee6; }}
h3 {{ font-size: 15px; margin: 0 0 6px; }}
.sub {{ color: #5f6b7a; margin: 0 0 18px; }}
.summary {{ display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; }}
.verdict {{ min-width: 190px; padding: 14px 20px; border-radius: 8px; color: #ffffff; text-align: center; }}
.verdict .word {{ font-size: 34px; font-weight: bold; letter-spacing: 2px; }}
.verdict .score {{ font-size: 16px; }}
.facts {{ flex: 1; min-width: 380px; }}
.facts table {{ width: auto; }}
.facts table td, .facts table th {{ border: none; padding: 2px 12px 2px 0; background: none; }}
.facts th {{ text-align: left; color: #5f6b7a; font-weight: normal; white-space: nowrap; }}
.reason {{ margin: 14px 0 0; padding: 10px 14px; background: #f3f5f8; border-left: 4px solid #9aa6b2; }}
.error {{ margin: 10px 0 0; padding: 10px 14px; background: #fff0f0; border-left: 4px solid #c62828; }}
.warnings {{ margin: 10px 0 0; padding: 8px 14px 8px 30px; background: #fff8e1;
  border-left: 4px solid #e0a800; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #d8dee6; padding: 5px 8px; text-align: left; vertical-align: top; }}
thead th {{ background: #eef1f5; font-size: 13px; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.v {{ white-space: nowrap; }}
td.name {{ white-space: nowrap; }}
td.reason-cell {{ font-size: 12.5px; color: #3a4653; min-width: 260px; }}
tr.metric.failing td {{ background: {FAILING_ROW_COLOR}; }}
tr.metric.nodata td {{ background: #fff3cd; }}
tr.metric.muted td {{ color: #7b8794; }}
.badge {{ display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: bold;
  color: #ffffff; white-space: nowrap; }}
.badge.pass {{ background: #1a7f37; }}
.badge.failing {{ background: #c62828; }}
.badge.nodata {{ background: #b26b00; }}
.badge.muted {{ background: #7b8794; }}
.pill {{ display: inline-block; padding: 0 6px; border: 1px solid #c62828; border-radius: 8px; color: #c62828;
  font-size: 11px; margin-left: 4px; }}
.tags {{ color: #5f6b7a; font-size: 12px; }}
.n {{ color: #5f6b7a; font-size: 12px; }}
.groups td, .groups th {{ padding: 2px 10px; }}
.groups {{ width: auto; margin-top: 10px; }}
.plots {{ display: grid; grid-template-columns: 1fr; gap: 18px; }}
.card {{ border: 1px solid #d8dee6; border-radius: 6px; padding: 10px 12px; }}
.card.failing {{ border-color: #c62828; border-width: 2px; }}
.card .pair {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }}
.card svg {{ width: 100%; height: auto; display: block; }}
.card .none {{ color: #5f6b7a; font-style: italic; }}
svg text {{ font: 11px "DejaVu Sans", Verdana, Arial, sans-serif; fill: #3a4653; }}
svg .axis {{ stroke: #9aa6b2; stroke-width: 1; }}
svg .grid {{ stroke: #e6eaef; stroke-width: 1; }}
a {{ color: #1f6fb4; }}
footer {{ margin-top: 36px; color: #7b8794; font-size: 12px; }}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)








def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _v(value: Any) -> str:
    """Return a number as an unbreakable span (a table cell may wrap between numbers, not inside)."""
    return f'<span class="v">{_e(format_number(value))}</span>'


