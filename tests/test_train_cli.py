"""``bigbench train`` end to end through the CLI: run directory, run.json, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY_CNN, load_run
from safetensors.torch import load_file

from bigbench.config import load_config
from bigbench.data import build_data
from bigbench.models import build_model


@pytest.fixture
def tiny(write_config):
    return write_config(TINY_CNN)


def test_train_writes_a_complete_run_directory(cli, tiny, tmp_path) -> None:
    out = tmp_path / "run"
    result = cli("train", tiny, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "bug in bigbench" not in result.stderr  # run.json matches its own schema
    assert "throughput" in result.stdout and "samples/s" in result.stdout
    record = load_run(out)
    assert record["schema"] == "bigbench.run/1" and record["status"] == "completed"
    assert record["config"]["train"]["max_steps"] == 12
    env = record["env"]
    for key in ("python", "torch", "bigbench", "os", "cpu", "device", "git_commit"):
        assert key in env
    assert record["model"]["name"] == "cnn" and record["model"]["params"] > 0
    assert record["model"]["args"]["channels"] == [4, 8]
    tp = record["throughput"]
    assert tp["measured_steps"] == 10 and tp["warmup_steps"] == 2
    assert tp["measured_samples"] == 160
    assert tp["samples_per_s"] == pytest.approx(160 / tp["measured_time_s"])
    assert 0 < tp["step_time_s"]["p50"] <= tp["step_time_s"]["p90"] <= tp["step_time_s"]["p99"]
    mem = record["memory"]
    assert mem["host_peak_rss_bytes"] > 10 * 2**20
    assert mem["device_peak_allocated_bytes"] is None and "CPU" in mem["reasons"][
        "device_peak_allocated_bytes"]
    assert record["energy"]["status"] == "unavailable" and record["energy"]["reason"]
    assert 0 <= record["eval"]["accuracy"] <= 1 and math.isfinite(record["eval"]["loss"])
    assert record["time"]["wall_s"] > 0 and record["time"]["startup_s"] > 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["event"] == "train"] == [4, 8, 12]
    assert [x["event"] for x in lines][-1] == "eval"
    # The weights load back into the same architecture.
    cfg = load_config(out / "config.yaml")
    model = build_model(cfg.model, build_data(cfg.data, torch.device("cpu")).info).module
    model.load_state_dict(load_file(out / "model.safetensors"))


def test_same_seed_same_weights(cli, tiny, tmp_path) -> None:
    for name in ("a", "b"):
        assert cli("train", tiny, "--out", tmp_path / name, "--seed", "5").exit_code == 0
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_json_output_is_run_json(cli, tiny, tmp_path) -> None:
    result = cli("train", tiny, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == load_run(tmp_path / "run")


def test_default_run_directory_under_output_dir(cli, tiny, tmp_path) -> None:
    runs = tmp_path / "many"
    for _ in range(2):
        assert cli("train", tiny, "--set", f"output.dir={runs}").exit_code == 0
    made = sorted(p.name for p in runs.iterdir())
    assert len(made) == 2 and all("-tiny" in name for name in made)


def test_rnn_tokens_per_second(cli, write_config, tmp_path) -> None:
    path = write_config("""\
        name: r
        model: {name: gru, hidden_size: 8}
        data: {name: tokens, size: 128, test_size: 32, seq_len: 6}
        train: {max_steps: 6, batch_size: 16, warmup_steps: 1, log_every: 2}
        device: cpu
        """)
    assert cli("train", path, "--out", tmp_path / "r").exit_code == 0
    tp = load_run(tmp_path / "r")["throughput"]
    assert tp["tokens_per_s"] == pytest.approx(tp["samples_per_s"] * 6)


def _usage_error(result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


def test_bad_inputs_write_nothing(cli, write_config, tmp_path) -> None:
    runs = tmp_path / "runs"
    npz = write_config(f"""\
        name: f
        model: {{name: cnn}}
        data: {{name: npz, path: {tmp_path / 'missing.npz'}}}
        output: {{dir: {runs}}}
        device: cpu
        """)
    assert "does not exist" in _usage_error(cli("train", npz))
    assert not runs.exists()


def test_cuda_without_cuda(cli, tiny) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "CUDA is not available" in _usage_error(cli("train", tiny, "--device", "cuda"))
    assert "not a device" in _usage_error(cli("train", tiny, "--device", "gpu"))


def test_out_problems(cli, tiny, tmp_path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("keep me")
    assert "is a file" in _usage_error(cli("train", tiny, "--out", a_file))
    assert a_file.read_text() == "keep me"
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "run.json").write_text("old")
    assert "not empty" in _usage_error(cli("train", tiny, "--out", existing))
    assert (existing / "run.json").read_text() == "old"
    assert "does not exist" in _usage_error(cli("train", tiny, "--out", tmp_path / "a" / "b"))


def test_plans_that_measure_nothing_are_refused(cli, write_config, tmp_path) -> None:
    path = write_config("""\
        model: {name: cnn, channels: [2], hidden: []}
        data: {name: digits, size: 40, test_size: 0}
        train: {epochs: 1, batch_size: 8, warmup_steps: 10}
        device: cpu
        """)
    assert "must be less than the run's 5 steps" in _usage_error(
        cli("train", path, "--out", tmp_path / "x"))
    assert "larger than the training set" in _usage_error(
        cli("train", path, "--set", "train.batch_size=64", "--out", tmp_path / "y"))
    assert not (tmp_path / "x").exists()


def test_diverging_run_fails_with_the_step(cli, write_config, tmp_path) -> None:
    path = write_config(TINY_CNN.replace("lr: 0.05", "lr: 900"))
    result = cli("train", path, "--out", tmp_path / "nan")
    assert result.exit_code == 1
    record = load_run(tmp_path / "nan")
    assert record["status"] == "failed" and record["stop_reason"] == "non_finite_loss"
    assert f"up to step {record['progress']['steps']}" in record["stop_detail"]
    assert record["progress"]["steps"] < 12 and record["progress"]["last_loss"] is None


def test_a_diverged_model_with_skipped_steps_still_writes_its_record(cli, write_config,
                                                                    tmp_path) -> None:
    config = write_config(TINY_CNN.replace("lr: 0.05", "lr: 1000.0"))
    result = cli("train", config, "--out", tmp_path / "run", "--set", "train.on_nan=skip_step",
                 "--set", "train.max_steps=16")
    assert result.exit_code == 0, result.stderr
    from bigbench.records import load_run as load_typed

    record = load_typed(tmp_path / "run")  # valid JSON, valid against the schema
    assert record.status == "completed" and record.progress.skipped_steps > 0
    assert record.eval.loss is None  # the outputs overflowed: null with why, never NaN
    assert "not finite" in record.eval.reasons["loss"]


def test_no_test_split_reports_why(cli, write_config, tmp_path) -> None:
    path = write_config(TINY_CNN.replace("test_size: 64", "test_size: 0"))
    assert cli("train", path, "--out", tmp_path / "r").exit_code == 0
    ev = load_run(tmp_path / "r")["eval"]
    assert ev["accuracy"] is None and "no test split" in ev["reasons"]["accuracy"]


@pytest.mark.parametrize(("text", "message"), [
    ("model: {name: cnn}\ndata: {name: synthetic, size: 100000000}\n", "lower data.size"),
    ("model: {name: cnn, hidden: [1000000, 1000000]}\ndata: {name: digits, size: 100}\n",
     "use smaller model.channels"),
])
def test_sizes_that_cannot_fit_are_refused_before_allocating(cli, write_config, tmp_path,
                                                             text, message) -> None:
    result = cli("train", write_config(text + "device: cpu\n"), "--out", tmp_path / "r")
    assert result.exit_code == 2 and message in result.stderr and "GiB" in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_record_that_breaks_its_schema_is_reported_not_fatal(cli, tiny, tmp_path,
                                                               monkeypatch) -> None:
    from bigbench import run_record

    original = run_record.finish_record

    def finish(record, *args):
        original(record, *args)
        record["progress"]["steps"] = "twelve"  # a writer bug: the schema says integer
        return record

    monkeypatch.setattr(run_record, "finish_record", finish)
    monkeypatch.setattr("bigbench.trainer.finish_record", finish)
    result = cli("train", tiny, "--out", tmp_path / "run")
    assert result.exit_code == 0
    assert "progress.steps" in result.stderr and "bug in bigbench" in result.stderr
    assert load_run(tmp_path / "run")["status"] == "completed"

