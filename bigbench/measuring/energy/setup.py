"""Choose the energy meters of a run: its GPU (if any) plus this host's RAPL zones.

Receives everything from outside as arguments — the GPU's UUID, the NVML backend, the powercap
root — so tests can hand in fakes for every branch, the CUDA one included. It never reads the
config schema: the caller turns ``measure:`` settings into these arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from bigbench.measuring.energy import nvml, rapl
from bigbench.measuring.energy.base import MeterSet, Unavailable
from bigbench.measuring.energy.monitor import EnergyMonitor, default_min_window_s

#: Where the GPU's power reading covers the whole module, CPU included (Grace Hopper).
_WHOLE_MODULE_GPUS = ("GH200", "GH100")
#: Sampler period of a monitor that measures nothing (it never starts a thread).
_IDLE_INTERVAL_S = 0.05


def null_monitor(reason: str) -> EnergyMonitor:
    """A monitor with no device: every figure it gives is null with ``reason``."""
    return EnergyMonitor(MeterSet(unavailable=[Unavailable("energy", "energy", reason)]),
                         _IDLE_INTERVAL_S, min_window_s=1.0)


def build_monitor(*, interval_s: float, min_window_s: float | None = None,
                  gpu_uuid: str | None = None, powercap_root: Path | None = None,
                  measure_host: bool = True, nvml_backend: ModuleType | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> EnergyMonitor:
    """An energy monitor for the GPU ``gpu_uuid`` (None: a CPU run) and this host's CPUs.

    Args:
        interval_s: Seconds between power samples.
        min_window_s: Windows shorter than this get quality "low"; None: 5 s when a GPU is
            measured (its counter moves in steps of up to 100 ms), else 1 s.
        gpu_uuid: UUID of the GPU in use; its NVML handle is found by UUID, never by index.
        powercap_root: Where powercap sysfs is; None: ``$BIGBENCH_POWERCAP_ROOT`` or /sys.
        measure_host: Measure CPU packages and DRAM (one process per host does, so that two
            ranks on one host never count them twice).
        nvml_backend: The pynvml module (or a fake); None imports it.
    """
    meters = MeterSet()
    if gpu_uuid is not None:
        meters.extend(nvml.open_gpu(gpu_uuid, nvml_backend))
    gpu_names = [d.name for d in meters.devices if d.kind == "gpu"]
    if any(tag in name for name in gpu_names for tag in _WHOLE_MODULE_GPUS):
        meters.unavailable.append(Unavailable("cpu", "RAPL", (
            "not added: on Grace Hopper the GPU reading already covers the CPU")))
    elif measure_host:
        meters.extend(rapl.discover(powercap_root or rapl.powercap_root(None)))
    return EnergyMonitor(meters, interval_s, min_window_s or default_min_window_s(meters), clock)
