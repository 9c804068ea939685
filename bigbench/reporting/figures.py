"""The report's figures, drawn from validated run and bench results as PNG and SVG.

Every figure the inputs call for is returned, drawn or not: one that cannot be drawn carries a
``missing`` sentence saying why (energy not measured, no bench given, every point n/a …)
instead of an empty axis.

Figures (``key``):

* ``power-<run>``: per run, power over time per device with the run's windows shaded and each
  measured device's measured-window average power.
* ``loss``: training loss and evaluation loss/accuracy against step and wall time, runs
  overlaid.
* ``throughput``: bench throughput against batch size, one line per configuration.
* ``latency``: bench step latency p50/p99 against batch size.
* ``energy``: energy per sample (per token for language models) of every configuration.
* ``tradeoff``: time per sample against energy per sample, with the Pareto front.
* ``frontier-<sweep>``: per sweep, time against energy of its trials and combinations, with the
  Pareto front and the eta-optimal combination (bigbench.reporting.frontier_figure). A report
  of sweeps alone draws only these.

Language-model results are compared per token and the rest per sample; where both appear a
figure gets one panel per unit rather than mixing units on one axis.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bigbench.records import BenchPoint, RunRecord, Spread
from bigbench.reporting import style
from bigbench.reporting.inputs import BenchInput, ReportInputs, RunInput

log = logging.getLogger(__name__)

Per = Literal["sample", "token"]

#: Points drawn per line at most; longer traces are thinned to per-bucket min and max, which
#: keeps spikes visible and SVGs small.
MAX_LINE_POINTS = 4000
#: An axis switches to a log scale when its values span more than this factor.
LOG_SPAN = 30.0
#: Batch-size axes switch to log scale beyond this span (the brief's 8×: doubling sweeps).
LOG_BATCH_SPAN = 8.0


@dataclass
class ReportFigure:
    """One figure of the report.

    Attributes:
        key: File stem, unique within a report, e.g. ``power-smoke`` or ``throughput``.
        title: Heading of the figure.
        caption: One or two sentences: what is drawn, in which units, what is marked.
        png: The PNG written (None when the figure is missing).
        svg: The SVG written (None when the figure is missing).
        missing: Why the figure could not be drawn (then png and svg are None).
    """

    key: str
    title: str
    caption: str
    png: Path | None
    svg: Path | None
    missing: str | None = None


class _Missing(Exception):  # noqa: N818 - a reason, not an error
    """Raised by a figure function whose figure cannot be drawn; the message says why."""


@dataclass
class _Drawn:
    figure: Figure
    caption: str


@dataclass
class _Plan:
    key: str
    title: str
    about: str  # the caption of the figure when it cannot be drawn: what it would show
    draw: Callable[[], _Drawn]


def draw_figures(inputs: ReportInputs, out_dir: Path) -> list[ReportFigure]:
    """Draw every figure the inputs call for into ``out_dir`` (``<key>.png``, ``<key>.svg``).

    Returns:
        Every figure in report order: per run its power figure, then loss, throughput,
        latency, energy and trade-off. One that cannot be drawn has ``missing`` set and no
        files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_render(plan, out_dir) for plan in _plans(inputs)]


def _plans(inputs: ReportInputs) -> list[_Plan]:
    plans = []
    keys: set[str] = set()
    if inputs.sweeps:
        # Imported here: the sweep figure module builds on this one's helpers.
        from bigbench.reporting.frontier_figure import sweep_plans

        if not inputs.runs and not inputs.benches:
            return sweep_plans(inputs.sweeps, keys)  # a sweep alone: no run or bench figures
    for run in inputs.runs:
        plans.append(_Plan(_unique_key(f"power-{_slug(run.label)}", keys),
                           f"Power over time: {run.label}",
                           f"Power of each measured device of run {run.label} over time (W "
                           "against s), its measurement windows shaded.",
                           lambda run=run: _power_figure(run)))
    if not inputs.runs:
        plans.append(_Plan(_unique_key("power", keys), "Power over time",
                           "Power of each measured device of a training run over time.",
                           _no_runs))
    plans += [
        _Plan("loss", "Loss and accuracy over training",
              "Training loss and evaluation loss and accuracy of each run, against step and "
              "against wall time.", lambda: _loss_figure(inputs.runs)),
        _Plan("throughput", "Throughput against batch size",
              "Benchmark throughput of each configuration against batch size.",
              lambda: _throughput_figure(inputs.benches)),
        _Plan("latency", "Step latency against batch size",
              "Median (p50) and 99th-percentile (p99) step time of each configuration against "
              "batch size.", lambda: _latency_figure(inputs.benches)),
        _Plan("energy", "Energy per sample",
              "Energy per sample (per token for language models) of every configuration.",
              lambda: _energy_figure(inputs)),
        _Plan("tradeoff", "Time against energy",
              "Time per sample against energy per sample of every configuration, with the "
              "Pareto front.", lambda: _tradeoff_figure(inputs)),
    ]
    if inputs.sweeps:
        plans += sweep_plans(inputs.sweeps, keys)
    return plans


def _render(plan: _Plan, out_dir: Path) -> ReportFigure:
    """Draw and save one figure; a figure that cannot be drawn becomes a missing one."""
    with style.context():
        try:
            drawn = plan.draw()
            # Text is laid out when saving: a failure there is this figure's, too.
            png, svg = style.save(drawn.figure, out_dir, plan.key)
        except _Missing as missing:
            return ReportFigure(plan.key, plan.title, plan.about, None, None, str(missing))
        except OSError:
            raise  # a full disk or an unwritable folder is the report's error, not a figure's
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the report
            first_line = (str(exc).strip().splitlines() or [""])[0]
            log.debug("figure %s could not be drawn", plan.key, exc_info=True)
            return ReportFigure(plan.key, plan.title, plan.about, None, None,
                                f"drawing failed: {type(exc).__name__}: {first_line}")
    return ReportFigure(plan.key, plan.title, drawn.caption, png, svg)


def _no_runs() -> _Drawn:
    raise _Missing("no training runs given (power over time comes from `bigbench train` "
                   "run directories)")


# --- 1. power over time ------------------------------------------------------------------


def _power_figure(run: RunInput) -> _Drawn:
    """Power (W) of each device over time (s since the command started), windows shaded."""
    if not any(trace.t_s for trace in run.power.values()):
        raise _Missing(_no_power_reason(run.record))
    figure = style.new_figure()
    ax = figure.add_subplot()
    devices = {d.key: d for d in (run.record.energy.devices if run.record.energy else [])
               if d.key}
    styles = style.series_styles(len(run.power))
    top = 0.0
    for (key, trace), line in zip(sorted(run.power.items()), styles, strict=True):
        device = devices.get(key)
        name = f"{device.name} ({device.kind})" if device else key
        t, w = _thin(trace.t_s, trace.power_w)
        ax.plot(t, w, color=line.color, linestyle=line.linestyle, marker=line.marker,
                markevery=max(1, len(t) // 12), linewidth=1.2, label=name)
        top = max(top, max(w))
    spans = _window_spans(run.record)
    averages = _measured_averages(ax, run.record, run.power, styles)
    top = max([top, *averages])
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)  # from 0: levels read honestly; room above
    times = [t for trace in run.power.values() for t in trace.t_s]
    times += [edge for _, start, end in spans for edge in (start, end)]
    start, end = min(times), max(times)
    ax.set_xlim(start, end if end > start else start + 1.0)  # one sample: a 1 s wide axis
    _shade_windows(ax, spans)
    # run.json without window spans was written by an older bigbench, whose power.csv
    # counted from its first sample: say what the axis is, and that nothing is shaded.
    origin = "the command started" if spans else "the first power sample"
    ax.set_xlabel(f"time since {origin} (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"Power over time: {run.label}")
    _figure_legend(figure, [ax])
    caption = (f"Power of each device of run {run.label} (W) against time since {origin} (s), "
               "from power.csv; " + ("shaded bands are the run's measurement windows." if spans
                                    else "no windows are shaded: this run.json records no "
                                    "window spans (an older bigbench)."))
    if run.record.segments:
        caption += (f" A resumed run: the trace and windows are its last process's (of "
                    f"{len(run.record.segments)}).")
    if averages:
        caption += (" Dashed horizontal lines: each measured device's average power over the "
                    "measured window (energy ÷ duration, labelled with the method).")
    return _Drawn(figure, caption)


def _no_power_reason(record: RunRecord) -> str:
    energy = record.energy
    if energy is None:
        return f"no power samples: the run has no energy section (status {record.status})"
    if energy.status == "unavailable":
        why = energy.reason or energy.reasons.get("total_j") or "no reason recorded"
        return f"no power samples: energy was not measured ({why})"
    return (f"no power samples: power.csv is missing or empty although energy was "
            f"{energy.status}")


def _window_spans(record: RunRecord) -> list[tuple[str, float, float]]:
    """Every (window name, start s, end s) of the run, in start order."""
    spans = [(name, float(a), float(b)) for name, window in (record.windows or {}).items()
             for a, b in (s[:2] for s in window.spans_s if len(s) >= 2) if b >= a]
    return sorted(spans, key=lambda span: span[1])


def _shade_windows(ax: Axes, spans: list[tuple[str, float, float]]) -> None:
    """Shade each window span and name it at the top of the axes (vertical when narrow), so
    windows can be told apart without their colours; with many spans the legend names them."""
    names = list(dict.fromkeys(name for name, _, _ in spans))
    extra = iter(style.COLORS[3:])
    colors = {n: style.WINDOW_COLORS.get(n) or next(extra, style.GREY) for n in names}
    x0, x1 = ax.get_xlim()
    width = max(x1 - x0, 1e-9)
    crowded = len(spans) > 12  # many segments (checkpoints, a resumed run)
    for name, start, end in spans:
        ax.axvspan(start, end, color=colors[name], alpha=style.WINDOW_ALPHA, linewidth=0,
                   label=f"window: {name}" if crowded else None)
        if crowded:
            continue  # names would pile up: the legend names the windows instead
        narrow = (end - start) / width < 0.012 * (len(name) + 2)
        ax.text((start + end) / 2, 0.98, name, transform=ax.get_xaxis_transform(),
                ha="center", va="top", rotation=90 if narrow else 0, fontsize=7,
                color="#333333", clip_on=True)


def _measured_averages(ax: Axes, record: RunRecord, power: dict, styles: list) -> list[float]:
    """Dashed line at each measured device's measured-window average power across the
    measured spans; returns the levels drawn (W)."""
    energy, windows = record.energy, record.windows or {}
    measured = windows.get("measured")
    if energy is None or measured is None or not measured.spans_s:
        return []
    colors = {key: s.color for key, s in zip(sorted(power), styles, strict=True)}
    levels = []
    for device in energy.devices:
        if not device.measured or device.avg_power_w is None:
            continue
        method = device.method or "unknown method"
        if "counter" in method or method == "rapl":
            method += ", energy counter"  # the average comes from the counter, not samples
        label = f"{device.name}: measured-window average ({method})"
        color = colors.get(device.key, "black")
        for i, (start, end) in enumerate(s[:2] for s in measured.spans_s):
            ax.hlines(device.avg_power_w, start, end, colors=color, linestyles=(0, (5, 2)),
                      linewidth=2.4, alpha=0.8, zorder=3, label=label if i == 0 else None)
        # The level written above the line's start, readable without matching colours.
        ax.annotate(f"{device.avg_power_w:.1f} W avg", (measured.spans_s[0][0],
                                                        device.avg_power_w),
                    xytext=(2, 4), textcoords="offset points", fontsize=7, color=color,
                    ha="left", va="bottom", fontweight="bold")
        levels.append(device.avg_power_w)
    return levels


def _thin(t: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """At most about MAX_LINE_POINTS points: each bucket keeps its lowest and highest value
    (in time order), so peaks survive thinning."""
    if len(t) <= MAX_LINE_POINTS:
        return list(t), list(y)
    size = math.ceil(len(t) / (MAX_LINE_POINTS // 2))
    out_t, out_y = [], []
    for i in range(0, len(t), size):
        ys = y[i:i + size]
        lo, hi = min(range(len(ys)), key=ys.__getitem__), max(range(len(ys)), key=ys.__getitem__)
        for j in sorted({lo, hi}):
            out_t.append(t[i + j])
            out_y.append(ys[j])
    return out_t, out_y


# --- 2. loss and accuracy -----------------------------------------------------------------


def _loss_figure(runs: list[RunInput]) -> _Drawn:
    """Training loss (nats) and eval loss/accuracy (%) against step and wall time (s)."""
    if not runs:
        raise _Missing("no training runs given (loss comes from a run's metrics.jsonl)")
    with_loss = [run for run in runs if _finite(run.train_events, "step", "loss")[0]]
    if not with_loss:
        raise _Missing("no run has training loss events in its metrics.jsonl (none logged, "
                       "or every logged loss was non-finite)")
    figure = style.new_figure()
    by_step, by_time = figure.subplots(1, 2)
    has_accuracy = any(_finite(run.eval_events, "step", "accuracy")[0] for run in with_loss)
    twins = (by_step.twinx(), by_time.twinx()) if has_accuracy else (None, None)
    floors = []
    for run, line in zip(with_loss, style.series_styles(len(with_loss)), strict=True):
        for ax, twin, x in ((by_step, twins[0], "step"), (by_time, twins[1], "time_s")):
            _loss_lines(ax, twin, run, line, x)
        floor = _entropy_floor(run.record)
        if floor is not None:
            floors.append(run.label)
            for ax in (by_step, by_time):
                ax.axhline(floor, color=line.color, linestyle=":", linewidth=1.2,
                           label=f"{run.label}: entropy floor {floor:.3g} nats/token")
    by_step.set_xlabel("step")
    by_time.set_xlabel("time since the command started (s)")
    if not any(_finite(run.train_events, "time_s", "loss")[0] for run in with_loss):
        # metrics.jsonl written before events carried their time: say so, no empty axis.
        by_time.text(0.5, 0.5, "n/a: no time_s in metrics.jsonl\n(written by an older bigbench)",
                     ha="center", va="center", transform=by_time.transAxes)
    for ax in (by_step, by_time):
        ax.set_ylabel("loss (nats; per token for LMs)")
    for twin in twins:
        if twin is not None:
            twin.set_ylabel("eval accuracy (%)")
            twin.set_ylim(0, 100)
            twin.grid(False)
            twin.spines["right"].set_visible(True)
    by_step.set_title("against step")
    by_time.set_title("against wall time")
    _figure_legend(figure, [by_step, *(t for t in twins[:1] if t is not None)])
    caption = ("Training loss (lines; nats, per token for language models) and evaluation "
               "loss (filled markers) of each run against step (left) and wall time since the "
               "command started (right, s; a resumed run's processes follow one another).")
    if has_accuracy:
        caption += " Hollow markers: evaluation accuracy (%, right axis)."
    if floors:
        caption += (" Dotted lines: the corpus's entropy floor, the lowest reachable loss "
                    f"(nats/token) of {', '.join(floors)}.")
    return _Drawn(figure, caption)


def _loss_lines(ax: Axes, twin: Axes | None, run: RunInput, line: style.SeriesStyle,
                x: str) -> None:
    """One run's training loss line, eval loss points and (on ``twin``) eval accuracy."""
    xs, ys = _thin(*_finite(run.train_events, x, "loss"))
    ax.plot(xs, ys, color=line.color, linestyle=line.linestyle, marker=line.marker,
            markevery=max(1, len(xs) // 10), label=f"{run.label}: train loss")
    ex, ey = _finite(run.eval_events, x, "loss")
    if ex:
        ax.plot(ex, ey, color=line.color, linestyle="none", marker=line.marker, markersize=9,
                markeredgecolor="black", label=f"{run.label}: eval loss")
    ax_, ay = _finite(run.eval_events, x, "accuracy")
    if twin is not None and ax_:
        twin.plot(ax_, [100 * a for a in ay], color=line.color, linestyle=":",
                  marker=line.marker, markersize=9, markerfacecolor="white",
                  markeredgewidth=1.5, label=f"{run.label}: eval accuracy")


def _finite(events: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    """The events' (x, y) pairs where both are finite numbers."""
    xs, ys = [], []
    for event in events:
        a, b = event.get(x), event.get(y)
        if _number(a) and _number(b):
            xs.append(float(a))
            ys.append(float(b))
    return xs, ys


def _number(value: object) -> bool:
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool) and math.isfinite(value))


def _entropy_floor(record: RunRecord) -> float | None:
    if record.eval is not None and record.eval.entropy_floor is not None:
        return record.eval.entropy_floor
    return record.data.entropy_floor


# --- bench series (figures 3 and 4) -------------------------------------------------------


@dataclass
class _Series:
    """The ok points of one configuration over batch size."""

    label: str
    per: Per
    points: list[BenchPoint] = field(default_factory=list)


def _series(benches: list[BenchInput]) -> list[_Series]:
    """Ok points grouped by everything but batch size, each group sorted by batch size."""
    groups: dict[str, _Series] = {}
    for bench in benches:
        for point in bench.document.points:
            if point.status != "ok":
                continue
            label = _config_label(point, bench.label if len(benches) > 1 else None)
            groups.setdefault(label, _Series(label, _point_per(point))).points.append(point)
    for series in groups.values():
        series.points.sort(key=lambda p: p.settings.batch_size)
    return list(groups.values())


def _config_label(point: BenchPoint, bench: str | None) -> str:
    """``[bench: ]model/mode/precision[/seqN][/genN][/compile][/channels_last]``."""
    s = point.settings
    parts = [s.model, s.mode, s.precision]
    # Older bench.json files lack seq_len: a language-model point's window is its length.
    seq = s.seq_len if s.seq_len is not None else \
        (s.sample_shape[0] if point.tokens_per_s is not None and s.sample_shape else None)
    parts += [f"seq{seq}"] if seq is not None else []
    parts += [f"gen{s.gen_tokens}"] if s.gen_tokens is not None else []
    parts += ["compile"] if s.compile else []
    parts += ["channels_last"] if s.channels_last else []
    return f"{bench}: {'/'.join(parts)}" if bench else "/".join(parts)


def _point_per(point: BenchPoint) -> Per:
    """Language-model points (they report tokens/s) are compared per token."""
    return "token" if point.tokens_per_s is not None else "sample"


def _no_points_reason(benches: list[BenchInput], figure: str) -> str:
    """Why no bench point can be drawn: no bench, or a count of every point's status."""
    if not benches:
        return f"no bench results given ({figure} comes from `bigbench bench`)"
    points = [p for b in benches for p in b.document.points]
    if not points:
        return "the bench results hold no points (the benchmark stopped before its first point)"
    statuses: dict[str, list[BenchPoint]] = {}
    for point in points:
        statuses.setdefault(point.status, []).append(point)
    parts = []
    for status, group in statuses.items():
        why = next((p.reason or p.error for p in group if p.reason or p.error), None)
        parts.append(f"{len(group)} {status}" + (f" ({_short(why)})" if why else ""))
    return "no bench point was measured: " + "; ".join(parts)


def _throughput_of(point: BenchPoint, per: Per) -> Spread | None:
    return point.tokens_per_s if per == "token" else point.samples_per_s


# --- 3. throughput ------------------------------------------------------------------------


def _throughput_figure(benches: list[BenchInput]) -> _Drawn:
    """Samples/s (tokens/s for language models) against batch size, IQR error bars."""
    series = [s for s in _series(benches)
              if any(_median(_throughput_of(p, s.per)) is not None for p in s.points)]
    if not series:
        if any(p.status == "ok" for b in benches for p in b.document.points):
            raise _Missing("every measured point's throughput is n/a")
        raise _Missing(_no_points_reason(benches, "throughput"))
    pers = [per for per in ("sample", "token") if any(s.per == per for s in series)]
    figure = style.new_figure()
    axes = figure.subplots(1, len(pers), squeeze=False)[0]
    styles = dict(zip((s.label for s in series), style.series_styles(len(series)),
                      strict=True))
    for ax, per in zip(axes, pers, strict=True):
        for s in (s for s in series if s.per == per):
            xs, ys, lo, hi = [], [], [], []
            for point in s.points:
                spread = _throughput_of(point, per)
                if _median(spread) is None:
                    continue
                q1, q3 = _quartiles(spread)
                xs.append(point.settings.batch_size)
                ys.append(spread.median)
                lo.append(spread.median - q1)
                hi.append(q3 - spread.median)
            ax.errorbar(xs, ys, yerr=[lo, hi], label=s.label, **styles[s.label].line())
        _batch_axis(ax)
        _log_if_wide(ax, "y")
        ax.set_ylabel(f"throughput ({per}s/s)")
        ax.set_title("language models: tokens/s" if per == "token" else "samples/s")
    _figure_legend(figure, list(axes))
    caption = ("Median throughput over the repeats against batch size, one line per "
               "configuration; error bars span the interquartile range of the repeats.")
    if len(pers) == 2:
        caption += (" Language-model points (right) are in tokens/s, the others (left) in "
                    "samples/s.")
    elif pers == ["token"]:
        caption += " Language-model points are in tokens/s (a decode sample is one token)."
    return _Drawn(figure, caption + _log_note(axes))


def _median(spread: Spread | None) -> float | None:
    return spread.median if spread is not None and _number(spread.median) else None


def _quartiles(spread: Spread) -> tuple[float, float]:
    """First and third quartile of the repeats; from the IQR centred on the median when the
    repeats' values are not recorded."""
    if len(spread.values) >= 2:
        q1, q3 = np.percentile(spread.values, [25, 75])
        return float(min(q1, spread.median)), float(max(q3, spread.median))
    half = (spread.iqr or 0.0) / 2
    return spread.median - half, spread.median + half


def _batch_axis(ax: Axes) -> None:
    """Batch size on x: log scale (base 2) when the sizes span more than 8×, ticks at the
    sizes measured."""
    sizes = sorted({int(x) for line in ax.get_lines() for x in line.get_xdata()})
    if sizes and sizes[-1] / sizes[0] > LOG_BATCH_SPAN:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _plain(v)))  # 64, not 2^6
    if sizes and len(sizes) <= 12:
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
    ax.set_xlabel("batch size (samples per step)")


def _log_if_wide(ax: Axes, axis: Literal["x", "y"]) -> None:
    """Log scale on ``axis`` when its positive data span more than LOG_SPAN."""
    values = [v for line in ax.get_lines()
              for v in (line.get_ydata() if axis == "y" else line.get_xdata())
              if _number(v) and v > 0]
    if values and max(values) / min(values) > LOG_SPAN:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        _plain_log(ax, axis)


def _log_note(axes: Sequence[Axes]) -> str:
    logs = [name for name, get in (("horizontal", "get_xscale"), ("vertical", "get_yscale"))
            if any(getattr(ax, get)() == "log" for ax in axes)]
    return f" Log scale on the {' and '.join(logs)} axis." if logs else ""


# --- 4. latency ---------------------------------------------------------------------------


def _latency_figure(benches: list[BenchInput]) -> _Drawn:
    """Step time p50 (solid) and p99 (dashed), ms, against batch size."""
    series = [s for s in _series(benches)
              if any(p.latency_s is not None and _number(p.latency_s.p50) for p in s.points)]
    if not series:
        if any(p.status == "ok" for b in benches for p in b.document.points):
            raise _Missing("every measured point's step latency is n/a")
        raise _Missing(_no_points_reason(benches, "step latency"))
    figure = style.new_figure()
    ax = figure.add_subplot()
    handles = []
    for s, line in zip(series, style.series_styles(len(series)), strict=True):
        timed = [p for p in s.points if p.latency_s is not None and _number(p.latency_s.p50)]
        xs = [p.settings.batch_size for p in timed]
        # Line style says p50 or p99 here, so series differ by colour and marker only.
        ax.plot(xs, [1e3 * p.latency_s.p50 for p in timed], color=line.color,
                marker=line.marker, linestyle="-")
        tail = [(p.settings.batch_size, 1e3 * p.latency_s.p99) for p in timed
                if _number(p.latency_s.p99)]
        if tail:
            ax.plot(*zip(*tail, strict=True), color=line.color, marker=line.marker,
                    linestyle="--", markerfacecolor="white")
        handles.append(Line2D([], [], color=line.color, marker=line.marker, label=s.label))
    handles += [Line2D([], [], color="black", marker="o", linestyle="-", label="p50 (median)"),
                Line2D([], [], color="black", marker="o", linestyle="--",
                       markerfacecolor="white", label="p99")]
    _batch_axis(ax)
    _log_if_wide(ax, "y")
    ax.set_ylabel("step time (ms)")
    ax.set_title("Step latency")
    _legend(figure, handles)
    caption = ("Step time of each configuration against batch size: median (p50, solid, "
               "filled markers) and 99th percentile (p99, dashed, hollow markers), ms. For "
               "language models a prefill step is the time to first token and a decode step "
               "the time per output token.")
    return _Drawn(figure, caption + _log_note([ax]))


# --- configurations with energy (figures 5 and 6) -----------------------------------------


@dataclass
class _Config:
    """One configuration's per-sample (per-token) figures: a bench point or a run."""

    label: str
    source: str  # the bench label, or "runs"
    per: Per
    energy_j: float | None  # J per sample (token)
    uncertainty_j: float | None
    quality: str | None
    quality_reasons: list[str]
    time_s: float | None  # s per sample (token): 1 / throughput
    accuracy: float | None = None
    why_no_energy: str | None = None
    training: bool = True  # a training step (else inference: infer, prefill, decode)


def _configs(inputs: ReportInputs) -> list[_Config]:
    """Every bench point and every finished run, in input order."""
    several = len(inputs.benches) > 1
    configs = [_point_config(point, bench.label, several)
               for bench in inputs.benches for point in bench.document.points]
    return configs + [c for c in (_run_config(run) for run in inputs.runs) if c is not None]


def _point_config(point: BenchPoint, bench: str, several: bool) -> _Config:
    per = _point_per(point)
    label = f"{bench}: {point.id}" if several else point.id
    energy = point.energy
    config = _Config(label, bench, per, None, None, None, [], None,
                     training=point.settings.mode == "train")
    if point.status != "ok" or energy is None:
        config.why_no_energy = (f"{point.status}: {_short(point.reason or point.error)}"
                                if point.reason or point.error else point.status)
        return config
    figure = energy.j_per_token if per == "token" else energy.j_per_sample
    if figure is not None and _number(figure.median):
        config.energy_j, config.uncertainty_j = figure.median, figure.uncertainty
    else:
        name = "j_per_token" if per == "token" else "j_per_sample"
        config.why_no_energy = (energy.reason or energy.reasons.get(name)
                                or f"energy {energy.status}")
    config.quality, config.quality_reasons = energy.quality, list(energy.quality_reasons)
    throughput = _median(_throughput_of(point, per))
    config.time_s = 1 / throughput if throughput else None
    return config


def _run_config(run: RunInput) -> _Config | None:
    record = run.record
    if record.energy is None or record.throughput is None:
        return None  # still running: nothing measured yet
    energy, throughput = record.energy, record.throughput
    per: Per = "token" if (record.task == "language_modeling"
                           or throughput.tokens_per_s is not None) else "sample"
    config = _Config(f"run {run.label}", "runs", per, None, None, energy.quality, [], None)
    config.quality_reasons = [r for d in energy.devices for r in d.quality_reasons]
    value = energy.j_per_token if per == "token" else energy.j_per_sample
    if _number(value):
        config.energy_j = value
        unc = energy.j_per_sample_uncertainty
        if unc is not None and energy.j_per_sample:
            # J/token is J/sample over tokens per sample: scale the bound by the same ratio.
            config.uncertainty_j = unc * value / energy.j_per_sample
    else:
        name = "j_per_token" if per == "token" else "j_per_sample"
        why = energy.reason or energy.reasons.get(name) or f"energy {energy.status}"
        config.why_no_energy = why  # the same reason as the bench points merges with theirs
    rate = throughput.tokens_per_s if per == "token" else throughput.samples_per_s
    config.time_s = 1 / rate if _number(rate) and rate > 0 else None
    if record.eval is not None and _number(record.eval.accuracy):
        config.accuracy = record.eval.accuracy
    return config


def _panel_labels(configs: list[_Config]) -> list[str]:
    """Labels without the ``<bench>: `` prefix when one bench fills the panel (the legend
    names it)."""
    sources = {c.source for c in configs}
    if len(sources) != 1 or "runs" in sources:
        return [c.label for c in configs]
    prefix = f"{next(iter(sources))}: "
    return [c.label.removeprefix(prefix) for c in configs]


def _no_energy_reason(configs: list[_Config], what: str) -> str:
    """Every distinct reason no configuration has the figure, most frequent first, counted."""
    if not configs:
        return ("no bench results or finished runs given (energy comes from `bigbench bench` "
                "and `bigbench train`)")
    counts: dict[str, int] = {}
    for c in configs:
        if c.why_no_energy:
            counts[c.why_no_energy] = counts.get(c.why_no_energy, 0) + 1
    ranked = sorted(counts, key=lambda r: -counts[r])  # stable: ties keep input order
    shown = "; ".join((f"{counts[r]} × " if counts[r] > 1 else "") + _short(r, 200)
                      for r in ranked[:3])
    more = f"; and {len(ranked) - 3} other reasons" if len(ranked) > 3 else ""
    return f"every configuration's {what} is n/a: {shown or 'not measured'}{more}"


def _scale(values: Sequence[float], unit: str) -> tuple[float, str]:
    """A factor and SI-prefixed unit that bring the values' median to a readable size."""
    positive = sorted(abs(v) for v in values if v)
    typical = positive[len(positive) // 2] if positive else 1.0
    for factor, prefix in ((1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n")):
        if typical * factor >= 1:
            return factor, prefix + unit
    return 1e9, "n" + unit


# --- 5. energy per sample -----------------------------------------------------------------


def _energy_figure(inputs: ReportInputs) -> _Drawn:
    """Horizontal bars of J/sample (J/token for LMs) with the median's error bound."""
    configs = _configs(inputs)
    drawn = [c for c in configs if c.energy_j is not None]
    if not drawn:
        raise _Missing(_no_energy_reason(configs, "energy per sample"))
    pers = [per for per in ("sample", "token") if any(c.per == per for c in drawn)]
    counts = [sum(c.per == per for c in drawn) for per in pers]
    figure = style.new_figure(style.bar_height_in(sum(counts) + 2 * len(pers)))
    axes = figure.subplots(len(pers), 1, squeeze=False, height_ratios=[n + 2 for n in counts])
    sources = list(dict.fromkeys(c.source for c in drawn))
    colors = dict(zip(sources, style.series_styles(len(sources)), strict=True))
    for ax, per in zip(axes[:, 0], pers, strict=True):
        _energy_bars(ax, [c for c in drawn if c.per == per], per, colors)
    handles = [Patch(facecolor=colors[s].color, label=s if s == "runs" else f"bench {s}")
               for s in sources]
    flagged = sorted({c.quality for c in drawn if c.quality in style.QUALITY_HATCH})
    handles += [Patch(facecolor="white", edgecolor="black", hatch=style.QUALITY_HATCH[q],
                      label=f"quality {q}") for q in flagged]
    _legend(figure, handles)
    caption = ("Energy per sample of every configuration (median over the repeats; a run's "
               "measured window), with the median's error bound as error bars where known.")
    if "token" in pers:
        caption += " Language-model configurations are per token."
    if flagged:
        reasons = list(dict.fromkeys(r for c in drawn if c.quality in style.QUALITY_HATCH
                                     for r in c.quality_reasons))
        why = f": {_short(reasons[0], 160)}" if reasons else ""
        caption += (f" Hatched bars marked ({' / '.join(flagged)}) have energy quality "
                    f"{' or '.join(flagged)}{why}; read them as rough.")
    skipped = len(configs) - len(drawn)
    if skipped:
        caption += f" {skipped} configuration(s) without an energy figure are left out."
    note = _log_note(list(axes[:, 0]))
    if note:
        note += (" On a log axis each configuration is a dot (hollow where the quality is not "
                 "ok), since a bar's length there would not be proportional to its value.")
    return _Drawn(figure, caption + note)


def _energy_bars(ax: Axes, configs: list[_Config], per: Per,
                 colors: dict[str, style.SeriesStyle]) -> None:
    """One bar per configuration, top to bottom in input order."""
    names = _panel_labels(configs)
    values = [c.energy_j for c in configs]
    factor, unit = _scale(values, f"J/{per}")
    scaled = [v * factor for v in values]
    errors = [(c.uncertainty_j or 0.0) * factor for c in configs]
    log = min(scaled) > 0 and max(scaled) / min(scaled) > LOG_SPAN
    base = 0.0
    if log:  # the axis starts below the smallest value
        base = min(v - e if v - e > 0 else v for v, e in zip(scaled, errors, strict=True)) / 3
    rows = list(range(len(configs)))[::-1]
    for row, c, v, e in zip(rows, configs, scaled, errors, strict=True):
        hatch = style.QUALITY_HATCH.get(c.quality or "")
        if log:
            # A bar's length on a log axis depends on where it starts, not on its value:
            # dots instead (hollow where the energy quality is not ok).
            ax.plot(v, row, linestyle="none", marker="o", markersize=6, markeredgecolor="black",
                    color=colors[c.source].color,
                    markerfacecolor="white" if hatch else colors[c.source].color)
        else:
            ax.barh(row, v, color=colors[c.source].color, alpha=0.45 if hatch else 0.9,
                    hatch=hatch, edgecolor="black", linewidth=0.6)
        if e:
            ax.errorbar(v, row, xerr=e, color="black", linewidth=1, capsize=2)
        ax.annotate(_fmt(v), (v + e, row), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    labels = [name + (f" ({c.quality})" if c.quality in style.QUALITY_HATCH else "")
              for name, c in zip(names, configs, strict=True)]
    ax.set_yticks(rows, labels, fontsize=7 if len(configs) > 12 else 8)
    ax.grid(axis="y", visible=False)
    if log:
        ax.set_xscale("log")
        _plain_log(ax, "x")
        ax.set_xlim(base, max(v + e for v, e in zip(scaled, errors, strict=True)) * 3)
    else:
        ax.set_xlim(0, max(v + e for v, e in zip(scaled, errors, strict=True)) * 1.15 or 1.0)
    ax.set_xlabel(f"energy per {per} ({unit})")
    ax.set_title("language models: per token" if per == "token" else "per sample")


# --- 6. time against energy ---------------------------------------------------------------


def _tradeoff_figure(inputs: ReportInputs) -> _Drawn:
    """Time per sample (ms) against J/sample; Pareto front as a step line."""
    configs = _configs(inputs)
    usable = [c for c in configs if c.energy_j is not None and c.time_s is not None]
    if not usable:
        raise _Missing(_no_energy_reason(configs, "time and energy per sample pair"))
    pers = [per for per in ("sample", "token") if any(c.per == per for c in usable)]
    figure = style.new_figure()
    axes = figure.subplots(1, len(pers), squeeze=False)[0]
    sources = list(dict.fromkeys(c.source for c in usable))
    colors = dict(zip(sources, style.series_styles(len(sources)), strict=True))
    for ax, per in zip(axes, pers, strict=True):
        _tradeoff_panel(ax, [c for c in usable if c.per == per], per, colors)
    handles = [Line2D([], [], linestyle="none", marker=colors[s].marker,
                      color=colors[s].color, label=s if s == "runs" else f"bench {s}")
               for s in sources]
    handles += [Line2D([], [], linestyle="none", marker="o", color=style.GREY,
                       markerfacecolor="white", label="dominated"),
                Line2D([], [], color="black", linewidth=1.2, label="Pareto front: training"),
                Line2D([], [], color="black", linewidth=1.2, linestyle="--",
                       label="Pareto front: inference")]
    _legend(figure, handles)
    for ax in axes:
        _place_labels(ax)
    caption = ("Time per sample (ms, 1 / median throughput) against energy per sample of every "
               "configuration; lower-left is better. The step lines are the Pareto fronts of "
               "training (solid) and inference (dashed) steps: the points no other point of "
               "the same kind beats on both time and energy. Front points are labelled (with "
               "'(low)' where their energy quality is low); dominated points are grey and "
               "hollow.")
    if "token" in pers:
        caption += " Language-model configurations are per token."
    if any(c.accuracy is not None for c in usable):
        caption += " Runs with an evaluation show their accuracy in the label."
    return _Drawn(figure, caption + _log_note(axes))


def _tradeoff_panel(ax: Axes, configs: list[_Config], per: Per,
                    colors: dict[str, style.SeriesStyle]) -> None:
    factor, unit = _scale([c.energy_j for c in configs], "J")
    # A training step and an inference step are different work: one front for each.
    fronts = [_pareto([c for c in configs if c.training is kind]) for kind in (True, False)]
    on = {id(c) for front in fronts for c in front}
    for c, name in zip(configs, _panel_labels(configs), strict=True):
        x, y = c.time_s * 1e3, c.energy_j * factor
        on_front = id(c) in on
        color = colors[c.source].color if on_front else style.GREY
        ax.plot(x, y, linestyle="none", marker=colors[c.source].marker, color=color,
                markersize=7, markerfacecolor=color if on_front else "white",
                zorder=3 if on_front else 2)
        if not on_front and c.accuracy is None:
            continue  # the front (and runs' accuracy) is labelled: dozens would hide points
        label = name + (f" · acc {100 * c.accuracy:.1f}%" if c.accuracy is not None else "")
        label += f" ({c.quality})" if c.quality in ("low", "invalid") else ""
        ax.annotate(label, (x, y), fontsize=6.5, color="black" if on_front else "#555555",
                    annotation_clip=False).set_in_layout(False)
    for front, dash in zip(fronts, ("-", "--"), strict=True):
        ax.step([c.time_s * 1e3 for c in front], [c.energy_j * factor for c in front],
                where="post", color="black", linewidth=1.2, linestyle=dash, zorder=1)
    _log_if_wide(ax, "x")
    _log_if_wide(ax, "y")
    ax.margins(0.12)
    ax.set_xlabel(f"time per {per} (ms)")
    ax.set_ylabel(f"energy per {per} ({unit})")
    ax.set_title("language models: per token" if per == "token" else "per sample")


def _pareto(configs: list[_Config]) -> list[_Config]:
    """The configurations no other beats on both time and energy, fastest first (a tie with a
    front point is on the front too)."""
    front: list[_Config] = []
    best = math.inf
    for c in sorted(configs, key=lambda c: (c.time_s, c.energy_j)):
        tie = bool(front) and (c.time_s, c.energy_j) == (front[-1].time_s, front[-1].energy_j)
        if c.energy_j < best or tie:
            front.append(c)
            best = min(best, c.energy_j)
    return front


def _place_labels(ax: Axes) -> None:
    """Move each point label to the free spot around its point that overlaps other labels,
    points and the axes' edge least (greedy, in the order the points were drawn)."""
    figure = ax.get_figure()
    figure.canvas.draw()  # settle the layout: pixel positions are final from here on
    figure.set_layout_engine("none")  # labels stay out of the layout: keep it as solved
    frame = ax.get_window_extent()
    points = [ax.transData.transform((t.xy[0], t.xy[1])) for t in ax.texts]
    taken = [(x - 4, y - 4, x + 4, y + 4) for x, y in points]
    scale = figure.dpi / 72
    for text, (x, y) in zip(ax.texts, points, strict=True):
        w = 0.55 * text.get_fontsize() * scale * len(text.get_text())
        h = 1.3 * text.get_fontsize() * scale
        best = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            x0 = x + dx * scale - (w if ha == "right" else w / 2 if ha == "center" else 0)
            y0 = y + dy * scale - (h if va == "top" else h / 2 if va == "center" else 0)
            box = (x0, y0, x0 + w, y0 + h)
            outside = w * h - _overlap(box, (frame.x0, frame.y0, frame.x1, frame.y1))
            cost = sum(_overlap(box, other) for other in taken) + 2 * outside
            if best is None or cost < best[0]:
                best = (cost, box, dx, dy, ha, va)
        _, box, dx, dy, ha, va = best
        text.set_position((dx, dy))
        text.set_anncoords("offset points")
        text.set_horizontalalignment(ha)
        text.set_verticalalignment(va)
        taken.append(box)


#: Candidate label offsets (points) and alignments, preferred first.
_LABEL_SPOTS = ((5, 3, "left", "bottom"), (5, -3, "left", "top"), (-5, 3, "right", "bottom"),
                (-5, -3, "right", "top"), (0, 7, "center", "bottom"),
                (0, -7, "center", "top"), (8, 0, "left", "center"), (-8, 0, "right", "center"))


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area shared by two (x0, y0, x1, y1) boxes, px²."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


# --- shared -------------------------------------------------------------------------------


def _figure_legend(figure: Figure, axes: list[Axes]) -> None:
    """One legend for the whole figure holding the entries of every axes, once each."""
    entries: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    _legend(figure, list(entries.values()))


#: Most legend entries a figure shows (two columns of 24 rows fit its height).
MAX_LEGEND = 48


def _legend(figure: Figure, handles: list[Artist]) -> None:
    """A figure legend below the axes when it fits in a few rows (the plot keeps its full
    width), else in a column on the right; past :data:`MAX_LEGEND` entries the last one says
    how many more there are (the report's tables list every configuration)."""
    if len(handles) > MAX_LEGEND:
        more = len(handles) - MAX_LEGEND + 1
        handles = [*handles[:MAX_LEGEND - 1],
                   Line2D([], [], linestyle="none", label=f"… and {more} more (see the tables)")]
    labels = [h.get_label() for h in handles]
    entry_px = 45 + 5.6 * max(len(label) for label in labels)  # handle + text at 8 pt
    cols = max(1, min(len(labels), int(0.95 * style.PIXELS[0] // entry_px)))
    if math.ceil(len(labels) / cols) <= 4:
        figure.legend(handles, labels, loc="outside lower center", ncols=cols)
    else:
        figure.legend(handles, labels, loc="outside right upper",
                      ncols=1 if len(labels) <= 24 else 2)  # about 24 rows fit 4.5 in


def _plain_log(ax: Axes, axis: Literal["x", "y"]) -> None:
    """Tick labels of a log axis as plain numbers at 1, 2 and 5 per decade (not 10^k)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: _plain(v)))
    target.set_minor_formatter(NullFormatter())


def _plain(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def _fmt(value: float) -> str:
    """Three significant digits, without exponents."""
    return f"{float(f'{value:.3g}'):,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _short(text: str | None, limit: int = 120) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "run"


def _unique_key(key: str, taken: set[str]) -> str:
    candidate, n = key, 2
    while candidate in taken:
        candidate, n = f"{key}-{n}", n + 1
    taken.add(candidate)
    return candidate
