"""Small statistics helpers with explicit, documented definitions."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between closest ranks.

    This is NumPy's default ("linear") definition, so figures can be checked against
    ``numpy.percentile``.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_durations(durations_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99, mean, min and max of step durations in seconds (all null when empty)."""
    if not durations_s:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "min": None, "max": None}
    return {
        "p50": percentile(durations_s, 50),
        "p90": percentile(durations_s, 90),
        "p99": percentile(durations_s, 99),
        "mean": sum(durations_s) / len(durations_s),
        "min": min(durations_s),
        "max": max(durations_s),
    }
