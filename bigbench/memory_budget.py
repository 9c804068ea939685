"""Refuse sizes that cannot fit before allocating them.

A config asking for a 78 GB synthetic dataset or a model with billions of parameters should get
one clear error, not an allocator traceback or a visit from the kernel's OOM killer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bigbench.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: Fraction of the available memory bigbench lets one allocation plan take.
HEADROOM = 0.8


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: host memory available to new allocations, or free GPU memory."""
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(what: str, needed_bytes: int, device: torch.device, fix: str) -> None:
    """Raise a ConfigError when ``needed_bytes`` exceeds the headroom of available memory."""
    available = available_bytes(device)
    if needed_bytes > HEADROOM * available:
        raise ConfigError(f"{what} needs {needed_bytes / 2**30:.1f} GiB but only "
                          f"{available / 2**30:.1f} GiB is free on {device}; {fix}")
