"""Time and energy to a quality target, through the real training path on the CPU.

The evaluation is scripted (a sequence of metric values) and time and energy are simulated at
the boundary: a fake clock that each training step advances by ``STEP_S`` and each evaluation by
``EVAL_S``, and a powercap tree whose counters follow that clock at fixed power. So every figure
is exact: time to target = steps × STEP_S, energy = that time × the RAPL power, and the
evaluations' time and energy are provably left out.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from conftest import load_run, undeclared_keys
from fakes import FakeClock, PowercapTree

from bigbench import trainer, training_loop
from bigbench.interrupt import StopRequest
from bigbench.measuring.energy import rapl
from bigbench.measuring.meter import Meter
from bigbench.rank import SINGLE
from bigbench.records import RunConfig, RunRecord, json_schema
from bigbench.records.run import RunTime, TrainSettings
from bigbench.run_summary import summary_rows
from bigbench.training_loop import TrainCallbacks

#: Fake seconds per training step and per evaluation.
STEP_S, EVAL_S = 0.25, 10.0
#: Fake RAPL power: package and DRAM (the only zones summed), watts.
PACKAGE_W, DRAM_W = 40.0, 4.0
POWER_W = PACKAGE_W + DRAM_W
BATCH = 16

CONFIG = """\
name: target
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 256, test_size: 64}
train:
  max_steps: 40
  batch_size: 16
  warmup_steps: 2
  log_every: 4
  threads: 1
  eval_every: 5
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
measure: {flops: false}
device: cpu
"""


@dataclass
class Rig:
    """The fake clock and, when energy is on, the powercap tree that follows it."""

    clock: FakeClock
    tree: PowercapTree | None

    def advance(self, seconds: float) -> None:
        """Move time on; the RAPL counters accumulate energy at fixed power meanwhile."""
        self.clock.advance(seconds)
        if self.tree is not None:
            self.tree.set_uj("intel-rapl:0", round(self.clock.now * PACKAGE_W * 1e6))
            self.tree.set_uj("intel-rapl:0:2", round(self.clock.now * DRAM_W * 1e6))


@pytest.fixture
def make_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], Rig]:
    """Inject the fake clock into the run's meter and energy monitor, and make every training
    step advance it by STEP_S (after doing the real step)."""

    def make(energy: bool = True) -> Rig:
        clock = FakeClock()
        rig = Rig(clock, PowercapTree(tmp_path / "powercap") if energy else None)
        rig.advance(0.0)
        if energy:
            monkeypatch.setenv(rapl.ROOT_ENV, str(tmp_path / "powercap"))
        monitor = trainer.energy_monitor
        monkeypatch.setattr(trainer, "energy_monitor",
                            lambda measure, device, rank=SINGLE: monitor(measure, device, rank,
                                                                         clock=clock))
        monkeypatch.setattr(trainer, "Meter", lambda device, energy, origin=None:
                            Meter(device, energy, clock=clock))
        build_step = training_loop.build_step

        def timed_step(workload, mode):  # noqa: ANN001, ANN202
            step = build_step(workload, mode)

            def run(batch):  # noqa: ANN001, ANN202
                loss = step(batch)
                rig.advance(STEP_S)
                return loss
            return run

        monkeypatch.setattr(training_loop, "build_step", timed_step)
        return rig

    return make


def script(monkeypatch: pytest.MonkeyPatch, rig: Rig, values: Iterable[float],
           metric: str = "accuracy") -> None:
    """Evaluations return ``values`` of ``metric`` in turn, each taking EVAL_S."""
    remaining = iter(values)

    def evaluate(workload, split, batch_size, collectives=None):  # noqa: ANN001, ANN202
        rig.advance(EVAL_S)
        return {"accuracy": 0.1, "loss": 2.0, metric: next(remaining)}

    monkeypatch.setattr(training_loop, "evaluate", evaluate)


def config_with(write_config: Callable[..., Path], **train: object) -> Path:
    """CONFIG with extra ``train`` keys."""
    extra = "".join(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
                    for key, value in train.items())
    return write_config(CONFIG.replace("  eval_every: 5\n", "  eval_every: 5\n" + extra))


def check_record(record: dict) -> RunRecord:
    """run.json matches its exported schema and declares every key it holds."""
    jsonschema.Draft202012Validator(json_schema("run")).validate(record)
    run = RunRecord.model_validate(record)
    assert undeclared_keys(run, (RunConfig, TrainSettings, RunTime)) == []
    return run


@pytest.mark.parametrize(("metric", "goal", "values"), [
    ("accuracy", 0.9, [0.5, 0.7, 0.9, 0.85, 0.95, 0.97, 0.96, 0.98]),
    ("loss", 0.5, [2.0, 1.0, 0.45, 0.6, 0.3, 0.2, 0.2, 0.1]),
])
def test_first_evaluation_that_reaches_the_target_defines_the_figures(
        cli, write_config, tmp_path, monkeypatch, make_rig, metric, goal, values) -> None:
    rig = make_rig(True)
    script(monkeypatch, rig, values, metric)
    out = tmp_path / "run"
    result = cli("train", config_with(write_config, **{f"target_{metric}": goal}), "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    target = record["target"]
    assert target["metric"] == metric and target["goal"] == goal and target["reached"]
    assert target["direction"] == ("max" if metric == "accuracy" else "min")
    # The third evaluation (step 15) is the first to reach it; later ones change nothing.
    assert target["steps_to_target"] == 15 and target["samples_to_target"] == 15 * BATCH
    assert target["time_to_target_s"] == pytest.approx(15 * STEP_S)
    assert target["energy_to_target_j"] == pytest.approx(15 * STEP_S * POWER_W, abs=1e-4)
    # The error bound needs power samples near each window edge: on the fake clock the sampler
    # thread may not have one, and then the bound is null with its reason (never 0).
    bound = target["energy_to_target_uncertainty_j"]
    assert set(target["reasons"]) <= {"energy_to_target_uncertainty_j"}
    assert (bound is None) == ("energy_to_target_uncertainty_j" in target["reasons"])
    evaluations = target["evaluations"]
    assert [e["step"] for e in evaluations] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [e["value"] for e in evaluations] == values
    assert [e["samples"] for e in evaluations] == [e["step"] * BATCH for e in evaluations]
    for e in evaluations:  # the training windows only: eight evaluations of 10 s left out
        assert e["time_s"] == pytest.approx(e["step"] * STEP_S)
        assert e["energy_j"] == pytest.approx(e["step"] * STEP_S * POWER_W, abs=1e-4)
    assert record["time"]["eval_s"] == pytest.approx(8 * EVAL_S)
    assert record["status"] == "completed" and record["stop_reason"] is None
    assert record["progress"]["steps"] == 40
    run = check_record(record)
    row = dict(summary_rows(run))["time to target"]
    goal_text = "90% accuracy" if metric == "accuracy" else "loss 0.5"
    assert row.startswith(f"reached {goal_text} at step 15 (240 samples): 3.75 s, 165 J")
    assert "time to target" in result.stdout


def test_stop_at_target_ends_the_run_at_that_evaluation(cli, write_config, tmp_path,
                                                        monkeypatch, make_rig) -> None:
    rig = make_rig(True)
    script(monkeypatch, rig, [0.5, 0.7, 0.91, 0.99])
    out = tmp_path / "run"
    config = config_with(write_config, target_accuracy=0.9, stop_at_target=True,
                         checkpoint_every=15)
    result = cli("train", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    assert record["status"] == "completed" and record["stop_reason"] == "target_reached"
    assert "stopped at step 15: 91% accuracy reached the target (90% accuracy)" == \
        record["stop_detail"]
    assert record["progress"]["steps"] == 15 and record["files"]["weights"] == \
        "model.safetensors"
    target = record["target"]
    assert target["steps_to_target"] == 15 and len(target["evaluations"]) == 3
    # Time and energy to target are exactly the training windows': warm-up and measured.
    windows, energy = record["time"], record["energy"]["windows"]
    assert target["time_to_target_s"] == pytest.approx(windows["warmup_s"]
                                                       + windows["measured_s"])
    assert target["energy_to_target_j"] == pytest.approx(energy["warmup"] + energy["measured"])
    assert target["energy_to_target_j"] == pytest.approx(15 * STEP_S * POWER_W, abs=1e-4)
    bounds = [device["uncertainty_j"] for window in ("warmup", "measured")
              for device in record["windows"][window]["energy"] if device["energy_j"] is not None]
    bound = target["energy_to_target_uncertainty_j"]
    assert bound is None if None in bounds else bound == pytest.approx(sum(bounds))
    assert record["eval"]["step"] == 15 and record["eval"]["accuracy"] == 0.91
    check_record(record)


def test_a_target_never_reached_is_null_with_the_reason(cli, write_config, tmp_path,
                                                        monkeypatch, make_rig) -> None:
    rig = make_rig(True)
    script(monkeypatch, rig, [0.5, 0.6, 0.85, 0.7, 0.8, 0.8, 0.84, 0.83])
    out = tmp_path / "run"
    result = cli("train", config_with(write_config, target_accuracy=0.9, stop_at_target=True),
                 "--out", out)
    assert result.exit_code == 0, result.stderr
    record = load_run(out)
    target = record["target"]
    assert record["status"] == "completed" and record["stop_reason"] is None
    assert target["reached"] is False and len(target["evaluations"]) == 8
    why = "not reached in 8 evaluations (best 85% accuracy at step 15; target 90% accuracy)"
    for key in ("steps_to_target", "samples_to_target", "time_to_target_s",
                "energy_to_target_j"):
        assert target[key] is None and target["reasons"][key] == why
    assert dict(summary_rows(check_record(record)))["time to target"] == f"n/a ({why})"


def test_unmeasured_energy_is_null_with_the_reason_never_zero(cli, write_config, tmp_path,
                                                              monkeypatch, make_rig) -> None:
    rig = make_rig(False)  # the default here: no powercap interface at all
    script(monkeypatch, rig, [0.95])
    out = tmp_path / "run"
    result = cli("train", config_with(write_config, target_accuracy=0.9, stop_at_target=True),
                 "--out", out)
    assert result.exit_code == 0, result.stderr
    target = load_run(out)["target"]
    assert target["steps_to_target"] == 5 and target["time_to_target_s"] == pytest.approx(
        5 * STEP_S)
    assert target["energy_to_target_j"] is None
    assert "powercap" in target["reasons"]["energy_to_target_j"]
    assert target["evaluations"][0]["energy_j"] is None
    row = dict(summary_rows(check_record(load_run(out))))["time to target"]
    assert row.startswith("reached 90% accuracy at step 5 (80 samples): 1.25 s, energy n/a (")


def test_epoch_end_evaluations_without_eval_every(cli, write_config, tmp_path, monkeypatch,
                                                  make_rig) -> None:
    rig = make_rig(True)
    script(monkeypatch, rig, [0.2, 0.95, 0.96])
    config = write_config(CONFIG.replace("  eval_every: 5\n", "  target_accuracy: 0.9\n")
                          .replace("max_steps: 40", "max_steps: 48"))
    out = tmp_path / "run"
    assert cli("train", config, "--out", out).exit_code == 0
    target = load_run(out)["target"]  # 16 steps per epoch of 256 samples
    assert [e["step"] for e in target["evaluations"]] == [16, 32, 48]
    assert target["steps_to_target"] == 32
    assert target["time_to_target_s"] == pytest.approx(32 * STEP_S)


def test_the_last_step_is_evaluated_too(cli, write_config, tmp_path, monkeypatch,
                                        make_rig) -> None:
    rig = make_rig(True)
    script(monkeypatch, rig, [0.1] * 2 + [0.95])
    config = config_with(write_config, target_accuracy=0.9)
    out = tmp_path / "run"
    assert cli("train", config, "--out", out, "--set", "train.max_steps=13").exit_code == 0
    target = load_run(out)["target"]
    assert [e["step"] for e in target["evaluations"]] == [5, 10, 13]
    assert target["steps_to_target"] == 13


@pytest.mark.parametrize(("sets", "message"), [
    (["train.target_accuracy=0.9", "train.target_loss=0.5"],
     "train: target_accuracy and target_loss are both set; a run has one quality target"),
    (["train.stop_at_target=true"], "train: stop_at_target is true but no target is set"),
    (["train.target_accuracy=0.9", "data.test_size=0"],
     "train.target_accuracy: data 'digits' has no test split to evaluate the target on"),
    (["train.target_perplexity=3"],
     "train.target_perplexity: perplexity is a language-model metric and data 'digits' is a "
     "classification task"),
    (["train.target_accuracy=1.5"], "train.target_accuracy: 1.5 is not allowed"),
    (["train.target_loss=0"], "train.target_loss: 0 is not allowed"),
    (["train.target_perplexity=0.5"], "train.target_perplexity: 0.5 is not allowed"),
    (["train.eval_every=0"], "train.eval_every: 0 is not allowed"),
])
def test_config_mistakes_are_refused_before_training(cli, write_config, tmp_path, sets,
                                                     message) -> None:
    out = tmp_path / "run"
    args = [arg for s in sets for arg in ("--set", s)]
    result = cli("train", write_config(CONFIG), "--out", out, *args)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_resume_keeps_earlier_evaluations_and_reaches_the_target_later(
        write_config, tmp_path, monkeypatch, make_rig) -> None:
    from bigbench.train_setup import resolve_training

    rig = make_rig(True)
    script(monkeypatch, rig, [0.3, 0.5, 0.7, 0.95, 0.5, 0.6, 0.97, 0.97])
    config, _ = resolve_training(config_with(write_config, target_accuracy=0.9), [])
    out = tmp_path / "run"
    stop = StopRequest()

    def interrupt_at_12(step: int) -> None:
        if step == 12:
            stop.signal = signal.SIGINT  # what the handler of a first Ctrl-C does

    first = trainer.run_training(config, out=out, stop=stop,
                                 callbacks=TrainCallbacks(on_step=interrupt_at_12))
    assert first.exit_code == 130 and first.record["status"] == "interrupted"
    target = first.record["target"]
    assert not target["reached"] and [e["step"] for e in target["evaluations"]] == [5, 10]
    assert "the run stopped early at step 12 (interrupted)" in target["reasons"][
        "steps_to_target"]
    rig.advance(100.0)  # time between the processes is no training time
    config, resume = resolve_training(None, [], resume=out)
    second = trainer.run_training(config, out=None, stop=StopRequest(), resume=resume)
    assert second.exit_code == 0
    record = load_run(out)
    target = record["target"]
    assert [e["step"] for e in target["evaluations"]] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [e["value"] for e in target["evaluations"]][:2] == [0.3, 0.5]
    assert target["steps_to_target"] == 20 and target["samples_to_target"] == 20 * BATCH
    # 12 steps before the interruption (from the checkpoint) and 8 after it.
    assert target["time_to_target_s"] == pytest.approx(20 * STEP_S)
    assert target["energy_to_target_j"] == pytest.approx(20 * STEP_S * POWER_W, abs=1e-3)
    assert len(record["segments"]) == 2
    check_record(record)


def test_the_engine_evaluates_between_windows_before_the_checkpoint() -> None:
    import torch

    from bigbench.engine import StepEngine, train_phases
    from bigbench.measuring.energy.setup import null_monitor
    from bigbench.measuring.timing import StepTimer

    clock, cpu, events = FakeClock(), torch.device("cpu"), []
    meter = Meter(cpu, null_monitor("test"), clock=clock)

    def step(batch):  # noqa: ANN001, ANN202
        clock.advance(STEP_S)
        return torch.tensor(1.0)

    def evaluate() -> None:
        # Every training window is closed: an evaluation never counts as training time.
        assert meter.open_since("warmup") is None and meter.open_since("measured") is None
        with meter.window("eval"):
            clock.advance(EVAL_S)
        events.append(("eval", engine.state.step))

    engine = StepEngine(step, meter, StepTimer(cpu, clock=clock), phases=train_phases(12, 2),
                        log_every=4, eval_every=3, on_eval=evaluate, checkpoint_every=6,
                        on_checkpoint=lambda: events.append(("checkpoint", engine.state.step)))
    engine.run([(torch.zeros(2, 3), torch.zeros(2))] * 12, epoch=0)
    assert events == [("eval", 3), ("eval", 6), ("checkpoint", 6), ("eval", 9), ("eval", 12),
                      ("checkpoint", 12)]
    train_s = meter.totals("warmup").time_s + meter.totals("measured").time_s
    assert train_s == pytest.approx(12 * STEP_S)
    assert meter.totals("eval").time_s == pytest.approx(4 * EVAL_S)
    assert engine.timer.durations_s == pytest.approx([STEP_S] * 10)
