"""CPU package and DRAM energy from RAPL, through Linux powercap sysfs.

The only module that reads powercap. Layout (Intel, and AMD on recent kernels)::

    <root>/intel-rapl:0/name          "package-0"   ← summed
    <root>/intel-rapl:0/energy_uj     µJ counter, wraps at max_energy_range_uj
    <root>/intel-rapl:0:0/name        "core"        ← inside its package: never added
    <root>/intel-rapl:0:2/name        "dram"        ← summed (a separate RAPL domain)
    <root>/intel-rapl:1/name          "psys"        ← whole platform: never added to packages

``intel-rapl-mmio:*`` zones are a second interface to the same package counters and are ignored.
"""

from __future__ import annotations

import os
import platform
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigbench.measuring.energy.base import MeterSet, Unavailable

DEFAULT_ROOT = Path("/sys/class/powercap")
ROOT_ENV = "BIGBENCH_POWERCAP_ROOT"
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")


def powercap_root(configured: str | None) -> Path:
    """The config's root, else ``$BIGBENCH_POWERCAP_ROOT``, else /sys/class/powercap."""
    if configured:
        return Path(configured)
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


@dataclass
class RaplZone:
    """One powercap zone directory."""

    path: Path
    name: str
    socket: int
    sub: int | None

    @property
    def kind(self) -> str | None:
        """``cpu`` for a package, ``dram`` for DRAM; None for zones never summed."""
        if self.name.startswith("package"):
            return "cpu" if self.sub is None else None
        if self.name == "dram":
            return "dram"
        return None


class RaplCounter:
    """One summed zone: reads ``energy_uj`` and unwraps it.

    Each read that sees the raw value fall below the previous one counts one wrap of
    ``max_energy_range_uj``. A wrap takes minutes even at hundreds of watts, and the sampler
    reads every ``power_interval_ms`` (≤ 1 s), so two wraps between reads cannot happen.
    Thread-safe: the sampler thread and window edges both read.
    """

    counter_method = "rapl"
    power_method = "rapl_energy_delta"
    uuid = None
    #: The monitor's error bounds: Intel documents an update about every millisecond (AMD
    #: behaves alike); the sampler does not read this counter itself, so the figure is assumed.
    counter_update_s = 0.001
    counter_resolution_j = 1e-6
    sample_counter = False  # poll() already reads it; a second read per tick would add nothing
    #: Each power sample averages since the previous poll (None: "one sampling interval").
    power_smear_s = None
    power_resolution_w = 0.0

    def __init__(self, zone: RaplZone, max_range_uj: int, host: str) -> None:
        self.zone = zone
        self.kind: str = zone.kind or "cpu"
        self.name = zone.name if zone.sub is None else f"{zone.name}-{zone.socket}"
        self.key = f"rapl:{host}:{self.name}"
        self._file = zone.path / "energy_uj"
        self._max_range_uj = max_range_uj
        self._lock = threading.Lock()
        self._last_raw: int | None = None
        self._wraps = 0
        self._last_poll: tuple[float, float] | None = None

    def read_raw_uj(self) -> int:
        """The raw counter in µJ (raises OSError)."""
        return int(self._file.read_text().strip())

    def counter_j(self) -> float:
        """Unwrapped cumulative energy in joules."""
        with self._lock:
            raw = self.read_raw_uj()
            if self._last_raw is not None and raw < self._last_raw:
                self._wraps += 1
            self._last_raw = raw
            return (raw + self._wraps * self._max_range_uj) / 1e6

    def poll(self, t_s: float) -> float | None:
        """Average power since the previous poll (None on the first)."""
        energy = self.counter_j()
        previous, self._last_poll = self._last_poll, (t_s, energy)
        if previous is None or t_s <= previous[0]:
            return None
        return (energy - previous[1]) / (t_s - previous[0])

    def telemetry(self) -> dict[str, Any]:
        return {}

    def info(self) -> dict[str, Any]:
        return {"zone": str(self.zone.path), "max_energy_range_uj": self._max_range_uj}


def _zones(root: Path) -> list[RaplZone]:
    zones = []
    for entry in sorted(root.iterdir()):
        match = _ZONE.match(entry.name)
        if not match:
            continue
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            continue
        sub = int(match.group(2)) if match.group(2) is not None else None
        zones.append(RaplZone(entry, name, int(match.group(1)), sub))
    return zones


def discover(root: Path, host: str | None = None) -> MeterSet:
    """The RAPL counters to sum under ``root``, or why there are none.

    Packages and DRAM are summed; ``psys`` only stands in when no package zone exists, since it
    already covers the packages; core/uncore sub-zones are parts of their package.
    """
    host = host or platform.node()
    if not root.is_dir():
        return MeterSet(unavailable=[Unavailable("cpu", "RAPL", (
            f"no powercap interface at {root} (a virtual machine or container without RAPL); "
            f"if sysfs is mounted elsewhere, set measure.powercap_root or ${ROOT_ENV}"))])
    zones = _zones(root)
    chosen = [z for z in zones if z.kind is not None]
    if not any(z.kind == "cpu" for z in chosen):
        chosen += [z for z in zones if z.name == "psys" and z.sub is None]
    if not chosen:
        return MeterSet(unavailable=[Unavailable("cpu", "RAPL", (
            f"no RAPL package or DRAM zones under {root} (the kernel's intel_rapl driver is not "
            "loaded, or this CPU does not expose RAPL)"))])
    meters = MeterSet()
    for zone in chosen:
        try:
            max_range = int((zone.path / "max_energy_range_uj").read_text().strip())
            counter = RaplCounter(zone, max_range, host)
            counter.counter_j()
        except PermissionError:
            meters.unavailable.append(Unavailable(zone.kind or "cpu", zone.name, (
                f"permission denied reading {zone.path / 'energy_uj'} (readable only by root "
                "since CVE-2020-8694): run as root, or grant read access with "
                f"'sudo chmod a+r {root}/intel-rapl:*/energy_uj'")))
            continue
        except (OSError, ValueError) as exc:
            meters.unavailable.append(Unavailable(zone.kind or "cpu", zone.name,
                                                  f"cannot read {zone.path}: {exc}"))
            continue
        if zone.name == "psys":
            counter.kind = "cpu"
        meters.devices.append(counter)
    return meters
