"""``with bigbench.measure(...) as m:`` — the in-process twin of ``bigbench energy measure`` —
and :func:`probe_energy`, the twin of ``bigbench energy probe``.

Builds the energy monitor exactly as a run does (:func:`bigbench.measurement.energy_monitor`)
and measures the block as one :class:`~bigbench.measuring.meter.Meter` window, so the device is
synchronised at both edges and the figures carry the same method, quality and error bound as
run.json's. Nothing here measures by itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

from bigbench.api.checks import Arguments
from bigbench.errors import BigbenchError


@dataclass
class MeasureResult:
    """What a measured block cost.

    Attributes:
        time_s: Wall time of the block in seconds, device work included.
        energy_j: Energy of every measured device summed (float64), in joules; None when no
            meter works, with ``energy_reason`` saying why.
        energy_uncertainty_j: The summed error bounds (None when a bound is unknown).
        energy_reason: Why ``energy_j`` is None (None when measured).
        devices: One entry per device: ``kind`` (gpu, cpu, dram), ``name``, ``energy_j``,
            ``avg_power_w``, ``method`` (``rapl``, ``nvml_energy_counter``...), ``measured``,
            ``quality`` (``ok``, ``low``, ``invalid``) with ``quality_reasons``, and for a
            meter that does not work here ``energy_j: None`` with its ``reason``.
        host_peak_rss_bytes: This process's peak resident memory since it started, in bytes.
        device_peak_allocated_bytes: CUDA allocator peak inside the block (None off CUDA).
        device_peak_reserved_bytes: CUDA reserved peak inside the block (None off CUDA).
        min_window_s: Blocks shorter than this get energy quality "low".
        warnings: Low-quality energy and counters that disagree with their power integral.
    """

    time_s: float
    energy_j: float | None
    energy_uncertainty_j: float | None
    energy_reason: str | None
    devices: list[dict[str, Any]]
    host_peak_rss_bytes: int | None
    device_peak_allocated_bytes: int | None
    device_peak_reserved_bytes: int | None
    min_window_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """True when at least one device's energy was measured."""
        return self.energy_j is not None

    @property
    def avg_power_w(self) -> float | None:
        """Mean power over the block in watts (None when energy was not measured)."""
        if self.energy_j is None or self.time_s <= 0:
            return None
        return self.energy_j / self.time_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


class Measurement:
    """A block being measured; use through :func:`measure`.

    After the block, :attr:`result` holds the :class:`MeasureResult`; its fields can also be
    read on the measurement itself (``m.energy_j`` is ``m.result.energy_j``).
    """

    def __init__(self, device: str, interval_ms: int, powercap_root: str | None,
                 min_window_s: float | None) -> None:
        self.device = device
        self.interval_ms = interval_ms
        self.powercap_root = powercap_root
        self.min_window_s = min_window_s
        self._result: MeasureResult | None = None
        self._monitor: Any = None
        self._meter: Any = None
        self._window: Any = None

    @property
    def result(self) -> MeasureResult:
        """The figures of the block.

        Raises:
            BigbenchError: the block has not finished yet.
        """
        if self._result is None:
            raise BigbenchError("measure(): the result is ready when the with block ends")
        return self._result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.result, name)

    def __enter__(self) -> Measurement:
        from bigbench import devices
        from bigbench.config.schema import MeasureConfig
        from bigbench.measurement import energy_monitor
        from bigbench.measuring.meter import Meter

        torch_device = devices.resolve(self.device)
        settings = MeasureConfig(power_interval_ms=self.interval_ms,
                                 powercap_root=self.powercap_root,
                                 min_energy_window_s=self.min_window_s)
        self._monitor = energy_monitor(settings, torch_device)
        self._meter = Meter(torch_device, self._monitor)
        self._monitor.start()
        try:
            self._window = self._meter.window("measured")
            self._window.__enter__()
        except BaseException:
            self._monitor.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._window.__exit__(kind, exc, tb)
        finally:
            self._monitor.stop()
        self._result = _result(self._monitor, self._meter.totals("measured"))


def _result(monitor: Any, totals: Any) -> MeasureResult:
    from bigbench.measuring.energy.report import (
        DEVICE_SUMMARY_KEYS,
        energy_warnings,
        measured_total,
    )
    from bigbench.measuring.memory import host_peak_rss_bytes

    entries = monitor.aggregate(totals.energy)
    devices = [{k: e.get(k) for k in DEVICE_SUMMARY_KEYS} for e in entries]
    devices += [u.as_dict() for u in monitor.meters.unavailable]
    total_j, bound_j = measured_total(entries)
    reason = None
    if total_j is None:
        reason = monitor.unavailable_reason() or "; ".join(
            f"{e['kind']} {e['name']}: {e['reason']}" for e in entries if e.get("reason")) \
            or "no device was measured"
    return MeasureResult(
        time_s=totals.time_s, energy_j=total_j, energy_uncertainty_j=bound_j,
        energy_reason=reason, devices=devices, host_peak_rss_bytes=host_peak_rss_bytes(),
        device_peak_allocated_bytes=totals.device_peak_allocated_bytes,
        device_peak_reserved_bytes=totals.device_peak_reserved_bytes,
        min_window_s=monitor.min_window_s, warnings=energy_warnings(entries))


def measure(device: str = "cpu", interval_ms: int = 50, *,
            powercap_root: str | os.PathLike[str] | None = None,
            min_window_s: float | None = None) -> Measurement:
    """Measure the time, energy and peak memory of a block of your own code.

    ``with bigbench.measure("cuda:0") as m: ...`` then ``m.result`` (or ``m.energy_j``,
    ``m.time_s``...). The device is synchronised at both edges of the block, so queued GPU
    work is inside it. The GPU of ``device`` is measured with NVML and this host's CPU packages
    and DRAM with RAPL, whichever work here; when none does, energy is None with a reason.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        interval_ms: Milliseconds between power samples (5 to 1000).
        powercap_root: Where powercap sysfs is (default: ``$BIGBENCH_POWERCAP_ROOT``, else
            /sys/class/powercap).
        min_window_s: Blocks shorter than this get energy quality "low"; None: 5 s when a GPU
            is measured, else 1 s.

    Returns:
        The :class:`Measurement` context manager.

    Raises:
        ConfigError: a malformed or wrong-typed ``device``, ``interval_ms``,
            ``powercap_root`` or ``min_window_s`` (every problem in ``.problems``).
        DeviceError: on entering the block, when the device does not exist here.
    """
    args = Arguments()
    args.device("device", device)
    args.number("interval_ms", interval_ms, minimum=5, maximum=1000, whole=True)
    root = args.path("powercap_root", powercap_root)
    args.number("min_window_s", min_window_s, positive=True)
    args.check()
    return Measurement(device, interval_ms, None if root is None else str(root), min_window_s)


def probe_energy(powercap_root: str | os.PathLike[str] | None = None
                 ) -> dict[str, list[dict[str, Any]]]:
    """Which energy meters work on this machine, and why the others do not (``bigbench
    energy probe``; the same dict its ``--json`` prints).

    Args:
        powercap_root: Where powercap sysfs is (default: ``$BIGBENCH_POWERCAP_ROOT``, else
            /sys/class/powercap).

    Returns:
        ``{"working": [...], "unavailable": [...]}``: each working meter with its ``key``,
        ``kind`` (gpu, cpu, dram), ``name``, ``counter`` (the energy counter's method, or None)
        and ``power`` method plus its static facts; each unavailable one with its ``kind``,
        ``name`` and the ``reason`` (with the fix where there is one).

    Raises:
        ConfigError: ``powercap_root`` is not a path.
    """
    from bigbench.measuring.energy.discovery import probe_meters

    args = Arguments()
    root = args.path("powercap_root", powercap_root)
    args.check()
    return probe_meters(None if root is None else str(root))
