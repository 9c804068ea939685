"""Choose the energy meters for a run from the config and the device in use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bigbench.config.schema import MeasureConfig
from bigbench.measure.energy import nvml, rapl
from bigbench.measure.energy.base import MeterSet, NullEnergyMeter, Unavailable
from bigbench.measure.energy.monitor import EnergyMonitor

if TYPE_CHECKING:
    import torch

#: Where the GPU's power reading covers the whole module, CPU included (Grace Hopper).
_WHOLE_MODULE_GPUS = ("GH200", "GH100")


def build_monitor(config: MeasureConfig, device: torch.device,
                  clock: Callable[[], float] = time.perf_counter
                  ) -> EnergyMonitor | NullEnergyMeter:
    """An energy monitor for a run on ``device``: its GPU (if any) plus the CPU's RAPL zones.

    Each rank measures only its own GPU; CPU packages are keyed by host so a later sum over
    ranks can drop duplicates.
    """
    if not config.energy:
        return NullEnergyMeter("energy measurement is disabled (measure.energy: false)")
    meters = MeterSet()
    if device.type == "cuda":
        from bigbench.devices import describe

        meters.extend(nvml.open_gpu(describe(device).uuid or ""))
    gpu_names = [d.name for d in meters.devices if d.kind == "gpu"]
    if any(tag in name for name in gpu_names for tag in _WHOLE_MODULE_GPUS):
        meters.unavailable.append(Unavailable("cpu", "RAPL", (
            "not added: on Grace Hopper the GPU reading already covers the CPU")))
    else:
        meters.extend(rapl.discover(rapl.powercap_root(config.powercap_root)))
    min_window = config.min_energy_window_s or (5.0 if gpu_names else 1.0)
    return EnergyMonitor(meters, config.power_interval_ms / 1000.0, min_window, clock)
