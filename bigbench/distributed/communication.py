"""How long each measured step had a gradient all-reduce in flight (DDP).

DDP hands every gradient bucket to a communication hook as soon as the backward pass has
filled it; the hook here is PyTorch's own default (``allreduce_hook``: divide by the world
size, all-reduce) with a mark at the hand-over and one when the all-reduce's future
completes. A step's figure is the length of the *union* of its buckets' spans, so two
buckets in flight at once count once.

What the figure is, and is not:

- It overlaps the backward pass: DDP reduces the first buckets while later gradients are
  still being computed. It is time with communication in flight, not time added to the step.
- It includes waiting for the slowest rank: an all-reduce completes only once every rank has
  handed in its bucket.
- On a CPU (gloo) the marks are host clock readings; the future completes on gloo's thread
  when the data has arrived. On CUDA (nccl) the host only queues the collective, so the marks
  are CUDA events on the streams the all-reduce waits for and finishes on, read back only
  after a synchronisation the loop makes anyway (like :class:`~bigbench.measuring.timing.
  StepTimer`).

FSDP's all-gathers and reduce-scatters run inside ``fully_shard`` on its own streams with no
hook: there the figure is not measured, and run.json says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

Clock = Callable[[], float]


def union_length(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of ``(start, end)`` intervals (any unit, any order)."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


class GradientCommTimer:
    """Collects each timed step's time with a gradient all-reduce in flight, in seconds.

    Driven like a :class:`~bigbench.measuring.timing.StepTimer` (it follows one):
    :meth:`start` at the start of a run of timed steps (spans of untimed steps before it are
    dropped), :meth:`step_done` after each timed step, :meth:`flush` after a device sync.

    Args:
        device: The device the steps run on (CUDA: events; otherwise the host clock).
        clock: Host clock in seconds (injectable for tests).
    """

    def __init__(self, device: torch.device, clock: Clock = time.perf_counter) -> None:
        self._cuda = device.type == "cuda"
        self._clock = clock
        self._current: list[tuple[Any, Any]] = []  # the running step's spans
        self._unread: list[list[tuple[Any, Any]]] = []  # timed steps' CUDA spans, not read yet
        self._per_step_s: list[float | None] = []

    # Unannotated on purpose: DDP inspects the hook's annotations and accepts only the real
    # dist.GradBucket and Future[Tensor] objects, which postponed annotations are not.
    def hook(self, process_group: Any, bucket):  # type: ignore[no-untyped-def]  # noqa: ANN001
        """The DDP communication hook: PyTorch's default all-reduce, with its span marked
        (``bucket``: a ``dist.GradBucket``; returns a ``Future[Tensor]``)."""
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        start = self._mark()

        def finished(future: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            # Runs before DDP's wait on the chained future returns: before the step ends.
            self._current.append((start, self._mark()))
            return future.value()

        return allreduce_hook(process_group, bucket).then(finished)

    def start(self) -> None:
        """A run of timed steps begins: spans so far belong to untimed steps."""
        self._current = []

    def step_done(self) -> None:
        """A timed step ended: its spans are complete (DDP waited for every bucket)."""
        spans, self._current = self._current, []
        if self._cuda and spans:
            self._unread.append(spans)
        else:
            # No bucket reached the hook: nothing was timed (not "no communication").
            self._per_step_s.append(union_length(spans) if spans else None)

    def flush(self) -> None:
        """Read the CUDA spans back (call after a device sync; an event not yet complete
        stays for a later flush)."""
        while self._unread and all(end.query() for _, end in self._unread[0]):
            spans = self._unread.pop(0)
            origin = spans[0][0]
            self._per_step_s.append(union_length(
                [(origin.elapsed_time(s), origin.elapsed_time(e)) for s, e in spans]) / 1000.0)

    def per_step_s(self) -> list[float | None]:
        """Every timed step's time with an all-reduce in flight, s (waits for the device);
        None for a step whose buckets never reached the hook (nothing was timed)."""
        if self._unread:
            torch.cuda.synchronize()
            self.flush()
        return list(self._per_step_s)

    def _mark(self) -> Any:
        if not self._cuda:
            return self._clock()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event


def time_gradient_communication(ddp: torch.nn.Module, device: torch.device,
                                clock: Clock = time.perf_counter) -> GradientCommTimer:
    """Register a :class:`GradientCommTimer` as ``ddp``'s communication hook (before its
    first backward pass) and return it."""
    timer = GradientCommTimer(device, clock)
    ddp.register_comm_hook(None, timer.hook)  # type: ignore[operator]
    return timer
