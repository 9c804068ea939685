"""Pareto dominance over several objectives, each minimised or maximised (optimize's variants,
the compute/energy frontier of sweeps).

A candidate is dominated when another is at least as good in every objective and strictly
better in one. Objectives a candidate lacks (null: not measured) are not guessed: an objective
enters the comparison only when every candidate has it, and the caller records which did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    """One axis of the comparison.

    Attributes:
        key: The figure's name in each candidate's mapping.
        maximize: Larger is better (accuracy); else smaller is better (latency, size, J).
        tolerance: Relative difference within which two measured values count as equal
            (their noise: a latency 2% lower is no win when repeats scatter by 5%).
    """

    key: str
    maximize: bool = False
    tolerance: float = 0.0


def usable(candidates: Mapping[str, Mapping[str, float | None]],
           objectives: Sequence[Objective]) -> list[Objective]:
    """The objectives every candidate has a value for."""
    return [o for o in objectives
            if candidates and all(c.get(o.key) is not None for c in candidates.values())]


def compare(a: float, b: float, objective: Objective) -> int:
    """+1 when ``a`` is better than ``b``, −1 when worse, 0 when equal within the tolerance."""
    if abs(a - b) <= objective.tolerance * max(abs(a), abs(b)):
        return 0
    return 1 if (a > b) == objective.maximize else -1


def dominates(a: Mapping[str, float | None], b: Mapping[str, float | None],
              objectives: Sequence[Objective]) -> bool:
    """Whether ``a`` dominates ``b`` over ``objectives`` (values must be present): at least as
    good in every one and better in one, beyond each objective's tolerance."""
    results = [compare(a[o.key], b[o.key], o) for o in objectives]  # type: ignore[arg-type]
    return all(r >= 0 for r in results) and any(r > 0 for r in results)


def dominated_by(candidates: Mapping[str, Mapping[str, float | None]],
                 objectives: Sequence[Objective]) -> dict[str, list[str]]:
    """For each candidate, the candidates that dominate it (empty: on the Pareto front)."""
    return {name: [other for other, theirs in candidates.items()
                   if other != name and dominates(theirs, ours, objectives)]
            for name, ours in candidates.items()}
