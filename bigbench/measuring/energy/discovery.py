"""Every meter on this machine, for ``bigbench energy probe`` and ``energy measure``."""

from __future__ import annotations

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
