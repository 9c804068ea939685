"""Timing the gradient all-reduce (DDP's communication hook), the evaluation shards and the
per-rank communication figures, without a process group."""

from __future__ import annotations

import math

import pytest
import torch

from bigbench.distributed.aggregate import RankSummary, combine, communication_figures
from bigbench.distributed.communication import GradientCommTimer, union_length
from bigbench.workload.steps import eval_shard

CPU = torch.device("cpu")


@pytest.mark.parametrize(("spans", "length"), [
    ([], 0.0),
    ([(0.0, 1.0)], 1.0),
    ([(0.0, 1.0), (2.0, 3.5)], 2.5),            # apart: both count
    ([(0.0, 2.0), (1.0, 3.0)], 3.0),            # overlapping: the union
    ([(1.0, 3.0), (0.0, 4.0), (3.5, 5.0)], 5.0),  # nested, unordered, touching the end
    ([(-2.0, -1.0), (-1.5, 0.5)], 2.5),         # CUDA spans relative to a later origin
])
def test_union_length(spans, length) -> None:
    assert union_length(spans) == pytest.approx(length)


class FakeFuture:
    """A completed all-reduce future: ``then`` runs the callback at once, as gloo's
    future does once the data has arrived."""

    def __init__(self, clock, duration_s: float) -> None:
        self.clock, self.duration_s = clock, duration_s

    def then(self, callback):
        self.clock.now += self.duration_s
        return callback(self)

    def value(self):
        return "reduced"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_timed_steps_count_and_overlapping_buckets_count_once(monkeypatch) -> None:
    import torch.distributed.algorithms.ddp_comm_hooks.default_hooks as hooks

    clock = Clock()
    durations = iter([0.5, 0.2, 0.3, 0.1])
    monkeypatch.setattr(hooks, "allreduce_hook",
                        lambda group, bucket: FakeFuture(clock, next(durations)))
    timer = GradientCommTimer(CPU, clock)
    assert timer.hook(None, "bucket") == "reduced"  # a warm-up step's bucket: dropped
    timer.start()
    timer.hook(None, "bucket")  # 0.2 s
    timer.hook(None, "bucket")  # 0.3 s, right after: 0.5 s in flight
    timer.step_done()
    timer.step_done()  # a step whose buckets never reached the hook: not timed, not 0 s
    timer.hook(None, "bucket")
    timer.step_done()
    assert timer.per_step_s() == [pytest.approx(0.5), None, pytest.approx(0.1)]


def test_communication_figures_cover_this_processs_steps_only() -> None:
    reasons: dict[str, str] = {}
    # A resumed run: two earlier steps from the checkpoint, three timed here.
    per_step, share = communication_figures([0.01, 0.02, 0.03], [9.0, 9.0, 0.1, 0.1, 0.1],
                                            reasons)
    assert per_step == pytest.approx(0.02) and share == pytest.approx(0.06 / 0.3)
    assert reasons == {}
    assert communication_figures(None, [0.1], reasons) == (None, None)
    assert reasons["communication_share"] == reasons["communication_per_step_s"]
    reasons = {}
    assert communication_figures([0.01, None], [0.1, 0.1], reasons) == (None, None)
    assert "1 of 2 measured steps never called" in reasons["communication_per_step_s"]


def _summary(rank: int, per_step: float | None, share: float | None) -> RankSummary:
    reasons = {} if per_step is not None else {
        "communication_per_step_s": "not measured under fsdp",
        "communication_share": "not measured under fsdp"}
    return RankSummary(rank=rank, local_rank=rank, host="h", device="cpu", samples=10,
                       steps=1, time_s=1.0, step_time_s={}, durations_s=[1.0],
                       peak_memory_bytes=None, energy_devices=[], reasons=reasons,
                       communication_per_step_s=per_step, communication_share=share)


def test_the_job_figure_is_the_ranks_mean_or_null_with_their_reason() -> None:
    job = combine([_summary(0, 0.01, 0.2), _summary(1, 0.03, 0.4)])
    assert job["communication_per_step_s"] == pytest.approx(0.02)
    assert job["communication_share"] == pytest.approx(0.3)
    assert [r["communication_share"] for r in job["ranks"]] == [0.2, 0.4]
    job = combine([_summary(0, None, None), _summary(1, None, None)])
    assert job["communication_per_step_s"] is None
    assert job["reasons"]["communication_per_step_s"] == "not measured under fsdp"
    # One rank without the figure: no mean over the others, but the reason, with the rank.
    job = combine([_summary(0, 0.01, 0.2), _summary(1, None, None)])
    assert job["communication_share"] is None
    assert job["reasons"]["communication_share"] == "rank 1: not measured under fsdp"


@pytest.mark.parametrize(("samples", "world"), [(10, 2), (11, 2), (7, 3), (1, 2), (0, 4)])
def test_evaluation_shards_partition_the_split(samples, world) -> None:
    shards = [eval_shard(samples, rank, world) for rank in range(world)]
    covered = [i for s in shards for i in range(samples)[s]]
    assert covered == list(range(samples))
    sizes = [s.stop - s.start for s in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert math.fsum(sizes) == samples
