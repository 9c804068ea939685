"""Interrupted runs resume exactly; bad checkpoints and resumes are refused clearly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_run
from safetensors.torch import load_file

RESUMABLE = """\
name: res
model: {name: cnn, channels: [4, 8], hidden: [16], dropout: 0.2}
data: {name: digits, size: 256, test_size: 64}
train: {max_steps: 80, batch_size: 16, warmup_steps: 2, log_every: 5, checkpoint_every: 10,
        optimizer: {name: sgd, lr: 0.05, momentum: 0.9}, schedule: {name: cosine}}
device: cpu
"""


INTERRUPTING = Path(__file__).with_name("interrupting.py")


def _train_signalled(config: Path, out: Path, step: int, sig: str = "SIGINT"
                     ) -> subprocess.CompletedProcess:
    """``bigbench train`` in a subprocess that receives ``sig`` right after step ``step``."""
    return subprocess.run([sys.executable, str(INTERRUPTING), "--signal", sig, "--at-step",
                           str(step), "--", "train", str(config), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


@pytest.fixture
def uninterrupted(tmp_path_factory, write_config):
    config = write_config(RESUMABLE, "resumable.yaml")
    out = tmp_path_factory.mktemp("a") / "run"
    assert subprocess.run([sys.executable, "-m", "bigbench", "train", str(config), "--out",
                           str(out)], capture_output=True).returncode == 0
    return config, out


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_and_resumed_equals_uninterrupted(uninterrupted, tmp_path, cli, how) -> None:
    config, reference = uninterrupted
    out = tmp_path / "run"
    proc = _train_signalled(config, out, 25, "SIGINT" if how == "sigint" else "SIGKILL")
    record = load_run(out)
    if how == "sigint":
        assert proc.returncode == 130 and record["status"] == "interrupted", proc.stderr
        stopped_at = record["progress"]["steps"]
        assert stopped_at == 25
    else:  # killed without warning: resume from the last periodic checkpoint (step 20)
        assert proc.returncode == -signal.SIGKILL and record["status"] == "running"
        stopped_at = None
    result = cli("train", "--resume", out)
    assert result.exit_code == 0, result.stderr
    resumed = load_run(out)
    assert resumed["status"] == "completed" and resumed["progress"]["steps"] == 80
    a, b = _weights(reference), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    assert resumed["eval"]["accuracy"] == load_run(reference)["eval"]["accuracy"]
    segments = resumed["segments"]
    assert len(segments) == 2 and segments[1]["steps"][1] == 80
    if stopped_at is not None:
        assert segments[0]["steps"] == [0, stopped_at] and segments[1]["steps"][0] == stopped_at
    assert resumed["throughput"]["measured_samples"] == sum(
        s["measured_samples"] for s in segments)
    # Derived figures come from the same totals as the throughput (no mixed windows).
    flops, throughput = resumed["flops"], resumed["throughput"]
    assert flops["achieved_flops_per_s"] == pytest.approx(
        throughput["samples_per_s"] * flops["train_step_per_sample"])
    assert resumed["resumed"][0]["from_step"] == segments[1]["steps"][0]


def test_resume_refuses_a_different_config_unless_forced(cli, write_config, tmp_path) -> None:
    config = write_config(RESUMABLE.replace("max_steps: 80", "max_steps: 20"))
    out = tmp_path / "run"
    _interrupt_after(config, out, lines=2)
    result = cli("train", "--resume", out, "--set", "train.max_steps=30")
    assert result.exit_code == 2
    assert "differs from the run's" in result.stderr and "train.max_steps: 20 → 30" in result.stderr
    assert load_run(out)["status"] == "interrupted"
    forced = cli("train", "--resume", out, "--set", "train.max_steps=30", "--force")
    assert forced.exit_code == 0, forced.stderr
    record = load_run(out)
    assert record["progress"]["steps"] == 30
    assert record["resumed"][0]["config_changes"] == ["train.max_steps: 20 → 30"]


def _interrupt_after(config: Path, out: Path, lines: int) -> None:
    """Interrupt a run after ``lines`` log intervals (of 5 steps each)."""
    proc = _train_signalled(config, out, 5 * lines)
    assert proc.returncode == 130, proc.stderr


def test_what_cannot_be_resumed(cli, write_config, tmp_path) -> None:
    config = write_config(RESUMABLE.replace("max_steps: 80", "max_steps: 12")
                          .replace("checkpoint_every: 10", "checkpoint_every: null"))
    done = tmp_path / "done"
    assert cli("train", config, "--out", done).exit_code == 0
    assert "already completed" in cli("train", "--resume", done).stderr
    os.remove(done / "run.json")
    assert "not a bigbench run directory" in cli("train", "--resume", done).stderr
    assert "not a directory" in cli("train", "--resume", tmp_path / "nope").stderr
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "done", crashed)
    (crashed / "run.json").write_text(json.dumps({"schema": "bigbench.run/1",
                                                  "status": "running", "config": {}}))
    result = cli("train", "--resume", crashed)
    assert result.exit_code == 2 and "no checkpoint" in result.stderr
    assert cli("train").exit_code == 2


@pytest.mark.parametrize("damage", ["truncate_state", "truncate_weights", "other_model"])
def test_damaged_checkpoints_are_refused_and_nothing_is_overwritten(cli, write_config,
                                                                    tmp_path, damage) -> None:
    config = write_config(RESUMABLE)
    out = tmp_path / "run"
    _interrupt_after(config, out, lines=2)
    checkpoint = out / "checkpoint"
    if damage == "truncate_state":
        data = (checkpoint / "state.pt").read_bytes()
        (checkpoint / "state.pt").write_bytes(data[: len(data) // 2])
    elif damage == "truncate_weights":
        data = (checkpoint / "model.safetensors").read_bytes()
        (checkpoint / "model.safetensors").write_bytes(data[:100])
    else:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(3)}, checkpoint / "model.safetensors", {"step": "10"})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = cli("train", "--resume", out)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert {"truncate_state": "unreadable or truncated",
            "truncate_weights": "unreadable or truncated",
            "other_model": "written by another model"}[damage] in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_skip_step_keeps_weights_finite() -> None:
    from bigbench.config.schema import OptimizerConfig
    from bigbench.data.info import DataInfo
    from bigbench.engine import StepEngine, train_phases
    from bigbench.measuring.energy.setup import null_monitor
    from bigbench.measuring.meter import Meter
    from bigbench.measuring.timing import StepTimer
    from bigbench.models import BuiltModel
    from bigbench.models.family import CNN
    from bigbench.workload.build import workload_from_module
    from bigbench.workload.steps import build_step

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    workload = workload_from_module(BuiltModel(model, "linear", CNN, {}),
                                    DataInfo(sample_shape=(3,), num_classes=2),
                                    torch.device("cpu"),
                                    optimizer=OptimizerConfig(name="sgd", lr=0.1))
    workload.skip_non_finite = True
    step = build_step(workload, "train")
    good = (torch.ones(4, 3), torch.zeros(4, dtype=torch.long))
    bad = (torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long))
    meter = Meter(torch.device("cpu"), null_monitor("t"))
    engine = StepEngine(step, meter, StepTimer(torch.device("cpu")),
                        phases=train_phases(6, 0), log_every=3, skip_non_finite=True)
    engine.run([good, bad, good, bad, bad, good], epoch=0)
    assert engine.state.stop_reason is None and engine.state.skipped_steps == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert engine.state.last_loss is not None and engine.state.last_loss == engine.state.last_loss


def test_out_of_memory_in_training_is_recorded(cli, write_config, tmp_path, monkeypatch) -> None:
    from bigbench.models import cnn

    calls = {"n": 0}
    original = cnn.ConvClassifier.forward

    def forward(self, x):
        calls["n"] += 1
        if calls["n"] > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return original(self, x)

    monkeypatch.setattr(cnn.ConvClassifier, "forward", forward)
    config = write_config(RESUMABLE)
    result = cli("train", config, "--out", tmp_path / "run")
    assert result.exit_code == 1
    record = load_run(tmp_path / "run")
    assert record["status"] == "failed" and record["stop_reason"] == "out_of_memory"
    assert record["error"]["batch_size"] == 16 and "lower train.batch_size" in record["error"][
        "hint"]
    assert "batch size 16" in record["stop_detail"]


def test_disk_full_stops_with_a_clear_error_and_intact_files(cli, write_config, tmp_path,
                                                             monkeypatch) -> None:
    import errno

    from bigbench import results

    config = write_config(RESUMABLE)
    out = tmp_path / "run"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 3:  # config.yaml and the first run.json are written; then the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(results.os, "fsync", fsync)
    result = cli("train", config, "--out", out)
    assert result.exit_code == 2
    assert "disk full" in result.stderr or "No space left" in result.stderr
    assert "Traceback" not in result.stderr
    record = load_run(out)  # still a complete, valid JSON document
    assert record["schema"] == "bigbench.run/1"
    assert (out / "config.yaml").read_text().startswith("name: res")
    assert not [p for p in out.rglob("*.tmp")]


def test_resume_uses_the_original_thread_count(cli, write_config, tmp_path) -> None:
    config = write_config(RESUMABLE)
    out = tmp_path / "run"
    _interrupt_after(config, out, lines=2)  # a fresh process: torch's default thread count
    original = load_run(out)["performance"]["threads"]
    torch.set_num_threads(1)  # this process differs; the resume must not inherit that
    assert cli("train", "--resume", out).exit_code == 0
    assert load_run(out)["performance"]["threads"] == original


def test_a_bug_in_a_derived_figure_keeps_the_weights_and_the_record(write_config, tmp_path,
                                                                    monkeypatch) -> None:
    from bigbench import run_record
    from bigbench.config import load_config
    from bigbench.interrupt import StopRequest
    from bigbench.trainer import run_training

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a derived figure divided by zero")

    monkeypatch.setattr(run_record, "flops_section", broken)
    config = load_config(write_config(RESUMABLE.replace("max_steps: 80", "max_steps: 12")))
    out = tmp_path / "run"
    with pytest.raises(ZeroDivisionError):  # a real bug keeps its traceback...
        run_training(config, out=out, stop=StopRequest())
    record = load_run(out)  # ...and the run keeps its files
    assert record["status"] == "failed" and record["error"]["type"] == "ZeroDivisionError"
    assert "assembling run.json failed" in record["stop_detail"]
    assert record["files"]["weights"] == "model.safetensors"
    assert (out / "model.safetensors").is_file()


def test_weights_that_cannot_be_written_still_leave_a_record(cli, write_config, tmp_path,
                                                             monkeypatch) -> None:
    from bigbench.errors import OutputError
    from bigbench.run_writer import RunWriter

    def full(self, model):
        raise OutputError(f"{self.run_dir}/model.safetensors: disk full while writing")

    monkeypatch.setattr(RunWriter, "save_weights", full)
    out = tmp_path / "run"
    result = cli("train", write_config(RESUMABLE.replace("max_steps: 80", "max_steps: 12")),
                 "--out", out)
    assert result.exit_code == 2 and "disk full" in result.stderr
    record = load_run(out)
    assert record["progress"]["steps"] == 12 and record["files"]["weights"] is None
    assert record["error"]["type"] == "write_error" and "disk full" in record["error"]["message"]
