"""Bench points at GPU power limits and locked SM clocks (``--power-limits``, ``--sm-clocks``).

Every change goes through :class:`~bigbench.measuring.energy.power_limits.PowerLimiter`, opened
before the first point (privilege proven, ``gpu_state.json`` written in the output directory)
and restored when the points end, however they end.

Order: points run base point by base point (model × batch × precision × mode), each at every
GPU setting (limit × clock) in turn, the settings' order rotated by one from one base point to
the next. With as many base points as settings (or a multiple), each setting takes each
position equally often and slow drift (the GPU warming up) spreads over all of them; with one
base point the settings run in the listed order, so list them as you want them to run (or use
``bigbench sweep``, whose repeats interleave). A changed setting takes effect within milliseconds;
the point's warm-up steps, outside its measured windows, already run at it.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bigbench.benchmark.matrix import Matrix, Point
from bigbench.errors import BigbenchError, ConfigError

if TYPE_CHECKING:
    import torch

    from bigbench.measuring.energy.power_limits import PowerLimiter


def wanted(matrix: Matrix) -> bool:
    """Whether the matrix asks for any GPU setting."""
    return bool(matrix.power_limits or matrix.sm_clocks)


def check_device(matrix: Matrix, device: torch.device, flag: str) -> None:
    """Refuse GPU settings off a CUDA GPU (before any folder or file is made).

    Raises:
        ConfigError: the device is not a CUDA GPU.
    """
    if wanted(matrix) and device.type != "cuda":
        raise ConfigError(f"{flag} sets the GPU's power limit or clocks, so it needs a CUDA "
                          f"GPU (the device here is {device.type}); use --device cuda, or "
                          "drop the power limits and clocks")


def open_control(matrix: Matrix, device_record: dict[str, Any], out_dir: Path,
                 backend: ModuleType | None = None
                 ) -> tuple[PowerLimiter, list[float] | None, list[int] | None]:
    """Open the GPU in use, prove the privilege and write ``gpu_state.json`` into ``out_dir``;
    the matrix's limits in watts and its clocks, checked against the GPU's ranges.

    Args:
        matrix: Its ``power_limits`` (as given) and ``sm_clocks``.
        device_record: The bench environment's ``device`` (its CUDA index and NVML UUID).
        out_dir: The bench's output directory.
        backend: The pynvml module (or a fake); None imports it.

    Raises:
        PowerControlError: no privilege, no such GPU, or a limit or clock out of range. The
            GPU is unchanged then and no state file is left behind.
    """
    from bigbench.measuring.energy.power_limits import STATE_FILE, PowerLimiter

    limiter = PowerLimiter.open(int(device_record.get("index") or 0), out_dir / STATE_FILE,
                                backend, uuid=device_record.get("uuid"))
    try:
        limits = (list(dict.fromkeys(limiter.resolve(s) for s in matrix.power_limits))
                  if matrix.power_limits else None)  # "max" and "default" may be one limit
        clocks = ([limiter.check_sm_clock(c) for c in matrix.sm_clocks]
                  if matrix.sm_clocks else None)
    except BigbenchError:
        # Nothing changed yet (open only proved the privilege): no state to keep.
        (out_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return limiter, limits, clocks


def interleave(points: list[Point], limits_w: list[float] | None,
               clocks_mhz: list[int] | None) -> list[Point]:
    """Each point at every setting (limit × clock), the settings' order rotated by one from
    one point to the next (see the module docstring)."""
    settings = list(itertools.product(limits_w or [None], clocks_mhz or [None]))
    out = []
    for i, point in enumerate(points):
        turn = i % len(settings)
        for watts, mhz in settings[turn:] + settings[:turn]:
            out.append(replace(point, power_limit_w=watts, sm_clock_mhz=mhz))
    return out


def apply(limiter: PowerLimiter, point: Point) -> dict[str, Any]:
    """Put the GPU at ``point``'s settings (where it is not there already) and return a
    snapshot read right after.

    Clocks are locked before the limit is set: when locking is refused at the first point,
    nothing has changed yet.
    """
    if point.sm_clock_mhz is not None and point.sm_clock_mhz != limiter.locked_mhz:
        limiter.lock_sm_clocks(point.sm_clock_mhz)
    if point.power_limit_w is not None and point.power_limit_w != limiter.applied_w:
        limiter.apply(point.power_limit_w)
    return limiter.snapshot()


def record(point: Point, applied: dict[str, Any], window: dict[str, Any] | None,
           after: dict[str, Any] | None) -> dict[str, Any]:
    """The point's ``gpu_settings``: requested and in-effect limit, the locked clock, and
    snapshots at the measured window's edges (``window``, from the point's measurement), else
    at the point's edges (``applied`` and ``after``, read around it)."""
    at_window = bool(window) and "start" in window and "end" in window
    reasons = {}
    if applied.get("power_limit_w") is None:
        reasons["in_effect_w"] = applied["reasons"].get("power_limit_w", "not read")
    return {
        "requested_w": point.power_limit_w,
        "in_effect_w": applied.get("power_limit_w"),
        "sm_clock_mhz": point.sm_clock_mhz,
        "edges": "measured_window" if at_window else "point",
        "start": window["start"] if at_window else applied,  # type: ignore[index]
        "end": window["end"] if at_window else after,  # type: ignore[index]
        "reasons": reasons,
    }


def control_record(limiter: PowerLimiter) -> dict[str, Any]:
    """bench.json's ``gpu_control``: the GPU, its original settings and whether they are back."""
    return {"state_file": limiter.state_file.name, "uuid": limiter.uuid, "name": limiter.name,
            "original_power_limit_w": limiter.original_w,
            "default_power_limit_w": limiter.default_w,
            "allowed_range_w": list(limiter.allowed_range_w()), "restored": False}
