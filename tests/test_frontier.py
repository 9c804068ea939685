"""The compute/energy frontier against a hand-made example: the Pareto set over (time, energy),
Zeus's eta-optimal point at eta 0, 0.5 and 1, the maximum power's source, and exclusions."""

from __future__ import annotations

import pytest

from bigbench.frontier import (
    FrontierPoint,
    MaxPower,
    eta_optimum,
    frontier,
    max_power,
    pareto_set,
    zeus_cost,
)

#: Four measured points and two that lack a figure. By hand, with max power P = 2 W:
#:
#:   point  time  energy   on the front?          cost at eta 0 (2t)  eta 1 (E)  eta 0.5 (E/2 + t)
#:   A      1     10       yes (fastest)          2  ← least          10         6
#:   B      2     6        yes                    4                   6          5  ← least
#:   C      3     7        no: B is faster and    6                   7          6.5
#:                         cheaper
#:   D      4     3        yes (least energy)     8                   3  ← least 5.5
#:   E      —     5        left out: no time
#:   F      2.5   —        left out: no energy
POINTS = [
    FrontierPoint("A", 1.0, 10.0), FrontierPoint("B", 2.0, 6.0), FrontierPoint("C", 3.0, 7.0),
    FrontierPoint("D", 4.0, 3.0), FrontierPoint("E", None, 5.0, "the run was interrupted"),
    FrontierPoint("F", 2.5, None, "RAPL: no powercap interface"),
]
POWER = MaxPower(2.0, "gpu_max_power_limit")


def test_the_pareto_set_by_hand() -> None:
    marks, excluded = pareto_set(POINTS)
    assert marks == {"A": [], "B": [], "C": ["B"], "D": []}
    assert excluded == {"E": "the run was interrupted", "F": "RAPL: no powercap interface"}
    found = frontier(POINTS, 0.5, POWER)
    assert found.front == ["A", "B", "D"] and found.dominated_by["C"] == ["B"]
    assert found.reason is None


@pytest.mark.parametrize(("eta", "best", "cost"), [(0.0, "A", 2.0), (0.5, "B", 5.0),
                                                   (1.0, "D", 3.0)])
def test_the_eta_optimum_by_hand(eta: float, best: str, cost: float) -> None:
    optimum = eta_optimum(POINTS, eta, POWER)
    assert optimum.key == best and optimum.cost == pytest.approx(cost)
    assert optimum.eta == eta and optimum.max_power == POWER
    expected = {"A": (2.0, 10.0, 6.0), "B": (4.0, 6.0, 5.0), "C": (6.0, 7.0, 6.5),
                "D": (8.0, 3.0, 5.5)}
    column = {0.0: 0, 1.0: 1, 0.5: 2}[eta]
    assert optimum.costs == pytest.approx({k: v[column] for k, v in expected.items()})
    # Points without both figures are never costed, and say why.
    assert set(optimum.excluded) == {"E", "F"}


def test_zeus_cost_is_in_joules() -> None:
    # 0.25 · 100 J + 0.75 · 300 W · 2 s = 25 J + 450 J
    assert zeus_cost(100.0, 2.0, 0.25, 300.0) == pytest.approx(475.0)


def test_the_optimum_is_always_on_the_front() -> None:
    front = set(frontier(POINTS, 0.5, POWER).front)
    for tenth in range(11):
        assert eta_optimum(POINTS, tenth / 10, POWER).key in front


def test_a_tie_goes_to_the_lower_energy_never_to_a_dominated_point() -> None:
    # eta 0.5, P = 2 W: x costs 0.5·4 + 0.5·2·1 = 3 J, y costs 0.5·2 + 0.5·2·2 = 3 J.
    tied = [FrontierPoint("x", 1.0, 4.0), FrontierPoint("y", 2.0, 2.0)]
    assert eta_optimum(tied, 0.5, POWER).key == "y"
    assert eta_optimum(tied[::-1], 0.5, POWER).key == "y"  # whatever the order
    # eta 0 weighs time only: a and b tie at 1 s, but b dominates a (less energy).
    same_time = [FrontierPoint("a", 1.0, 10.0), FrontierPoint("b", 1.0, 5.0)]
    assert eta_optimum(same_time, 0.0, POWER).key == "b"


def test_max_power_prefers_the_gpu_limit_then_the_largest_average() -> None:
    assert max_power([None, 300.0, 250.0], [180.0]) == MaxPower(300.0, "gpu_max_power_limit")
    assert max_power([None, None], [None, 120.5, 80.0]) == MaxPower(
        120.5, "largest_measured_avg_power")
    unknown = max_power([], [None])
    assert unknown.watts is None and unknown.source is None and unknown.reason


def test_no_energy_anywhere_gives_no_optimum_with_the_reason() -> None:
    points = [FrontierPoint("a", 1.0, None, "RAPL: permission denied"),
              FrontierPoint("b", 2.0, None, "RAPL: permission denied")]
    found = frontier(points, 0.5, max_power([], []))
    assert found.front == [] and found.optimum.key is None and found.optimum.cost is None
    assert found.reason == found.optimum.reason == "no point has both a time and an energy " \
                                                  "figure"
    assert found.excluded == found.optimum.excluded == {"a": "RAPL: permission denied",
                                                        "b": "RAPL: permission denied"}


def test_without_a_maximum_power_only_eta_1_has_an_optimum() -> None:
    unknown = MaxPower(None, None, "nothing measured")
    assert eta_optimum(POINTS, 1.0, unknown).key == "D"
    missing = eta_optimum(POINTS, 0.5, unknown)
    assert missing.key is None and "nothing measured" in missing.reason


def test_eta_outside_0_1_is_a_bug_in_the_caller() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        eta_optimum(POINTS, 1.5, POWER)
