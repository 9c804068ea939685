"""The step engine and the throughput definition, on an injected clock."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bigbench.engine import Phase, StepEngine, train_phases
from bigbench.measuring.energy.setup import null_monitor
from bigbench.measuring.meter import Meter
from bigbench.measuring.stats import percentile, summarize_durations
from bigbench.measuring.timing import StepTimer
from bigbench.record import Segment, Totals, throughput_section

CPU = torch.device("cpu")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _engine(clock: FakeClock, total: int, warmup: int, log_every: int = 10,
            step_s: float = 0.05, losses=None, should_stop=lambda: False,
            sum_over_ranks=None):
    meter = Meter(CPU, null_monitor("test"), clock=clock)
    timer = StepTimer(CPU, clock=clock)
    calls = []
    logs = []

    def step(batch):
        clock.now += step_s
        calls.append(batch)
        value = losses[len(calls) - 1] if losses else 1.0
        return torch.tensor(value)

    engine = StepEngine(step, meter, timer, phases=train_phases(total, warmup),
                        log_every=log_every, on_log=logs.append, should_stop=should_stop,
                        sum_over_ranks=sum_over_ranks)
    return engine, meter, timer, calls, logs


def _totals(meter: Meter) -> Totals:
    window = meter.totals("measured")
    return Totals.of([Segment(window.steps, window.samples, window.time_s, None)])


def _batches(n: int, size: int = 2):
    return [(torch.zeros(size, 3), torch.zeros(size)) for _ in range(n)]


def test_throughput_is_measured_samples_over_measured_time() -> None:
    clock = FakeClock()
    engine, meter, timer, calls, _ = _engine(clock, total=110, warmup=10)
    engine.run(_batches(200), epoch=0)
    assert len(calls) == 110
    measured = meter.totals("measured")
    assert measured.steps == 100 and measured.samples == 200
    assert measured.time_s == pytest.approx(5.0)
    section = throughput_section(_totals(meter), timer.durations_s, 10, 10,
                                 (None, "inputs are not sequences"))
    assert section["samples_per_s"] == pytest.approx(40.0)  # 100 steps × 2 samples / 5 s
    assert section["warmup_steps"] == 10 and section["measured_steps"] == 100
    assert section["step_time_s"]["p50"] == pytest.approx(0.05)
    assert len(timer.durations_s) == 100  # warm-up steps are not timed


def test_warmup_and_measured_windows_accumulate_across_epochs() -> None:
    clock = FakeClock()
    engine, meter, timer, calls, _ = _engine(clock, total=25, warmup=4, log_every=3)
    for epoch in range(3):
        engine.run(_batches(10), epoch=epoch)
        clock.now += 7.0  # an evaluation between epochs is outside both windows
    assert len(calls) == 25 and engine.finished
    assert meter.totals("warmup").steps == 4
    measured = meter.totals("measured")
    assert measured.steps == 21 and measured.segments == 3
    assert measured.time_s == pytest.approx(21 * 0.05)


def test_loss_is_read_every_log_interval_and_at_the_end() -> None:
    clock = FakeClock()
    losses = [float(i) for i in range(1, 13)]
    engine, _, _, _, logs = _engine(clock, total=12, warmup=2, log_every=5, losses=losses)
    engine.run(_batches(12), epoch=0)
    assert [event.step for event in logs] == [5, 10, 12]
    assert [event.loss for event in logs] == [3.0, 8.0, 11.5]  # interval means
    assert engine.state.last_loss == 11.5


def test_non_finite_loss_stops_with_the_last_finite_loss() -> None:
    clock = FakeClock()
    losses = [1.0] * 5 + [math.nan] * 10
    engine, _, _, calls, _ = _engine(clock, total=15, warmup=1, log_every=5, losses=losses)
    engine.run(_batches(15), epoch=0)
    assert engine.state.stop_reason == "non_finite_loss"
    assert len(calls) == 10 and engine.state.last_finite_loss == 1.0
    assert "step 10" in engine.state.stop_detail


def test_with_several_ranks_the_logged_loss_and_a_nan_stop_are_the_jobs() -> None:
    """The interval's (loss sum, steps) is summed over the ranks: the logged loss is the
    job's mean, and a NaN on another rank stops this one at the same log interval."""
    clock = FakeClock()
    other_rank = iter([torch.tensor([5 * 3.0, 5.0]), torch.tensor([math.nan, 5.0])])
    seen = []

    def sum_over_ranks(packed: torch.Tensor) -> torch.Tensor:
        seen.append(packed.clone())
        return packed + next(other_rank)

    engine, _, _, calls, logs = _engine(clock, total=20, warmup=0, log_every=5,
                                        sum_over_ranks=sum_over_ranks)
    engine.run(_batches(20), epoch=0)
    assert seen[0].tolist() == [5.0, 5.0]  # this rank's sum of five losses of 1, five steps
    assert logs[0].loss == pytest.approx((5 + 15) / 10)
    assert engine.state.stop_reason == "non_finite_loss" and len(calls) == 10


def test_stop_request_ends_after_the_current_step() -> None:
    clock = FakeClock()
    flag = {"stop": False}
    engine, _, _, calls, _ = _engine(clock, total=50, warmup=2,
                                     should_stop=lambda: flag["stop"] or len(calls) >= 7)
    engine.run(_batches(50), epoch=0)
    assert len(calls) == 7 and engine.state.stop_reason == "interrupted"


def test_no_measured_steps_gives_null_with_reason() -> None:
    meter = Meter(CPU, null_monitor("test"), clock=FakeClock())
    section = throughput_section(_totals(meter), [], 0, 10, (None, "inputs are not sequences"))
    assert section["samples_per_s"] is None
    assert "no measured steps" in section["reasons"]["samples_per_s"]


@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 100])
def test_percentile_matches_numpy(q) -> None:
    values = list(np.random.default_rng(q).exponential(size=37))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_summary_of_no_durations_is_null() -> None:
    assert summarize_durations([])["p99"] is None
    with pytest.raises(ValueError):
        percentile([], 50)


def test_phases_by_time_and_by_steps() -> None:
    clock = FakeClock()
    meter = Meter(CPU, null_monitor("test"), clock=clock)
    timer = StepTimer(CPU, clock=clock)

    def step(batch):
        clock.now += 0.125  # exact in binary, so window times add up exactly
        return torch.tensor(1.0)

    phases = [Phase("warmup", 3, timed=False), Phase("repeat-0", None, min_s=1.0),
              Phase("repeat-1", None, min_s=1.0), Phase("extended", 30, min_s=5.0)]
    engine = StepEngine(step, meter, timer, phases=phases, log_every=1000)
    engine.run(_batches(1000), epoch=0)
    assert engine.finished
    assert meter.totals("warmup").steps == 3
    assert meter.totals("repeat-0").steps == 8 and meter.totals("repeat-1").steps == 8
    assert meter.totals("extended").steps == 40  # 11 planned steps, extended to 5 s
    assert engine.extra_steps == 59 - 30
    assert len(timer.durations_s) == 56


def test_zero_warmup_opens_no_window() -> None:
    clock = FakeClock()
    engine, meter, _, calls, _ = _engine(clock, total=5, warmup=0)
    engine.run(_batches(5), epoch=0)
    assert "warmup" not in meter.windows and meter.totals("measured").steps == 5


def test_a_minimum_that_grows_with_segments_is_met_across_epochs() -> None:
    """Energy quality loses a sample at each segment edge: the minimum grows per segment."""
    clock = FakeClock()
    meter = Meter(CPU, null_monitor("test"), clock=clock)

    def step(batch):
        clock.now += 0.125
        return torch.tensor(1.0)

    phases = train_phases(1, 0, min_measured_s_for_segments=lambda segments: 0.5 + 0.1 * segments)
    engine = StepEngine(step, meter, StepTimer(CPU, clock=clock), phases=phases, log_every=100)
    engine.run(_batches(4), epoch=0)  # 0.5 s in one segment: short of 0.6 s
    assert not engine.finished
    engine.run(_batches(4), epoch=1)  # two segments need 0.7 s: two more steps, not one
    assert engine.finished and engine.state.step == 6
    measured = meter.totals("measured")
    assert measured.segments == 2 and measured.time_s == pytest.approx(0.75)
