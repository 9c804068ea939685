"""The figure of a sweep: time against energy of every trial and combination, with the Pareto
front and the eta-optimal combination marked (``frontier-<sweep>``).

Everything drawn comes from sweep.json: each completed trial as a small hollow point, each
combination's medians as a filled marker, the front as a step line through the combinations
no other beats on both axes, the optimum as a star with its iso-cost line (every point of
equal cost eta·energy + (1 − eta)·max_power·time). The axes are the sweep's basis: per sample
(ms/sample, J/sample) or to the quality target (s, J).
"""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from bigbench.records import SweepDocument, SweepResult
from bigbench.reporting import style
from bigbench.reporting.figures import (
    _Drawn,
    _legend,
    _log_if_wide,
    _log_note,
    _Missing,
    _place_labels,
    _Plan,
    _scale,
    _slug,
    _unique_key,
)
from bigbench.reporting.inputs import SweepInput
from bigbench.sweep.output import OPTIMUM


def sweep_plans(sweeps: list[SweepInput], keys: set[str]) -> list[_Plan]:
    """One frontier figure per sweep."""
    return [_Plan(_unique_key(f"frontier-{_slug(sweep.label)}", keys),
                  f"Time against energy: sweep {sweep.label}",
                  f"Time against energy of every trial and combination of sweep {sweep.label}, "
                  "with the Pareto front and the eta-optimal combination.",
                  lambda sweep=sweep: _frontier_figure(sweep)) for sweep in sweeps]


def _trial_points(document: SweepDocument, time_key: str, energy_key: str
                  ) -> dict[str, list[tuple[float, float]]]:
    """Combination id → (time, energy) of each completed trial that has both."""
    points: dict[str, list[tuple[float, float]]] = {}
    for trial in document.trials:
        time_s, energy = getattr(trial, time_key, None), getattr(trial, energy_key, None)
        if trial.status == "completed" and time_s is not None and energy is not None:
            points.setdefault(trial.combination, []).append((time_s, energy))
    return points


def _no_frontier_reason(document: SweepDocument) -> str:
    frontier = document.frontier
    if frontier is None:
        return f"no trial of the sweep has finished (status {document.status})"
    reasons = "; ".join(dict.fromkeys(frontier.excluded.values()))
    return f"{frontier.reason or 'nothing to draw'}" + (f": {reasons}" if reasons else "")


def _frontier_figure(sweep: SweepInput) -> _Drawn:
    document = sweep.document
    frontier = document.frontier
    drawn = [r for r in document.results if r.time_s is not None and r.energy_j is not None]
    if frontier is None or not drawn:
        raise _Missing(_no_frontier_reason(document))
    per_sample = frontier.basis == "per_sample"
    # Per sample, time is milliseconds; to the target, seconds.
    time_factor, time_unit = (1e3, "ms/sample") if per_sample else (1.0, "s")
    trials = _trial_points(document, "s_per_sample" if per_sample else "time_to_target_s",
                           frontier.energy_key)
    energies = [r.energy_j for r in drawn] + [e for pts in trials.values() for _, e in pts]
    factor, unit = _scale(energies, "J/sample" if per_sample else "J")
    figure = style.new_figure()
    ax = figure.add_subplot()
    styles = dict(zip([r.id for r in drawn], style.series_styles(len(drawn)), strict=True))
    for result in drawn:
        line = styles[result.id]
        pts = trials.get(result.id, [])
        ax.plot([t * time_factor for t, _ in pts], [e * factor for _, e in pts],
                linestyle="none", marker=line.marker, markersize=4, color=line.color,
                markerfacecolor="white", alpha=0.7, zorder=2)
        x, y = result.time_s * time_factor, result.energy_j * factor  # type: ignore[operator]
        on_front = result.pareto is not None and not result.pareto.dominated
        ax.plot(x, y, linestyle="none", marker=line.marker, markersize=8, color=line.color,
                markeredgecolor="black" if on_front else line.color, zorder=3)
        ax.annotate(result.id, (x, y), fontsize=7, annotation_clip=False).set_in_layout(False)
    front = sorted((r for r in drawn if r.pareto is not None and not r.pareto.dominated),
                   key=lambda r: (r.time_s, r.energy_j))
    ax.step([r.time_s * time_factor for r in front],  # type: ignore[operator]
            [r.energy_j * factor for r in front], where="post",  # type: ignore[operator]
            color="black", linewidth=1.2, zorder=1)
    best = next((r for r in drawn if r.optimal), None)
    if best is not None:
        ax.plot(best.time_s * time_factor, best.energy_j * factor,  # type: ignore[operator]
                linestyle="none", marker="*", markersize=18, color="#E69F00",
                markeredgecolor="black", zorder=4)
    _log_if_wide(ax, "x")
    _log_if_wide(ax, "y")
    ax.margins(0.15)
    if best is not None:
        _iso_cost(ax, document, time_factor, factor)
    what = "per sample" if per_sample else "to the target"
    ax.set_xlabel(f"time {what} ({time_unit})")
    ax.set_ylabel(f"energy {what} ({unit})")
    ax.set_title(f"Time against energy: sweep {sweep.label}")
    _legend(figure, _handles(best is not None, document.settings.eta))
    _place_labels(ax)
    return _Drawn(figure, _caption(document, drawn, best) + _log_note([ax]))


def _iso_cost(ax: Axes, document: SweepDocument, time_factor: float, factor: float) -> None:
    """The line of equal cost through the optimum, eta·E + (1 − eta)·P·T = cost, across the
    axes as the points set them."""
    optimum = document.frontier.optimum  # type: ignore[union-attr]
    eta, power, cost = optimum.eta, optimum.max_power_w, optimum.cost
    if power is None or cost is None or eta <= 0.0:
        return  # eta 0: a vertical line of equal time; nothing worth drawing
    limits = ax.get_xlim(), ax.get_ylim()
    lo, hi = (v / time_factor for v in limits[0])
    if ax.get_xscale() == "log":  # evenly spaced as drawn, so the curve stays smooth
        xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    else:
        xs = [lo + (hi - lo) * i / 200 for i in range(201)]
    ys = [(cost - (1.0 - eta) * power * t) / eta for t in xs]
    kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0]
    if len(kept) < 2:
        return
    ax.plot([x * time_factor for x, _ in kept], [y * factor for _, y in kept],
            linestyle=(0, (4, 3)), color="#E69F00", linewidth=1.0, zorder=1)
    ax.set_xlim(*limits[0])  # the line must not stretch the axes past the points
    ax.set_ylim(*limits[1])


def _handles(optimum: bool, eta: float) -> list[Any]:
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=4, color=style.GREY,
                      markerfacecolor="white", label="one trial"),
               Line2D([], [], linestyle="none", marker="o", markersize=8, color=style.GREY,
                      label="combination (median over its repeats)"),
               Line2D([], [], linestyle="none", marker="o", markersize=8, color=style.GREY,
                      markeredgecolor="black", label="on the Pareto front"),
               Line2D([], [], color="black", linewidth=1.2, label="Pareto front")]
    if optimum:
        handles += [Line2D([], [], linestyle="none", marker="*", markersize=12,
                           color="#E69F00", markeredgecolor="black",
                           label=f"{OPTIMUM} (eta {eta:g})"),
                    Line2D([], [], linestyle=(0, (4, 3)), color="#E69F00",
                           label="equal cost as the optimum")]
    return handles


def _caption(document: SweepDocument, drawn: list[SweepResult], best: SweepResult | None
             ) -> str:
    frontier = document.frontier
    assert frontier is not None
    optimum = frontier.optimum
    basis = ("time per sample (1 / median throughput) against energy per sample"
             if frontier.basis == "per_sample" else
             "time to the quality target against energy to it")
    text = (f"{basis.capitalize()} of every combination (filled: the median over its "
            "completed repeats) and every completed trial (hollow); lower-left is better. "
            "The step line is the Pareto front: the combinations no other beats on both "
            "time and energy, outlined in black.")
    if best is not None:
        source = ("the GPU's maximum power limit" if optimum.max_power_source ==
                  "gpu_max_power_limit" else "the largest average power measured")
        power = (f" with max_power {optimum.max_power_w:.1f} W ({source})"
                 if optimum.max_power_w is not None else "")
        text += (f" The star is the optimum at eta {optimum.eta:g}, {best.id}: it minimises "
                 f"eta·energy + (1 − eta)·max_power·time{power}; the dashed line joins the "
                 "points of equal cost.")
    else:
        text += f" No optimum: {optimum.reason}."
    left_out = len(document.results) - len(drawn)
    if left_out:
        text += (f" {left_out} combination(s) without both figures are left out: "
                 + "; ".join(f"{k}: {v}" for k, v in list(frontier.excluded.items())[:3]))
    return text
