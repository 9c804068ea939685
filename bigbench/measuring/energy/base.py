"""What every energy source provides, and the records they produce.

A *device meter* is one physical thing whose energy is read: a GPU through NVML, or a RAPL zone
(a CPU package or its DRAM). The :class:`~bigbench.measuring.energy.monitor.EnergyMonitor` reads
their counters at window edges and polls them from a sampler thread; it never touches NVML or
sysfs itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class DeviceMeter(Protocol):
    """One device whose energy bigbench reads.

    Attributes:
        key: Unique and stable across ranks and hosts, e.g. ``gpu:GPU-8f3…`` or
            ``rapl:host:package-0``; energy is summed by key, so nothing is counted twice.
        kind: ``"gpu"``, ``"cpu"`` or ``"dram"``.
        name: Human-readable name.
        counter_method: Method label of :meth:`counter_j` (e.g. ``"nvml_energy_counter"``), or
            None when the device has no energy counter.
        power_method: Method label of the power samples :meth:`poll` returns.
        uuid: The GPU's UUID (None for other devices).
        sample_counter: The sampler also reads the counter every tick, to observe how often it
            updates (for the counter's error bound).
        counter_update_s: Assumed seconds between counter updates until observed (None: no
            counter).
        counter_resolution_j: Smallest counter step in joules.
        power_resolution_w: Smallest power step in watts.
        power_smear_s: Seconds over which a power reading is averaged (0: instantaneous; None:
            the time since the previous poll).
    """

    key: str
    kind: str
    name: str
    counter_method: str | None
    power_method: str
    uuid: str | None
    sample_counter: bool
    counter_update_s: float | None
    counter_resolution_j: float
    power_resolution_w: float
    power_smear_s: float | None

    def counter_j(self) -> float | None:
        """Cumulative energy in joules now, or None without a counter."""

    def poll(self, t_s: float) -> float | None:
        """Called by the sampler every interval: the power in watts at ``t_s``, or None."""

    def telemetry(self) -> dict[str, Any]:
        """Device state worth recording at window edges (temperature, clocks …); may be empty."""

    def info(self) -> dict[str, Any]:
        """Static facts for ``env`` (UUID, driver, power limit …)."""


class EnergyMeter(Protocol):
    """What a measurement window needs: a reading at each edge."""

    def begin(self) -> Any:
        """Read at a window's start (right after the device sync); returns a token."""

    def end(self, token: Any) -> dict[str, dict[str, Any]]:
        """Read at the window's end; returns one segment record per device key."""


@dataclass
class Unavailable:
    """A meter that could not be used, and why (with the fix where there is one)."""

    kind: str
    name: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, in the shape of a device entry with no figure."""
        return {"kind": self.kind, "name": self.name, "energy_j": None, "measured": False,
                "method": None, "quality": None, "reason": self.reason}


@dataclass
class MeterSet:
    """The device meters that work here, and those that don't."""

    devices: list[DeviceMeter] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)

    def extend(self, other: MeterSet) -> None:
        """Add another set's meters."""
        self.devices += other.devices
        self.unavailable += other.unavailable
