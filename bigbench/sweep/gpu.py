"""The device a sweep trains on, its power limiter and the cooldown between trials.

The power limiter itself (NVML, permissions, the state file, restoring) is
bigbench.measuring.energy.power_limits; this module only opens it for the sweep's GPU and
reads temperatures for the cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigbench.errors import DeviceError

#: Seconds between temperature readings while cooling down.
POLL_S = 1.0

Thermometer = Callable[[], float | None]


@dataclass(frozen=True)
class DeviceFacts:
    """The device the trials run on.

    Attributes:
        type: ``cpu`` or ``cuda``.
        name: Marketing name.
        index: CUDA device index (None on a CPU).
        uuid: NVML UUID (None on a CPU).
    """

    type: str
    name: str
    index: int | None = None
    uuid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"type": self.type, "name": self.name, "index": self.index, "uuid": self.uuid}


def device_facts(spec: str) -> DeviceFacts:
    """Resolve ``auto | cpu | cuda | cuda:N`` and describe it.

    Raises:
        DeviceError: CUDA asked for but absent, or no such GPU.
    """
    from bigbench import devices

    described = devices.describe(devices.resolve(spec))
    return DeviceFacts(described.type, described.name, described.index, described.uuid)


def open_limiter(device: DeviceFacts, state_file: Path) -> Any:
    """The power limiter of the sweep's GPU, its original settings saved in ``state_file``
    before anything changes.

    Raises:
        PowerControlError: no NVML, no privilege to set limits (naming the fix), or a state
            file an earlier run left unrestored.
    """
    from bigbench.measuring.energy.power_limits import PowerLimiter

    assert device.index is not None
    # By UUID where known: CUDA and NVML may number GPUs differently.
    if device.uuid:
        return PowerLimiter.open(device.index, state_file, uuid=device.uuid)
    return PowerLimiter.open(device.index, state_file)


def thermometer(device: DeviceFacts, limiter: Any | None) -> Thermometer:
    """A reader of the GPU's temperature, °C (None when it cannot be read).

    Through the limiter when one is open; otherwise through a read-only NVML snapshot, which
    needs no privilege.

    Raises:
        DeviceError: NVML cannot open the GPU.
    """
    if limiter is not None:
        return lambda: _number(limiter.snapshot().get("temperature_c"))
    from bigbench.measuring.energy.power_limits import snapshot_reader

    read = snapshot_reader(device.uuid or "")
    if read is None:
        raise DeviceError(f"sweep.cooldown_below_c: NVML cannot read the temperature of "
                          f"{device.name}; remove cooldown_below_c or use cooldown_s")
    return lambda: _number(read().get("temperature_c"))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def cool_down(seconds: float, below_c: float | None, timeout_s: float,
              read_c: Thermometer | None, should_stop: Callable[[], bool],
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Wait ``seconds``, then until the GPU is below ``below_c`` (at most ``timeout_s``).

    Wakes early when a stop is requested. Returns what happened: ``waited_s``,
    ``temperature_start_c`` / ``temperature_end_c`` (°C, None when not read) and ``timed_out``
    (the temperature wait ran out; None without one).
    """
    start = clock()
    before = read_c() if (below_c is not None and read_c is not None) else None
    deadline = start + seconds
    while not should_stop() and clock() < deadline:
        sleep(min(POLL_S, max(0.0, deadline - clock())))
    now, timed_out = before, None
    if below_c is not None and read_c is not None:
        limit = clock() + timeout_s
        now = read_c()
        timed_out = False
        while not should_stop() and (now is None or now >= below_c):
            if clock() >= limit:
                timed_out = True
                break
            sleep(POLL_S)
            now = read_c()
    return {"waited_s": clock() - start, "temperature_start_c": before,
            "temperature_end_c": now, "timed_out": timed_out}
