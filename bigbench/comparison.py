"""Compare two benchmark results, point by point, with the noise of both sides in view.

A regression is a metric that got worse (lower throughput or MFU; higher J/sample, latency or
memory) by more than the threshold *and* beyond the noise of the two sides: their
``median ± IQR/2`` ranges do not overlap. Inputs are bench.json files or run directories, read
through the typed models of :mod:`bigbench.records` (a damaged file is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigbench.errors import BigbenchError, did_you_mean, one_of
from bigbench.records import (
    BenchDocument,
    BenchPoint,
    EnergyMeterInfo,
    Environment,
    JPerSample,
    PointEnergy,
    PointFlops,
    PointMemory,
    PointSettings,
    RecordError,
    RunRecord,
    Spread,
    load_result,
)

_KEY_FIELDS = ("model", "mode", "precision", "batch_size", "compile", "channels_last",
               "sample_shape", "gen_tokens")


class CompareError(BigbenchError):
    """Unusable input to compare (missing file, wrong schema, nothing in common)."""


@dataclass
class Figure:
    """A metric of one point: its median and interquartile range (0 when measured once)."""

    median: float
    iqr: float


@dataclass(frozen=True)
class Metric:
    """A comparable figure of a point and which direction is better."""

    higher_is_better: bool
    read: Callable[[BenchPoint], Figure | None]


def _spread(spread: Spread | None) -> Figure | None:
    if spread is None or spread.median is None:
        return None
    return Figure(spread.median, spread.iqr or 0.0)


def _single(value: float | None) -> Figure | None:
    return None if value is None else Figure(float(value), 0.0)


#: metric → how to read it from a point, and whether higher is better.
METRICS: dict[str, Metric] = {
    "samples_per_s": Metric(True, lambda p: _spread(p.samples_per_s)),
    "j_per_sample": Metric(False, lambda p: _spread(p.energy.j_per_sample) if p.energy
                           else None),
    "latency_p50_s": Metric(False, lambda p: _single(p.latency_s.p50) if p.latency_s
                            else None),
    "latency_p99_s": Metric(False, lambda p: _single(p.latency_s.p99) if p.latency_s
                            else None),
    "device_peak_allocated_bytes": Metric(False, lambda p: _single(
        p.memory.device_peak_allocated_bytes) if p.memory else None),
    "mfu": Metric(True, lambda p: _single(p.flops.mfu) if p.flops else None),
    "tokens_per_s": Metric(True, lambda p: _spread(p.tokens_per_s)),
    "j_per_token": Metric(False, lambda p: _spread(p.energy.j_per_token) if p.energy
                          else None),
}


@dataclass
class Side:
    """One side of the comparison (``path``: its file, or what it is when it was given as a
    loaded document)."""

    path: Path | str
    env: Environment
    points: dict[tuple[Any, ...], BenchPoint]
    run: RunRecord | None = None


@dataclass
class Row:
    """One metric of one matched point."""

    point: str
    metric: str
    base: float | None
    new: float | None
    ratio: float | None
    change_pct: float | None
    within_noise: bool | None
    regression: bool


@dataclass
class Comparison:
    """Everything ``bigbench compare`` reports."""

    rows: list[Row] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    env_warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        """Rows that regressed beyond the threshold and the noise."""
        return [r for r in self.rows if r.regression]


def _key(point: BenchPoint) -> tuple[Any, ...]:
    values = (getattr(point.settings, k) for k in _KEY_FIELDS)
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def load_side(path: Path) -> Side:
    """Read a bench.json, a folder holding one, or a run directory.

    Raises:
        CompareError: missing, unreadable, of another schema, or damaged.
    """
    try:
        found, document = load_result(path)
    except RecordError as exc:
        raise CompareError(*exc.problems) from None
    return side_of(document, found)


def side_of(document: BenchDocument | RunRecord, where: Path | str) -> Side:
    """One side made of a loaded bench.json or run.json (``where`` names it in messages);
    a run counts as one train-mode point."""
    if isinstance(document, BenchDocument):
        points, run = document.points, None
    else:
        points, run = [point_from_run(document)], document
    keyed: dict[tuple[Any, ...], BenchPoint] = {}
    for point in points:
        keyed[_key(point)] = point
    return Side(where, document.env, keyed, run)


def parse_metrics(text: str) -> list[str]:
    """``samples_per_s,j_per_sample`` → the list, each a known metric."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        if name not in METRICS:
            raise CompareError(f"--metric: unknown metric '{name}'{did_you_mean(name, METRICS)}"
                               f"; choose from {one_of(list(METRICS))}")
    if not names:
        raise CompareError("--metric: give at least one metric")
    return names


def compare(base: Side, new: Side, metrics: list[str], fail_above_pct: float) -> Comparison:
    """Match points by settings and compare each metric."""
    result = Comparison()
    common = [k for k in base.points if k in new.points]
    result.only_base = [base.points[k].id for k in base.points if k not in new.points]
    result.only_new = [new.points[k].id for k in new.points if k not in base.points]
    if not common:
        raise CompareError(f"{base.path} and {new.path} have no point in common "
                           "(points match by model, mode, precision, batch size, compile and "
                           "channels_last)")
    result.env_warnings = [
        f"environments differ in {name}: {a!r} vs {b!r}"
        for name, a, b in environment_differences(base.env, new.env, base.run, new.run)]
    for key in common:
        b_point, n_point = base.points[key], new.points[key]
        for metric in metrics:
            result.rows.append(_row(b_point, n_point, metric, fail_above_pct))
    return result


def _row(base: BenchPoint, new: BenchPoint, metric: str, fail_above_pct: float) -> Row:
    spec = METRICS[metric]
    a, b = spec.read(base), spec.read(new)
    name = new.id or base.id
    if a is None or b is None or a.median == 0:
        return Row(name, metric, a.median if a else None, b.median if b else None, None, None,
                   None, False)
    ratio = b.median / a.median
    change = (ratio - 1) * 100
    worse_pct = -change if spec.higher_is_better else change
    overlap = (a.median - a.iqr / 2 <= b.median + b.iqr / 2) and \
        (b.median - b.iqr / 2 <= a.median + a.iqr / 2)
    regression = worse_pct > fail_above_pct and not overlap
    return Row(name, metric, a.median, b.median, ratio, change, overlap, regression)


def point_from_run(run: RunRecord) -> BenchPoint:
    """A training run seen as one bench point: train mode, with the settings it really used.

    Precision and compile come from the run's config, channels_last from ``performance`` (the
    value used: ``auto`` resolves per model); the figures are single measurements (IQR 0).
    """
    train = run.config.train
    settings = PointSettings(
        model=run.model.name, mode="train", precision=train.precision,
        batch_size=train.batch_size, compile=train.compile,
        channels_last=run.performance.channels_last, model_args=run.model.args,
        sample_shape=run.data.sample_shape)
    parts = [settings.model, "train", settings.precision, f"bs{settings.batch_size}"]
    parts += [name for name in ("compile", "channels_last") if getattr(settings, name)]
    rate = run.throughput.samples_per_s if run.throughput else None
    point: dict[str, Any] = {"id": "/".join(parts) + " (run)", "settings": settings,
                             "status": "ok" if rate else "failed"}
    if not rate:
        point["reason"] = f"the run is {run.status} and measured no throughput"
    if run.throughput is not None:
        point.update(samples_per_s=_once(rate, Spread), latency_s=run.throughput.step_time_s)
        if run.throughput.tokens_per_s is not None:
            point["tokens_per_s"] = _once(run.throughput.tokens_per_s, Spread)
    if run.energy is not None:
        j = _once(run.energy.j_per_sample, JPerSample)
        j.uncertainty = run.energy.j_per_sample_uncertainty
        point["energy"] = PointEnergy(status=run.energy.status, reason=run.energy.reason,
                                      quality=run.energy.quality, j_per_sample=j,
                                      devices=run.energy.devices)
        if run.energy.j_per_token is not None:
            point["energy"].j_per_token = _once(run.energy.j_per_token, JPerSample)
    if run.memory is not None:
        point["memory"] = PointMemory(**run.memory.model_dump(exclude_none=True))
    if run.flops is not None:
        f = run.flops
        point["flops"] = PointFlops(
            per_sample=f.train_step_per_sample, method=f.method,
            achieved_flops_per_s=f.achieved_flops_per_s, mfu=f.mfu,
            peak_flops_per_s=f.peak_flops_per_s, peak_dtype=f.peak_dtype,
            peak_source=f.peak_source, reasons=f.reasons)
    return BenchPoint(**point)


def _once(value: float | None, kind: type[Spread]) -> Any:
    """A figure measured once, as a spread: its value, IQR 0."""
    if value is None:
        return kind(median=None, iqr=None, values=[])
    return kind(median=value, iqr=0.0, values=[value])


#: Relative SM clock difference below which two clocks count as the same (boost jitter).
CLOCK_TOLERANCE = 0.05


def environment_differences(base: Environment, new: Environment,
                            base_run: RunRecord | None = None, new_run: RunRecord | None = None
                            ) -> list[tuple[str, Any, Any]]:
    """``(what, base value, new value)`` for every environment fact that differs.

    Device name, torch and CUDA versions, and per GPU energy meter (matched by UUID, never by
    list position: a list may start with a RAPL zone) the driver version, the power limit and,
    where recorded, the SM clock.
    """
    out: list[tuple[str, Any, Any]] = []
    for name, a, b in (("device.name", base.device.name, new.device.name),
                       ("torch", base.torch, new.torch), ("cuda", base.cuda, new.cuda)):
        if a != b:
            out.append((name, a, b))
    pairs = _paired_gpus(base, new)
    for a_gpu, b_gpu in pairs:
        label = "gpu" if len(pairs) == 1 else f"gpu {_gpu_name(a_gpu or b_gpu)}"
        for key in ("driver_version", "power_limit_w"):
            a, b = getattr(a_gpu, key, None), getattr(b_gpu, key, None)
            if a != b:
                out.append((f"{label}.{key}", a, b))
        a_clock, b_clock = _sm_clock(a_gpu, base_run), _sm_clock(b_gpu, new_run)
        if a_clock is not None and b_clock is not None and \
                abs(a_clock - b_clock) > CLOCK_TOLERANCE * max(a_clock, b_clock):
            out.append((f"{label}.sm_clock_mhz", a_clock, b_clock))
    return out


def _gpu_name(meter: EnergyMeterInfo | None) -> str:
    return (meter.uuid or meter.key) if meter is not None else "?"


def _paired_gpus(base: Environment, new: Environment
                 ) -> list[tuple[EnergyMeterInfo | None, EnergyMeterInfo | None]]:
    """GPU meters of both sides, paired by UUID; the rest paired in order (one GPU each)."""
    a_gpus = [m for m in base.energy_meters if m.kind == "gpu"]
    b_gpus = [m for m in new.energy_meters if m.kind == "gpu"]
    pairs: list[tuple[EnergyMeterInfo | None, EnergyMeterInfo | None]] = []
    for a in list(a_gpus):
        match = next((b for b in b_gpus if (b.uuid or b.key) == (a.uuid or a.key)), None)
        if match is not None:
            pairs.append((a, match))
            a_gpus.remove(a)
            b_gpus.remove(match)
    for index in range(max(len(a_gpus), len(b_gpus))):
        pairs.append((a_gpus[index] if index < len(a_gpus) else None,
                      b_gpus[index] if index < len(b_gpus) else None))
    return pairs


def _sm_clock(meter: EnergyMeterInfo | None, run: RunRecord | None) -> float | None:
    """The GPU's SM clock (MHz) where recorded: in its meter facts, else (a training run) at
    the start of the measured window."""
    if meter is None:
        return None
    if meter.application_sm_clock_mhz is not None:  # the setting, recorded by both commands
        return meter.application_sm_clock_mhz
    extra = meter.model_extra or {}
    telemetry = extra.get("telemetry") if isinstance(extra.get("telemetry"), dict) else {}
    for value in (extra.get("sm_clock_mhz"), telemetry.get("sm_clock_mhz")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    if run is not None and run.energy is not None:
        for device in run.energy.devices:
            if device.kind == "gpu" and device.uuid == meter.uuid and device.telemetry_start:
                return device.telemetry_start.sm_clock_mhz
    return None
