"""The job's process group, and the ranks agreeing on when to stop.

One process group per job (``torch.distributed``, env:// rendezvous from MASTER_ADDR /
MASTER_PORT, which torchrun sets). Its timeout bounds every collective: a rank that dies or
hangs ends the others' waits with an error within ``timeout_s`` instead of a hang.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import torch

from bigbench.errors import ConfigError
from bigbench.rank import Rank

#: Backends by device type when the config says "auto".
AUTO_BACKEND = {"cuda": "nccl", "cpu": "gloo"}


def backend_for(requested: str, device_type: str) -> str:
    """The collective backend: ``auto`` is nccl on CUDA and gloo on a CPU.

    Raises:
        ConfigError: nccl on a CPU, or a backend this torch build lacks.
    """
    import torch.distributed as dist

    backend = AUTO_BACKEND.get(device_type, "gloo") if requested == "auto" else requested
    if backend == "nccl" and device_type != "cuda":
        raise ConfigError("distributed.backend nccl needs CUDA devices; use gloo (or auto) on "
                          "a CPU")
    available = {"gloo": dist.is_gloo_available(), "nccl": dist.is_nccl_available()}
    if not available.get(backend, False):
        raise ConfigError(f"distributed.backend {backend} is not available in this torch "
                          f"build ({torch.__version__}); use "
                          f"{' or '.join(b for b, ok in available.items() if ok) or 'none'}")
    return backend


@contextlib.contextmanager
def process_group(rank: Rank, backend: str, timeout_s: float,
                  device: torch.device) -> Iterator[None]:
    """Join the job's process group for the body's duration (a single process joins none)."""
    if rank.world_size == 1:
        yield
        return
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank.rank, world_size=rank.world_size,
                            timeout=datetime.timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    try:
        yield
    finally:
        dist.destroy_process_group()


class AgreedStop:
    """The ranks' common answer to "stop now?", so every rank ends after the same step.

    Each poll starts an all-reduce (MAX) of this rank's own stop flag and returns the result
    of the previous poll's, which has long arrived: no rank waits for it, and because every
    rank polls once per step (the engine does), every rank sees a stop at the same step — one
    step after the first rank asked.

    Args:
        local: This process's stop request (its signal handlers).
        device: Where the flag lives (the backend's device: CUDA for nccl, CPU for gloo).
    """

    def __init__(self, local: Any, device: torch.device) -> None:
        self.local = local
        self._device = device
        self._pending: tuple[Any, torch.Tensor] | None = None
        self._agreed = False

    @property
    def requested(self) -> bool:
        """True once any rank asked to stop (one poll after it did)."""
        import torch.distributed as dist

        if self._agreed:
            return True
        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            self._agreed = bool(flag.item())
        flag = torch.tensor([1 if self.local.requested else 0], device=self._device)
        self._pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, async_op=True), flag)
        return self._agreed

    @property
    def exit_code(self) -> int:
        """This process's exit code for the stop (130 for SIGINT, 143 for SIGTERM)."""
        return self.local.exit_code or 130

    def settle(self) -> None:
        """Wait for the last poll's all-reduce, so no collective is left in flight."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None


def gather_to_rank0(value: Any, rank: Rank) -> list[Any] | None:
    """Every rank's ``value`` on rank 0 (in rank order); None on the other ranks."""
    if rank.world_size == 1:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * rank.world_size if rank.rank == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered
