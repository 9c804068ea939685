"""The job's process group, and the ranks agreeing on when to stop.

One process group per job (``torch.distributed``, env:// rendezvous from MASTER_ADDR /
MASTER_PORT, which torchrun sets). Its timeout bounds every collective: a rank that dies or
hangs ends the others' waits with an error within ``timeout_s`` instead of a hang.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
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
        # Now, so a gloo problem under nccl shows before training, not at step 1; with the
        # job's timeout (a new group's default would be torch's 30 minutes).
        cpu_group(datetime.timedelta(seconds=timeout_s))
        yield
    finally:
        forget_cpu_group()
        # The objects that hold the group (FSDP's device mesh, DDP's reducer) are freed now,
        # while the interpreter is whole: freed during its shutdown instead, gloo's threads
        # can abort the process after a successful run ("terminate called without an active
        # exception").
        gc.collect()
        dist.destroy_process_group()


class Collectives:
    """The few collectives the training loop itself issues, on the job's process group.

    Every rank calls each method at the same point of its loop (the engine's log interval,
    an evaluation), which is what makes the ranks' decisions common ones: the loss that
    decides a NaN stop and the metrics that decide a target are the job's, not one rank's.

    Args:
        rank: This process's place in the job.
    """

    def __init__(self, rank: Rank) -> None:
        self.rank = rank

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks, in place (on the backend's device); returned."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` on every rank, in rank order (picklable values)."""
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.rank.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0, in rank order (None on the other ranks)."""
        import torch.distributed as dist

        gathered: list[Any] | None = [None] * self.rank.world_size if self.rank.rank == 0 \
            else None
        dist.gather_object(value, gathered, dst=0)
        return gathered


_CPU_GROUP: Any = None


def cpu_group(timeout: datetime.timedelta | None = None) -> Any:
    """A gloo group of every rank, for small host-side agreements (stop flags).

    On gloo that is the job's group itself. Under nccl a flag on the GPU would make each
    per-step poll a device synchronisation (``.item()`` waits for the stream), so flags go
    over a gloo group on the CPU instead, created once, by every rank as it joins the job
    (:func:`process_group`): an nccl job needs gloo's TCP connections between its hosts too.

    Args:
        timeout: Its collectives' timeout, used when it is created (the job's ``timeout_s``).
    """
    global _CPU_GROUP
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None  # the default group
    if _CPU_GROUP is None:
        _CPU_GROUP = dist.new_group(backend="gloo", timeout=timeout)
    return _CPU_GROUP


def forget_cpu_group() -> None:
    """Drop the gloo group (the process group it belongs to is being destroyed)."""
    global _CPU_GROUP
    _CPU_GROUP = None


class AgreedStop:
    """The ranks' common answer to "stop now?", so every rank ends after the same step.

    Each poll starts an all-reduce (MAX) of this rank's own stop flag and returns the result
    of the previous poll's, which has long arrived: no rank waits for it, and because every
    rank polls once per step (the engine does), every rank sees a stop at the same step — one
    step after the first rank asked. The flag is a CPU tensor on a gloo group
    (:func:`cpu_group`), so polling never synchronises a GPU.

    Args:
        local: This process's stop request (its signal handlers).
    """

    def __init__(self, local: Any) -> None:
        self.local = local
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
        flag = torch.tensor([1 if self.local.requested else 0], dtype=torch.int64)
        self._pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=cpu_group(),
                                         async_op=True), flag)
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
