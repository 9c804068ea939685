"""Resolve, describe and synchronise compute devices.

Everything that asks torch about devices lives here, so the rest of bigbench handles a
``torch.device`` and never parses device strings itself.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bigbench.errors import DeviceError

if TYPE_CHECKING:
    import torch


def resolve(spec: str) -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N`` into a usable torch device.

    Raises:
        DeviceError: when CUDA is asked for but absent, or the index does not exist.
    """
    import torch

    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise DeviceError(f"device '{spec}' is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        reason = "this torch build has no CUDA" if torch.version.cuda is None else \
            "no NVIDIA GPU or driver is visible"
        raise DeviceError(f"device '{spec}' requested but CUDA is not available ({reason}); "
                          "use --device cpu")
    index = int(spec.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"device '{spec}' does not exist; this machine has {count} CUDA device(s): "
            f"cuda:0 … cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on ``device`` (a no-op on CPU, where ops are synchronous)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def cpu_model_name() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where available."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass
class DeviceDescription:
    """What a run records about the device it ran on."""

    type: str
    name: str
    index: int | None = None
    uuid: str | None = None
    total_memory_bytes: int | None = None
    capability: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


def describe(device: torch.device) -> DeviceDescription:
    """Describe one torch device (name, memory, UUID for CUDA)."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        uuid = getattr(props, "uuid", None)
        return DeviceDescription(
            type="cuda",
            name=props.name,
            index=index,
            uuid=_format_uuid(uuid),
            total_memory_bytes=int(props.total_memory),
            capability=f"{props.major}.{props.minor}",
        )
    return DeviceDescription(
        type="cpu",
        name=cpu_model_name(),
        extra={"logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    )


def _format_uuid(uuid: object) -> str | None:
    """torch gives a UUID object without NVML's ``GPU-`` prefix; NVML wants the prefix."""
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def cuda_devices() -> list[DeviceDescription]:
    """All CUDA devices torch can see (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [describe(torch.device("cuda", i)) for i in range(torch.cuda.device_count())]
