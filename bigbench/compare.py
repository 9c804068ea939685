"""Compare two benchmark results, point by point, with the noise of both sides in view.

A regression is a metric that got worse (lower throughput or MFU; higher J/sample, latency or
memory) by more than the threshold *and* beyond the noise of the two sides: their
``median ± IQR/2`` ranges do not overlap. Inputs are bench.json files or run directories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigbench.errors import BigbenchError, did_you_mean, one_of

#: metric → (where it lives in a bench point, True when higher is better)
METRICS: dict[str, tuple[tuple[str, ...], bool]] = {
    "samples_per_s": (("samples_per_s",), True),
    "j_per_sample": (("energy", "j_per_sample"), False),
    "latency_p50_s": (("latency_s", "p50"), False),
    "latency_p99_s": (("latency_s", "p99"), False),
    "device_peak_allocated_bytes": (("memory", "device_peak_allocated_bytes"), False),
    "mfu": (("flops", "mfu"), True),
}
_KEY_FIELDS = ("model", "mode", "precision", "batch_size", "compile", "channels_last")
_ENV_FIELDS = (("device", "name"), ("energy_meters", 0, "driver_version"), ("torch",),
               ("energy_meters", 0, "power_limit_w"), ("cuda",))


class CompareError(BigbenchError):
    """Unusable input to compare (missing file, wrong schema, nothing in common)."""


@dataclass
class Figure:
    """A metric of one point: its median and interquartile range (0 when measured once)."""

    median: float
    iqr: float


@dataclass
class Side:
    """One side of the comparison."""

    path: Path
    env: dict[str, Any]
    points: dict[tuple[Any, ...], dict[str, Any]]


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


def _key(settings: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(settings.get(k) for k in _KEY_FIELDS)


def _point_from_run(run: dict[str, Any]) -> dict[str, Any]:
    """A training run seen as one bench point (train mode, fp32, single measurement)."""
    config, tp, energy = run["config"], run["throughput"], run["energy"]
    settings = {"model": run["model"]["name"], "mode": "train", "precision": "fp32",
                "batch_size": config["train"]["batch_size"], "compile": False,
                "channels_last": False}
    rate = tp.get("samples_per_s")
    per_sample = energy.get("j_per_sample")
    return {"id": f"{settings['model']}/train/fp32/bs{settings['batch_size']} (run)",
            "settings": settings, "status": "ok" if rate else run["status"],
            "samples_per_s": {"median": rate, "iqr": 0.0},
            "energy": {"j_per_sample": {"median": per_sample, "iqr": 0.0}},
            "latency_s": tp.get("step_time_s") or {}, "memory": run.get("memory") or {},
            "flops": run.get("flops") or {}}


def load_side(path: Path) -> Side:
    """Read a bench.json, a folder holding one, or a run directory."""
    if path.is_dir():
        for name in ("bench.json", "run.json"):
            if (path / name).is_file():
                return load_side(path / name)
        raise CompareError(f"{path}: holds neither bench.json nor run.json")
    if not path.is_file():
        raise CompareError(f"{path}: no such file")
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: not a readable JSON result ({exc})") from None
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema == "bigbench.bench/1":
        points = [p for p in document.get("points", []) if isinstance(p, dict)]
    elif schema == "bigbench.run/1":
        points = [_point_from_run(document)]
    else:
        raise CompareError(f"{path}: schema {schema!r} is not bigbench.bench/1 or "
                           "bigbench.run/1")
    keyed = {}
    for index, point in enumerate(points):
        settings = point.get("settings")
        if not isinstance(settings, dict) or not all(k in settings for k in _KEY_FIELDS):
            raise CompareError(f"{path}: point {index} has no usable settings "
                               f"({', '.join(_KEY_FIELDS)}); the file is damaged")
        point.setdefault("id", "/".join(str(settings[k]) for k in _KEY_FIELDS[:4]))
        keyed[_key(settings)] = point
    env = document.get("env")
    return Side(path, env if isinstance(env, dict) else {}, keyed)


def _figure(point: dict[str, Any], metric: str) -> Figure | None:
    value: Any = point
    for part in METRICS[metric][0]:
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        median, iqr = value.get("median"), value.get("iqr") or 0.0
        if not isinstance(median, (int, float)) or not isinstance(iqr, (int, float)):
            return None
        return Figure(float(median), float(iqr))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return Figure(float(value), 0.0)


def _env_value(env: dict[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = env
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and len(value) > part:
            value = value[part]
        else:
            return None
    return value


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
    result.only_base = [base.points[k]["id"] for k in base.points if k not in new.points]
    result.only_new = [new.points[k]["id"] for k in new.points if k not in base.points]
    if not common:
        raise CompareError(f"{base.path} and {new.path} have no point in common "
                           "(points match by model, mode, precision, batch size, compile and "
                           "channels_last)")
    for path in _ENV_FIELDS:
        a, b = _env_value(base.env, path), _env_value(new.env, path)
        if a != b and (a is not None or b is not None):
            result.env_warnings.append(f"environments differ in {'.'.join(map(str, path))}: "
                                       f"{a!r} vs {b!r}")
    for key in common:
        b_point, n_point = base.points[key], new.points[key]
        for metric in metrics:
            result.rows.append(_row(b_point, n_point, metric, fail_above_pct))
    return result


def _row(base: dict[str, Any], new: dict[str, Any], metric: str, fail_above_pct: float) -> Row:
    higher_better = METRICS[metric][1]
    a, b = _figure(base, metric), _figure(new, metric)
    name = new.get("id") or base.get("id")
    if a is None or b is None or a.median == 0:
        return Row(name, metric, a.median if a else None, b.median if b else None, None, None,
                   None, False)
    ratio = b.median / a.median
    change = (ratio - 1) * 100
    worse_pct = -change if higher_better else change
    overlap = (a.median - a.iqr / 2 <= b.median + b.iqr / 2) and \
        (b.median - b.iqr / 2 <= a.median + a.iqr / 2)
    regression = worse_pct > fail_above_pct and not overlap
    return Row(name, metric, a.median, b.median, ratio, change, overlap, regression)
