"""Peak memory of the process (host) and of the CUDA caching allocator (device)."""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def host_peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def reset_device_peak(device: torch.device) -> None:
    """Start a new peak-memory interval on a CUDA device (no-op elsewhere)."""
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def device_peaks(device: torch.device) -> tuple[int | None, int | None]:
    """Peak allocated and reserved bytes since the last reset; ``(None, None)`` off CUDA."""
    if device.type != "cuda":
        return None, None
    import torch

    return int(torch.cuda.max_memory_allocated(device)), int(torch.cuda.max_memory_reserved(device))


def oom_memory_figures(device: torch.device) -> dict[str, int | str]:
    """What the allocator held when an allocation failed (for an out-of-memory record)."""
    if device.type != "cuda":
        why = "the CPU allocator refused an allocation; it keeps no peak figures"
        return {"device_peak_allocated_bytes": None, "device_peak_reserved_bytes": None,
                "reasons": {"device_peak_allocated_bytes": why,
                            "device_peak_reserved_bytes": why}}
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return {"device_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
            "device_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
            "device_free_bytes": int(free), "device_total_bytes": int(total),
            "host_peak_rss_bytes": host_peak_rss_bytes()}
