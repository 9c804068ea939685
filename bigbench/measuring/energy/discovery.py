"""Every meter on this machine, for ``bigbench energy probe`` and ``energy measure`` (and
:func:`bigbench.probe_energy`)."""

from __future__ import annotations

from typing import Any

from bigbench.measuring.energy import nvml, rapl
from bigbench.measuring.energy.base import MeterSet, Unavailable


def all_meters(powercap_root: str | None = None) -> MeterSet:
    """Meters for every GPU NVML sees and every RAPL package/DRAM zone, plus the reasons for
    those that do not work."""
    meters = MeterSet()
    uuids, reason = nvml.list_gpu_uuids()
    if reason is not None:
        meters.unavailable.append(Unavailable("gpu", "NVML", reason))
    elif not uuids:
        meters.unavailable.append(Unavailable("gpu", "NVML", "NVML answers but sees no GPU"))
    for uuid in uuids:
        meters.extend(nvml.open_gpu(uuid))
    meters.extend(rapl.discover(rapl.powercap_root(powercap_root)))
    return meters


def probe_meters(powercap_root: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Which meters work here (``bigbench energy probe``): ``working`` (``key``, ``kind``,
    ``name``, the ``counter`` and ``power`` methods, and the meter's static facts) and
    ``unavailable`` (``kind``, ``name`` and the ``reason``, with the fix where there is one)."""
    meters = all_meters(powercap_root)
    working = [{"key": d.key, "kind": d.kind, "name": d.name, "counter": d.counter_method,
                "power": d.power_method, **d.info()} for d in meters.devices]
    broken = [{"kind": u.kind, "name": u.name, "reason": u.reason} for u in meters.unavailable]
    return {"working": working, "unavailable": broken}
