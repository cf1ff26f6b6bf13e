"""Stored metric pairs: the JSON codec, and fixed-mode intervals stored as deltas.

Storage stays linear in the data: interval k of a fixed-mode analysis stores only the points
it adds to interval k-1 (see the section below); reading rebuilds the full pairs exactly.
Test: ``tests/test_store_hostile.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kayenta_py.model.types import MetricSet, MetricSetPair


class BrokenDeltaError(ValueError):
    """A stored delta that does not extend the entry it names (the store reports the row)."""


def pairs_to_json(pairs: Sequence[MetricSetPair]) -> list[dict[str, Any]]:
    """Serialize raw metric pairs (NaN as null) so an interval can be judged again later."""

    def side(values: Any, timestamps: Any) -> dict[str, Any]:
        return {
            "values": [None if not math.isfinite(v) else float(v) for v in values.tolist()],
            "timestamps": None if timestamps is None else timestamps.tolist(),
        }

    return [
        {
            "name": p.name,
            "tags": dict(p.tags),
            "baseline": side(p.baseline.values, p.baseline.timestamps),
            "canary": side(p.canary.values, p.canary.timestamps),
        }
        for p in pairs
    ]


def pairs_from_json(document: Sequence[Mapping[str, Any]]) -> list[MetricSetPair]:
    """Rebuild metric pairs stored by :func:`pairs_to_json` (null back to NaN)."""
    def side(name: str, tags: Mapping[str, str], raw: Mapping[str, Any]) -> MetricSet:
        values = np.array([math.nan if v is None else v for v in raw["values"]], dtype=np.float64)
        return MetricSet(name, values, tags, raw.get("timestamps"))

    if has_delta(document):
        raise ValueError("the document holds delta entries: read IntervalRecord.pairs, not stored_pairs")
    return [
        MetricSetPair(
            p["name"],
            side(p["name"], p["tags"], p["baseline"]),
            side(p["name"], p["tags"], p["canary"]),
            p["tags"],
        )
        for p in document
    ]


# ------------------------------------------------------------ pairs stored as deltas
#
# A fixed-mode analysis' windows are cumulative (same start, growing end), so interval k
# holds every point of interval k-1 again. A pair entry of interval k is then stored as
# a delta, {"delta": k-1, "at": p, "b": [n, values, timestamps], "c": [...]}: the points
# after the first n of each side (baseline, canary), extending entry p of interval k-1.
# That is done only when those first n points hash like interval k-1's whole side (its
# digest, in the small ``pairs_digest`` column); otherwise the entry is stored in full.
# Reading concatenates the deltas of intervals 0..k, so it is exact.

SIDES = ("baseline", "canary")
_SHORT = {"baseline": "b", "canary": "c"}


def has_delta(document: Any) -> bool:
    return isinstance(document, list) and any(isinstance(e, Mapping) and "delta" in e for e in document)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _pair_key(entry: Mapping[str, Any]) -> str:
    return _short_hash(json.dumps([entry["name"], sorted(dict(entry["tags"]).items())]))


def _side_digest(side: Mapping[str, Any], count: int) -> str:
    stamps = side.get("timestamps")
    values = side["values"][:count]
    return _short_hash(
        json.dumps([values, None if stamps is None else stamps[:count]], separators=(",", ":"))
    )


def encode_pairs(
    document: Sequence[Mapping[str, Any]], index: int, previous: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (the entries to store, their digest) for interval ``index``'s full pairs ``document``.

    ``previous`` is the digest of interval ``index - 1`` when its window starts where this
    one does (else None: every entry is stored in full).
    """
    keys = [_pair_key(e) for e in document]
    earlier = (previous or {}).get("pairs", {})
    stored: list[dict[str, Any]] = []
    digest: dict[str, list[Any]] = {}
    for position, (key, entry) in enumerate(zip(keys, document, strict=True)):
        sides = [entry[name] for name in SIDES]
        digest[key] = [
            position,
            *(x for s in sides for x in (len(s["values"]), _side_digest(s, len(s["values"])))),
        ]
        before = earlier.get(key) if keys.count(key) == 1 else None
        counts = [] if before is None else [before[1], before[3]]
        if before is not None and all(
            len(s["values"]) >= n and _side_digest(s, n) == sha
            for s, n, sha in zip(sides, counts, (before[2], before[4]), strict=True)
        ):
            delta: dict[str, Any] = {"delta": index - 1, "at": before[0]}
            for name, side, n in zip(SIDES, sides, counts, strict=True):
                stamps = side.get("timestamps")
                delta[_SHORT[name]] = [n, side["values"][n:], None if stamps is None else stamps[n:]]
            stored.append(delta)
        else:
            stored.append(dict(entry))
    return stored, {"version": 1, "pairs": digest}


def cumulative_document(intervals: Sequence[tuple[int, Sequence[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
    """Return the full pairs of the last of ``intervals`` ((index, stored entries), oldest first).

    Raises :class:`BrokenDeltaError` when a delta does not follow the entry it extends.
    """
    state: list[dict[str, Any]] = []
    last = None
    for index, document in intervals:
        current: list[dict[str, Any]] = []
        for entry in document or ():
            try:
                if "delta" not in entry:
                    full = {"name": entry["name"], "tags": entry["tags"]}
                    for n in SIDES:
                        stamps = entry[n].get("timestamps")
                        full[n] = {
                            "values": list(entry[n]["values"]),
                            "timestamps": None if stamps is None else list(stamps),
                        }
                else:
                    if entry["delta"] != index - 1 or last != index - 1 or not 0 <= entry["at"] < len(state):
                        raise ValueError(f"a delta without interval {index - 1}'s entry {entry.get('at')}")
                    full = state[entry["at"]]
                    for n in SIDES:
                        carried, values, stamps = entry[_SHORT[n]]
                        whole = full[n]
                        if carried != len(whole["values"]) or (stamps is None) != (
                            whole["timestamps"] is None
                        ):
                            raise ValueError(f"a delta of {full['name']!r} that does not extend its base")
                        whole["values"].extend(values)
                        if stamps is not None:
                            whole["timestamps"].extend(stamps)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise BrokenDeltaError(f"interval {index}'s stored pairs: {exc}") from None
            current.append(full)
        state, last = current, index
    return state
