"""What the sequential judges share: the split of a metric's alpha with the final look."""

from __future__ import annotations

from kayenta_py.plugin import clip_p


def final_share_p(p: float, share: float) -> float:
    """A final-look p-value over the alpha share kept for it (1 when no share is kept)."""
    return 1.0 if share <= 0 else clip_p(p / share)
