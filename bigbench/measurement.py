"""A run's measurement from its ``measure:`` config: the energy monitor for its device and rank,
and the environment record that goes with a result.

The one place where config settings become arguments of the measurement layer, which itself
never reads the config schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.rank import SINGLE, Rank

if TYPE_CHECKING:
    import torch

    from bigbench.config.schema import MeasureConfig


def energy_monitor(measure: MeasureConfig, device: torch.device, rank: Rank = SINGLE,
                   clock: Callable[[], float] = time.perf_counter) -> EnergyMonitor:
    """The monitor of ``device`` (and, on local rank 0, this host's CPUs), or a null one."""
    from bigbench.measuring.energy import rapl
    from bigbench.measuring.energy.setup import build_monitor, null_monitor

    if not measure.energy:
        return null_monitor("energy measurement is disabled (measure.energy: false)")
    uuid = None
    if device.type == "cuda":
        from bigbench.devices import describe

        uuid = describe(device).uuid or ""
    return build_monitor(interval_s=measure.power_interval_ms / 1000.0,
                         min_window_s=measure.min_energy_window_s, gpu_uuid=uuid,
                         powercap_root=rapl.powercap_root(measure.powercap_root),
                         measure_host=rank.measures_host, clock=clock)


def environment(device: torch.device, monitor: EnergyMonitor) -> dict[str, Any]:
    """The environment record of a result (run.json and bench.json alike): versions, host,
    device, and the static facts of every working energy meter (driver, power limit, clocks)."""
    from bigbench import environment as env

    record = env.collect(device)
    record["energy_meters"] = [{"key": d.key, "kind": d.kind, **d.info()}
                               for d in monitor.devices]
    return record
