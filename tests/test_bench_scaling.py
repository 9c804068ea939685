"""bench --nproc-per-node: the scaling table (a real 1- and 2-rank run on CPU), its arithmetic
on fabricated run.json figures, and the refusals before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import undeclared_keys
from rich.console import Console

import bigbench
from bigbench.benchmark import scaling
from bigbench.benchmark.session import BenchArgs, check_args
from bigbench.errors import ConfigError
from bigbench.records import BenchDocument, Scaling, json_schema

ROOT = Path(__file__).resolve().parents[1]

CNN = """\
name: scale
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 512, test_size: 64}
train:
  batch_size: 8
  log_every: 3
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
device: cpu
"""


def _bigbench(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "bigbench", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


# --- a real run: 1 and 2 CPU ranks ------------------------------------------------------------

@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    folder = tmp_path_factory.mktemp("scaling")
    config = folder / "cnn.yaml"
    config.write_text(CNN)
    out = folder / "bench"
    result = _bigbench("bench", config, "--device", "cpu", "--nproc-per-node", "1,2",
                       "--steps", 4, "--warmup", 1, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    on_disk = json.loads((out / "bench.json").read_text())
    return out, on_disk, json.loads(result.stdout)


def test_scaling_run_writes_a_valid_bench_json(scaled) -> None:
    out, document, printed = scaled
    assert printed == document  # --json prints bench.json
    jsonschema.Draft202012Validator(json_schema("bench")).validate(document)
    typed = BenchDocument.model_validate(document)
    assert undeclared_keys(typed) == []
    assert document["status"] == "completed" and document["points"] == []
    assert document["plan"]["steps"] == 4 and document["plan"]["warmup"] == 1
    section = document["scaling"]
    assert section["world_sizes"] == [1, 2] and section["batch_size"] == 8
    assert section["warmup_steps"] == 1 and section["measured_steps"] == 4
    assert [s["world_size"] for s in section["sizes"]] == [1, 2]
    assert all(s["status"] == "ok" for s in section["sizes"])
    assert (out / "scaling" / "config.yaml").is_file()


def test_scaling_figures_are_consistent(scaled) -> None:
    _, document, _ = scaled
    one, two = document["scaling"]["sizes"]
    for entry in (one, two):
        n = entry["world_size"]
        assert entry["global_batch_size"] == n * 8
        assert entry["speedup"] == pytest.approx(entry["samples_per_s"] / one["samples_per_s"])
        assert entry["efficiency"] == pytest.approx(entry["speedup"] / n)
        assert entry["efficiency"] == pytest.approx(
            entry["samples_per_s"] / (n * one["samples_per_s"]))
        assert entry["samples_per_s"] == pytest.approx(entry["samples"] / entry["time_s"])
        assert entry["step_time_s"]["p50"] > 0
        # No energy meter in tests: null with the reason, never 0.
        assert entry["j_per_sample"] is None and "energy not measured" in \
            entry["reasons"]["j_per_sample"]
    assert one["speedup"] == 1.0 and one["efficiency"] == 1.0
    assert one["samples"] == 4 * 8 and two["samples"] == 2 * 4 * 8
    assert not one["shares_cores"] and two["shares_cores"]
    assert any("ranks share this host's cores" in note for note in document["scaling"]["notes"])


def test_each_size_is_a_real_training_job(scaled) -> None:
    _, document, _ = scaled
    one, two = document["scaling"]["sizes"]
    single = json.loads((Path(one["run_dir"]) / "run.json").read_text())
    job = json.loads((Path(two["run_dir"]) / "run.json").read_text())
    assert single["status"] == job["status"] == "completed"
    assert "distributed" not in single and job["distributed"]["world_size"] == 2
    assert single["progress"]["steps"] == job["progress"]["steps"] == 5  # warm-up + steps
    assert one["samples_per_s"] == single["throughput"]["samples_per_s"]
    assert two["samples_per_s"] == job["distributed"]["samples_per_s"]
    assert two["global_batch_size"] == job["distributed"]["global_batch_size"] == 16
    assert two["step_time_s"] == job["distributed"]["step_time_s"]
    assert single["config"]["model"]["channels"] == [4, 8]  # the config's model and data


def test_scaling_tables(scaled) -> None:
    _, document, _ = scaled
    text = scaling.markdown(document)
    lines = text.splitlines()
    assert lines[0] == "| " + " | ".join(scaling.HEADERS) + " |"
    assert lines[2].startswith("| 1 | 8 | ") and "1.00×" in lines[2] and "100%" in lines[2]
    assert lines[3].startswith("| 2 | 16 | ") and lines[3].endswith("ok * |")
    assert "- ranks share this host's cores" in text and "J/sample n/a: energy not" in text
    console = Console(width=200, record=True)
    console.print(scaling.console_table(document, "scaling"))
    assert "efficiency" in console.export_text()


# --- the arithmetic on fabricated run.json figures --------------------------------------------

def _times(p50: float) -> dict:
    return {"p50": p50, "p90": p50, "p99": p50, "mean": p50, "min": p50, "max": p50}


def _single(rate: float, j: float | None = None) -> dict:
    energy = {"status": "measured" if j else "unavailable", "j_per_sample": j,
              "j_per_sample_uncertainty": j / 100 if j else None, "quality": "ok" if j else None,
              "reason": None if j else "RAPL: absent",
              "devices": [] if j else [{"kind": "cpu", "name": "RAPL", "measured": False,
                                        "energy_j": None, "reason": "absent"}],
              "reasons": {} if j else {"j_per_sample": "RAPL: absent"}}
    return {"status": "completed", "env": {"torch_threads": 2},
            "config": {"train": {"batch_size": 8}},
            "throughput": {"samples_per_s": rate, "measured_samples": 80,
                           "measured_time_s": 80 / rate, "step_time_s": _times(0.01),
                           "reasons": {"tokens_per_s": "inputs are not sequences"}},
            "energy": energy}


def _job(world: int, rate: float, j: float | None = None) -> dict:
    record = _single(rate, j)
    record["distributed"] = {
        "world_size": world, "samples": 80 * world, "time_s": 80 * world / rate,
        "samples_per_s": rate, "step_time_s": _times(0.02), "global_batch_size": 8 * world,
        "communication_share": 0.25 if world == 2 else None,
        "reasons": {} if world == 2 else {"communication_share": "not measured under fsdp"},
        "energy": {**record["energy"], "reason": "host cpu RAPL: absent" if not j else None}}
    return record


def _entry(world: int, record: dict | None, status: str = "ok", cores: int = 8) -> dict:
    return scaling.size_entry(world, 8, record, status=status, run_dir=f"n{world}",
                              shares=scaling.shares_cores(world, "cuda", cores))


def _section(sizes: list[dict]) -> dict:
    return {"config": "c.yaml", "device": "cuda", "batch_size": 8, "precision": "fp32",
            "warmup_steps": 1, "measured_steps": 10,
            "world_sizes": [s["world_size"] for s in sizes], "physical_cores": 8, "notes": [],
            "sizes": sizes}


def test_speedup_and_efficiency_from_run_json_figures() -> None:
    sizes = [_entry(1, _single(100.0, 0.5)), _entry(2, _job(2, 180.0, 0.00055)),
             _entry(4, _job(4, 300.0, 1.5))]
    scaling.add_ratios(sizes)
    assert [s["speedup"] for s in sizes] == pytest.approx([1.0, 1.8, 3.0])
    assert [s["efficiency"] for s in sizes] == pytest.approx([1.0, 0.9, 0.75])
    assert [s["global_batch_size"] for s in sizes] == [8, 16, 32]
    assert [s["j_per_sample"] for s in sizes] == [0.5, 0.00055, 1.5]
    assert sizes[2]["step_time_s"] == _times(0.02) and sizes[0]["torch_threads"] == 2
    assert all("speedup" not in s["reasons"] and "j_per_sample" not in s["reasons"]
               for s in sizes)
    assert scaling.scaling_notes("cuda", sizes, 8) == []
    cells = scaling.rows(_section(sizes))
    assert cells[1] == ["2", "16", "180", "1.80×", "90%", "0.550 mJ", "20.00 ms", "25%", "ok"]
    assert cells[2][5] == "1.500 J" and cells[0][5] == "500.000 mJ"
    # One rank has no all-reduce; a job that did not time it says why in a note.
    assert cells[0][7] == "—" and cells[2][7] == "n/a"
    assert "all-reduce n/a: not measured under fsdp" in scaling.footnotes(_section(sizes))


def test_energy_not_measured_is_null_with_one_reason_for_all_sizes() -> None:
    sizes = [_entry(1, _single(100.0)), _entry(2, _job(2, 150.0))]
    scaling.add_ratios(sizes)
    reasons = {s["reasons"]["j_per_sample"] for s in sizes}
    assert reasons == {"energy not measured: RAPL: absent"}  # the same words for both jobs
    assert all(s["j_per_sample"] is None and s["energy_status"] == "unavailable"
               for s in sizes)


def test_partial_energy_is_marked_with_what_it_leaves_out() -> None:
    record = _single(100.0, 0.0018)
    record["energy"].update(status="partial", reason="RAPL: absent", devices=[
        {"kind": "gpu", "name": "H200", "measured": True, "energy_j": 10.0},
        {"kind": "cpu", "name": "RAPL", "measured": False, "energy_j": None,
         "reason": "absent"}])
    sizes = [_entry(1, record)]
    scaling.add_ratios(sizes)
    assert sizes[0]["energy_reason"] == "RAPL: absent" and sizes[0]["j_per_sample"] == 0.0018
    assert scaling.rows(_section(sizes))[0][5] == "1.800 mJ (partial)"
    assert "J/sample (partial) leaves out RAPL: absent" in scaling.footnotes(_section(sizes))
    typed = Scaling.model_validate(_section(sizes))
    assert typed.sizes[0].energy_reason == "RAPL: absent"


def test_no_one_rank_job_leaves_the_ratios_null_with_the_reason() -> None:
    sizes = [_entry(2, _job(2, 180.0)), _entry(4, _job(4, 300.0))]
    scaling.add_ratios(sizes)
    assert all(s["speedup"] is None and s["efficiency"] is None for s in sizes)
    assert "no 1-rank job" in sizes[0]["reasons"]["speedup"]
    assert any("no 1-rank job" in n for n in scaling.scaling_notes("cuda", sizes, 8))


def test_a_failed_job_has_no_figures_and_a_failed_baseline_no_ratios() -> None:
    sizes = [_entry(1, None, status="failed"), _entry(2, _job(2, 180.0))]
    sizes[0]["error"] = "rank 0: boom"
    scaling.add_ratios(sizes)
    assert sizes[0]["samples_per_s"] is None and sizes[0]["global_batch_size"] == 8
    assert sizes[1]["speedup"] is None
    assert sizes[1]["reasons"]["speedup"] == "the 1-rank job's throughput was not measured"
    assert scaling.failed_sizes({"scaling": {"sizes": sizes}}) == ["scaling/n1"]


def test_how_a_job_ended(tmp_path) -> None:
    log = tmp_path / "n2.log"
    log.write_text("launching 2 ranks\nrank 1 failed: RuntimeError: boom\nthe job failed; "
                   "what was written is in x\n")
    assert scaling._outcome(_job(2, 100.0), 0, False, log) == ("ok", None)
    assert scaling._outcome(None, 1, False, log) == ("failed",
                                                    "rank 1 failed: RuntimeError: boom")
    failed = {**_job(2, 100.0), "status": "failed",
              "rank_failures": [{"rank": 1, "error": "boom"}]}
    assert scaling._outcome(failed, 1, False, log) == ("failed", "rank 1: boom")
    assert scaling._outcome({**failed, "status": "interrupted"}, 130, True, log)[0] == \
        "interrupted"
    assert scaling._outcome(None, 130, True, log) == ("interrupted", None)
    entry = scaling.size_entry(2, 8, None, status="failed", error="rank 1: boom")
    assert entry["reasons"]["samples_per_s"] == "the job failed: rank 1: boom"


def test_ranks_share_cores_on_cpu_or_above_the_physical_cores() -> None:
    assert not scaling.shares_cores(1, "cpu", 2)
    assert scaling.shares_cores(2, "cpu", 16)
    assert not scaling.shares_cores(4, "cuda", 16)
    assert scaling.shares_cores(4, "cuda", 2)
    sizes = [_entry(1, _single(100.0), cores=2), _entry(4, _job(4, 300.0), cores=2)]
    notes = scaling.scaling_notes("cuda", sizes, 2)
    assert notes and notes[0].startswith("ranks share this host's cores: up to 4 ranks on 2 ")


# --- the session, interruption ------------------------------------------------------------------

def _args(**given: object) -> BenchArgs:
    return BenchArgs(**{"device": "cpu", "has_config": True, **given})  # type: ignore[arg-type]


def test_the_configs_bench_section_asks_for_scaling(tmp_path) -> None:
    from bigbench.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(CNN + "bench: {nproc_per_node: [4, 1, 2], steps: 3, warmup: 1}\n")
    config = load_config(path)
    args = _args()
    flags = check_args(args)
    assert scaling.requested_sizes(config, flags) == [1, 2, 4]
    assert scaling.requested_sizes(config, check_args(_args(nproc_per_node="2"))) == [2]
    session = scaling.build_scaling(config, args, flags, tmp_path / "out")
    assert session.sizes == [1, 2, 4] and session.measured_steps == 3
    job = session.job
    assert job.train.max_steps == 4 and job.train.warmup_steps == 1
    assert job.train.batch_size == 8 and job.device == "cpu"
    assert job.output.save_weights is False
    assert session.config_path.read_text().startswith("name: scale")


def test_an_interrupted_run_keeps_the_sizes_measured(tmp_path) -> None:
    from bigbench.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(CNN)
    args = _args(nproc_per_node="1,2,4", steps=3)
    session = scaling.build_scaling(load_config(path), args, check_args(args),
                                    tmp_path / "out")
    ran: list[int] = []

    def job(session, size, should_stop):
        ran.append(size)
        return scaling.size_entry(size, 8, _job(size, 100.0 * size) if size > 1 else
                                  _single(100.0), status="ok", run_dir=f"n{size}")

    run = scaling.run_scaling(session, should_stop=lambda: len(ran) >= 2, run_job=job)
    on_disk = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert ran == [1, 2] and on_disk["status"] == "interrupted" == run.document["status"]
    assert [s["world_size"] for s in on_disk["scaling"]["sizes"]] == [1, 2]
    BenchDocument.model_validate(on_disk)
    assert run.warnings == []


# --- refusals: one line, exit 2, nothing runs ---------------------------------------------------

@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CNN)
    return path


@pytest.mark.parametrize("extra,message", [
    (["--models", "cnn"], "measures one setting, the CONFIG's model: leave out --models"),
    (["--batch-sizes", "8,16"], "give one --batch-sizes value, not 2"),
    (["--precision", "fp32,bf16"], "give one --precision value, not 2"),
    (["--mode", "train,infer"], "give one --mode value, not 2"),
    (["--mode", "infer"], "--mode can only be train"),
    (["--repeats", "3", "--isolate"], "--isolate, --repeats do not apply"),
    (["--duration", "1"], "--duration does not apply"),
], ids=["models", "batches", "precisions", "modes", "infer", "repeats", "duration"])
def test_scaling_measures_one_setting(cli, tiny, tmp_path, extra, message) -> None:
    result = cli("bench", tiny, "--nproc-per-node", "1,2", "--out", tmp_path / "out", *extra)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_scaling_refusals(cli, tiny, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    cases = [
        (["bench", "--device", "cpu", "--nproc-per-node", "1,2"],
         "--nproc-per-node measures how a CONFIG's training job scales: give CONFIG"),
        (["bench", tiny, "--nproc-per-node", "1,65"],
         "--nproc-per-node: 65 is not a positive integer up to 64"),
        (["bench", tiny, "--nproc-per-node", "1,2", "--set", "bench.duration_s=2"],
         "bench.duration_s is set, but --nproc-per-node runs"),
        (["bench", tiny, "--set", "bench.nproc_per_node=[1,2]", "--models", "cnn"],
         "bench.nproc_per_node measures one setting"),
    ]
    for args, message in cases:
        result = cli(*args, "--out", out)
        assert result.exit_code == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr, result.stderr
        assert not out.exists()


def test_more_ranks_than_gpus_is_refused(cli, tiny, tmp_path, monkeypatch) -> None:
    import torch

    from bigbench import devices

    monkeypatch.setattr(devices, "resolve", lambda spec: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    result = cli("bench", tiny, "--device", "cuda", "--nproc-per-node", "1,2,4", "--out",
                 tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --nproc-per-node 4: 4 ranks need as many GPUs "
                                     "but this machine has 2; measure world sizes up to 2")
    assert not (tmp_path / "out").exists()


def test_the_api_refuses_the_same(tiny, tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        bigbench.bench(tiny, device="cpu", nproc_per_node=[1, 2], batch_sizes=[8, 16],
                       out=tmp_path / "out")
    assert caught.value.problems == (
        "nproc_per_node measures one setting: give one batch_sizes value, not 2",)
    with pytest.raises(ConfigError, match="nproc_per_node measures how a CONFIG"):
        bigbench.bench(device="cpu", nproc_per_node="1,2")
    with pytest.raises(ConfigError, match="up to 64"):
        bigbench.bench(tiny, device="cpu", nproc_per_node=128)
    assert not (tmp_path / "out").exists()


def test_a_config_cannot_ask_for_more_than_64_ranks(cli, tiny) -> None:
    result = cli("config", "validate", tiny, "--set", "bench.nproc_per_node=[1,128]")
    assert result.exit_code == 2 and "bench.nproc_per_node" in result.stderr
