"""The compute/energy frontier of a sweep: the Pareto set over (time, energy) and the
eta-optimal operating point.

Pure functions over points that each carry a time and an energy figure of the same kind:
per sample (s/sample = 1 / throughput, J/sample) or to a quality target (s, J). The optimum
minimises Zeus's cost metric (You, Chung and Chowdhury, "Zeus: Understanding and Optimizing
GPU Energy Consumption of DNN Training", NSDI'23)::

    cost = eta · energy + (1 − eta) · max_power_w · time

``eta`` = 1 minimises energy, ``eta`` = 0 minimises time; multiplying time by a fixed power
turns both terms into joules, so the cost is in J (J/sample on the per-sample basis).
``max_power_w`` is the GPU's maximum power limit when known, else the largest average power
measured among the trials (the closest measured stand-in); which one is recorded.

A point without a figure is never guessed: it is left out with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bigbench import pareto

#: The Pareto objectives: both minimised.
TIME = pareto.Objective("time_s")
ENERGY = pareto.Objective("energy_j")

MaxPowerSource = Literal["gpu_max_power_limit", "largest_measured_avg_power"]
#: Why a frontier or optimum is empty (each point's own reason is in ``excluded``).
NO_POINT = "no point has both a time and an energy figure"


@dataclass(frozen=True)
class FrontierPoint:
    """One candidate operating point.

    Attributes:
        key: Unique name (a sweep combination's id).
        time_s: Time per sample (s/sample) or to the target (s); None when not measured.
        energy_j: Energy per sample (J/sample) or to the target (J); None when not measured.
        reason: Why time or energy is None (required for an honest exclusion note).
    """

    key: str
    time_s: float | None
    energy_j: float | None
    reason: str | None = None


@dataclass(frozen=True)
class MaxPower:
    """The power that converts time into joules in the cost.

    Attributes:
        watts: The figure, W (None when neither source is known).
        source: ``gpu_max_power_limit`` or ``largest_measured_avg_power`` (None with watts).
        reason: Why watts is None.
    """

    watts: float | None
    source: MaxPowerSource | None
    reason: str | None = None


@dataclass
class Optimum:
    """The eta-optimal point.

    Attributes:
        key: The point minimising the cost (None when no point could be costed).
        eta: The weight of energy, 0..1.
        cost: Its cost, J (J/sample on the per-sample basis); None with key.
        costs: The cost of every point that could be costed.
        max_power: The power used to turn time into joules.
        excluded: Points left out → why.
        reason: Why there is no optimum (each excluded point's reason is in ``excluded``).
    """

    key: str | None
    eta: float
    cost: float | None
    costs: dict[str, float]
    max_power: MaxPower
    excluded: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class Frontier:
    """The Pareto set and the eta optimum of a set of points.

    Attributes:
        front: Keys no other point beats on both time and energy, in input order.
        dominated_by: For every point with both figures, the points dominating it.
        excluded: Points without both figures → why (not in the Pareto comparison).
        optimum: The eta-optimal point.
        reason: Why the front is empty (no point has both figures; see ``excluded``).
    """

    front: list[str]
    dominated_by: dict[str, list[str]]
    excluded: dict[str, str]
    optimum: Optimum
    reason: str | None = None


def _why(point: FrontierPoint, missing: str) -> str:
    return point.reason or f"{missing} not measured"


def split(points: Sequence[FrontierPoint]) -> tuple[list[FrontierPoint], dict[str, str]]:
    """The points with both a time and an energy figure, and the others → why."""
    usable, excluded = [], {}
    for point in points:
        if point.time_s is None:
            excluded[point.key] = _why(point, "time")
        elif point.energy_j is None:
            excluded[point.key] = _why(point, "energy")
        else:
            usable.append(point)
    return usable, excluded


def pareto_set(points: Sequence[FrontierPoint]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Pareto dominance over (time, energy), both minimised.

    Returns:
        For every point with both figures, the points dominating it (empty: on the front);
        and the points left out → why.
    """
    usable, excluded = split(points)
    candidates = {p.key: {TIME.key: p.time_s, ENERGY.key: p.energy_j} for p in usable}
    return pareto.dominated_by(candidates, [TIME, ENERGY]), excluded


def max_power(limits_w: Iterable[float | None],
              avg_powers_w: Iterable[float | None]) -> MaxPower:
    """The GPU's maximum power limit when known, else the largest measured average power.

    Args:
        limits_w: The GPU's maximum power limit as each trial recorded it, W (None: unknown).
        avg_powers_w: Each trial's average power over its measured window, W (None: not
            measured).
    """
    limits = [w for w in limits_w if w is not None and w > 0]
    if limits:
        return MaxPower(max(limits), "gpu_max_power_limit")
    powers = [w for w in avg_powers_w if w is not None and w > 0]
    if powers:
        return MaxPower(max(powers), "largest_measured_avg_power")
    return MaxPower(None, None, "neither the GPU's maximum power limit nor any trial's "
                                "average power is known")


def zeus_cost(energy_j: float, time_s: float, eta: float, max_power_w: float) -> float:
    """``eta · energy_j + (1 − eta) · max_power_w · time_s``, J.

    Args:
        energy_j: Energy, J (or J/sample).
        time_s: Time, s (or s/sample).
        eta: Weight of energy, 0..1.
        max_power_w: Power that converts time into joules, W.
    """
    return eta * energy_j + (1.0 - eta) * max_power_w * time_s


def eta_optimum(points: Sequence[FrontierPoint], eta: float, power: MaxPower) -> Optimum:
    """The point of least Zeus cost (the first in input order on a tie).

    Raises:
        ValueError: ``eta`` outside 0..1 (the config refuses it earlier).
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be between 0 and 1, got {eta}")
    usable, excluded = split(points)
    if not usable:
        return Optimum(None, eta, None, {}, power, excluded, NO_POINT)
    watts = power.watts
    if watts is None and eta < 1.0:
        # eta = 1 weighs energy only and needs no power; anything else does.
        return Optimum(None, eta, None, {}, power, excluded,
                       f"the cost needs a maximum power and {power.reason}")
    costs = {p.key: zeus_cost(p.energy_j, p.time_s, eta, watts or 0.0)  # type: ignore[arg-type]
             for p in usable}
    by_key = {p.key: p for p in usable}
    # A tie in cost goes to the point that is better in energy, then in time: never to one
    # that the other dominates.
    best = min(costs, key=lambda k: (costs[k], by_key[k].energy_j, by_key[k].time_s))
    return Optimum(best, eta, costs[best], costs, power, excluded)


def frontier(points: Sequence[FrontierPoint], eta: float, power: MaxPower) -> Frontier:
    """The Pareto set over (time, energy) and the eta-optimal point of ``points``."""
    marks, excluded = pareto_set(points)
    front = [key for key, by in marks.items() if not by]
    return Frontier(front, marks, excluded, eta_optimum(points, eta, power),
                    None if marks else NO_POINT)
