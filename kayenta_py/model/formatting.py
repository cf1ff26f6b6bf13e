"""Numbers and times as every door shows and reads them: one home, so that a reason, a report,
a Slack message and the CLI print the same figure the same way.

Near matches: ``did_you_mean`` for every "unknown name" error. Numbers: 4 significant digits
(scientific outside 1e-3..1e5), scores with 2 decimals, and ``n/a`` for what is not a finite
number. Times: RFC 3339 read with a naive time taken as UTC.
"""

from __future__ import annotations

import difflib
import math
from datetime import UTC, datetime
from typing import Any


def did_you_mean(word: str, choices: Any) -> str:
    """Return ``"; did you mean X?"`` for the nearest of ``choices``, or an empty string."""
    match = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def format_number(value: Any) -> str:
    """Format a number compactly for reasons and tables (4 significant digits; ``n/a`` if none)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def format_score(score: Any) -> str:
    """Format a canary or group score (0-100) with 2 decimals (``n/a`` if none)."""
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return "n/a"
    return f"{score:.2f}"


def format_utc(epoch: float | None) -> str:
    """Format epoch seconds as a UTC time for people (``2026-11-26 09:00:00 UTC``; ``n/a`` if none)."""
    if epoch is None or not math.isfinite(epoch):
        return "n/a"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def epoch_of(moment: datetime) -> float:
    """Return a datetime's epoch seconds, a naive one taken as UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_rfc3339(text: str) -> float:
    """Return the epoch seconds of an RFC 3339 time (``Z`` or an offset; naive means UTC).

    Raises ValueError when ``text`` is not such a time; callers name their field in the error.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return epoch_of(moment)
