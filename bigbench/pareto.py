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
    """

    key: str
    maximize: bool = False


def usable(candidates: Mapping[str, Mapping[str, float | None]],
           objectives: Sequence[Objective]) -> list[Objective]:
    """The objectives every candidate has a value for."""
    return [o for o in objectives
            if candidates and all(c.get(o.key) is not None for c in candidates.values())]


def _better_or_equal(a: float, b: float, objective: Objective) -> bool:
    return a >= b if objective.maximize else a <= b


def dominates(a: Mapping[str, float | None], b: Mapping[str, float | None],
              objectives: Sequence[Objective]) -> bool:
    """Whether ``a`` dominates ``b`` over ``objectives`` (values must be present)."""
    at_least = all(_better_or_equal(a[o.key], b[o.key], o) for o in objectives)  # type: ignore[arg-type]
    strictly = any(a[o.key] != b[o.key] for o in objectives)
    return at_least and strictly


def dominated_by(candidates: Mapping[str, Mapping[str, float | None]],
                 objectives: Sequence[Objective]) -> dict[str, list[str]]:
    """For each candidate, the candidates that dominate it (empty: on the Pareto front)."""
    return {name: [other for other, theirs in candidates.items()
                   if other != name and dominates(theirs, ours, objectives)]
            for name, ours in candidates.items()}
