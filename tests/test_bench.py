"""bigbench bench: matrix, measurement definitions, statuses, outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from fakes import FakeClock

from bigbench.benchmark.matrix import SUITES, Matrix, Plan, Point, expand, parse_list
from bigbench.benchmark.output import CSV_COLUMNS
from bigbench.benchmark.point import measure_point, spread
from bigbench.benchmark.run import BenchSession, start_run
from bigbench.benchmark.runner import find_max_batch, run_point
from bigbench.config.schema import MeasureConfig
from bigbench.errors import ConfigError
from bigbench.measuring.energy.setup import null_monitor

CPU = torch.device("cpu")
NULL = null_monitor("no meters in tests")


def test_suites_and_expansion() -> None:
    matrix, plan = SUITES["smoke"]
    points = expand(matrix)
    assert {p.model for p in points} == {"cnn", "rnn"}
    assert len(points) == len(matrix.models) * len(matrix.batch_sizes) * 2  # two modes
    assert len({p.id for p in points}) == len(points)
    standard = expand(SUITES["standard"][0])
    assert {p.model for p in standard} == {"cnn", "rnn", "lstm", "gru", "gpt"}
    assert {p.mode for p in standard} == {"train", "infer", "prefill", "decode"}
    # A language model's infer is measured as prefill and decode, never as a plain forward.
    assert {p.mode for p in standard if p.model == "gpt"} == {"train", "prefill", "decode"}
    cnn = next(p for p in points if p.model == "cnn")
    assert cnn.sample_shape == (1, 28, 28) and cnn.num_classes == 10
    assert Point.from_dict(cnn.as_dict()) == cnn


def test_matrix_axes_multiply() -> None:
    matrix = Matrix(models=["gru"], batch_sizes=[1, 2, 3], precisions=["fp32", "bf16"],
                    modes=["infer"], model_args={"gru": {"hidden_size": 8}})
    points = expand(matrix)
    assert len(points) == 6 and all(p.model_args == (("hidden_size", 8),) for p in points)
    assert points[0].id == "gru/infer/fp32/bs1"


def test_list_options_suggest_fixes() -> None:
    with pytest.raises(ConfigError, match="did you mean 'bf16'"):
        parse_list("--precision", "fp32,bf61", ("fp32", "bf16", "fp16"))


def _fake_step(clock: FakeClock, durations: list[float]):
    calls = iter(durations)

    def builder(workload, point):
        def step(batch):
            clock.advance(next(calls))
            return torch.tensor(1.0)
        return step

    return builder


def test_throughput_is_samples_over_window_time() -> None:
    clock = FakeClock()
    point = Point("rnn", "train", "fp32", 2, sample_shape=(20,), num_classes=2, vocab_size=10)
    figures = measure_point(point, Plan(steps=100, warmup=3, repeats=1), CPU, NULL, clock=clock,
                            step_builder=_fake_step(clock, [0.05] * 103))
    assert figures["samples_per_s"]["median"] == pytest.approx(40.0)  # 100 × 2 / 5 s
    assert figures["steps"]["measured"] == 100


def test_latency_percentiles_match_numpy() -> None:
    clock = FakeClock()
    durations = list(np.random.default_rng(1).uniform(0.001, 0.02, size=2 + 3 * 30))
    point = Point("rnn", "infer", "fp32", 4, sample_shape=(20,), num_classes=2, vocab_size=10)
    figures = measure_point(point, Plan(steps=30, warmup=2, repeats=3), CPU, NULL, clock=clock,
                            step_builder=_fake_step(clock, durations))
    measured = durations[2:]
    for q in (50, 90, 99):
        assert figures["latency_s"][f"p{q}"] == pytest.approx(np.percentile(measured, q))
    assert len(figures["samples_per_s"]["values"]) == 3


def test_spread_flags_noise() -> None:
    assert spread([100.0, 101.0, 99.0])["noisy"] is False
    noisy = spread([100.0, 130.0, 80.0])
    assert noisy["noisy"] is True and noisy["iqr"] == pytest.approx(25.0)


def test_oom_is_recorded_and_the_sweep_goes_on(tmp_path) -> None:
    points = [Point("rnn", "train", "fp32", b, sample_shape=(20,), num_classes=2, vocab_size=10)
              for b in (8, 64, 16)]

    def measure(point, plan, device, energy):
        if point.batch_size == 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return measure_point(point, plan, device, energy)

    plan = Plan(steps=3, warmup=1, repeats=1)
    run = start_run(BenchSession(points, plan, CPU, isolated=False, find_max=False,
                                 out_dir=tmp_path, label="t", measure=MeasureConfig(),
                                 env={"device": {}}))
    for point in points:
        run.record(run_point(point, plan, CPU, NULL, measure=measure))
    assert [r["status"] for r in run.results] == ["ok", "oom", "ok"]
    assert "batch size 64" in run.results[1]["reason"]
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert [p["status"] for p in saved["points"]] == ["ok", "oom", "ok"]


def test_failures_and_skips_are_results() -> None:
    skipped = run_point(Point("rnn", "train", "fp32", 4, channels_last=True, sample_shape=(20,),
                              num_classes=2, vocab_size=10), Plan(steps=2), CPU, NULL)
    assert skipped["status"] == "skipped" and "channels_last" in skipped["reason"]

    def broken(*args):
        raise ValueError("shape mismatch")

    failed = run_point(Point("cnn", "infer", "fp32", 4, sample_shape=(1, 28, 28)), Plan(steps=2),
                       CPU, NULL, measure=broken)
    assert failed["status"] == "failed" and "shape mismatch" in failed["error"]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_precisions_run_on_cpu(precision) -> None:
    point = Point("cnn", "train", precision, 4, sample_shape=(1, 28, 28),
                  model_args=(("channels", (4,)), ("hidden", ())))
    result = run_point(point, Plan(steps=2, warmup=1, repeats=1), CPU, NULL)
    assert result["status"] == "ok", result


def test_find_max_batch_bisects_to_the_limit() -> None:
    tried = []

    def trial(size: int) -> str:
        tried.append(size)
        return "ok" if size <= 300 else "oom"

    result = find_max_batch(trial, start=32)
    assert result["max_batch_size"] == 300
    assert tried[:5] == [32, 64, 128, 256, 512]
    assert find_max_batch(lambda s: "oom", start=4)["max_batch_size"] is None
    assert find_max_batch(lambda s: "ok", start=4, limit=16)["max_batch_size"] == 16


def test_smoke_suite_end_to_end(cli, tmp_path) -> None:
    out = tmp_path / "bench"
    result = cli("bench", "--device", "cpu", "--suite", "smoke", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "bug in bigbench" not in result.stderr  # bench.json matches its own schema
    document = json.loads((out / "bench.json").read_text())
    assert document["schema"] == "bigbench.bench/1" and document["status"] == "completed"
    assert document["env"]["device"]["type"] == "cpu"
    assert len(document["points"]) == 8
    for point in document["points"]:
        assert point["status"] == "ok"
        assert point["samples_per_s"]["median"] > 0 and point["latency_s"]["p50"] > 0
        # conftest points the powercap root at an empty folder: no meter, and it says why.
        energy = point["energy"]
        assert energy["status"] == "unavailable" and "no powercap interface" in energy["reason"]
        assert energy["j_per_sample"]["median"] is None and energy["reasons"]["j_per_sample"]
        assert point["flops"]["per_sample"] > 0
    with open(out / "bench.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 8


def test_config_matrix_markdown_and_isolation(cli, write_config, tmp_path) -> None:
    config = write_config("""\
        name: mine
        model: {name: gru, hidden_size: 12}
        data: {name: tokens, size: 64, test_size: 0, seq_len: 7}
        train: {batch_size: 8}
        bench: {modes: [infer], steps: 3, warmup: 1, repeats: 2}
        """)
    result = cli("bench", config, "--device", "cpu", "--out", tmp_path / "b", "--markdown",
                 "--isolate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("| point | status |")
    assert "gru/infer/fp32/bs8" in result.stdout
    point = json.loads((tmp_path / "b" / "bench.json").read_text())["points"][0]
    assert point["settings"]["model_args"]["hidden_size"] == 12
    assert point["settings"]["sample_shape"] == [7]
    assert point["status"] == "ok" and len(point["samples_per_s"]["values"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "cnnn"], "did you mean 'cnn'"),
    (["--batch-sizes", "8,x"], "not a positive integer"),
    (["--steps", "5", "--duration", "1"], "choose one"),
    (["--find-max-batch"], "needs a CUDA device"),
    (["--device", "tpu"], "not a device"),
])
def test_bench_usage_errors(cli, tmp_path, args, message) -> None:
    result = cli("bench", "--device", "cpu", "--suite", "smoke", "--out", tmp_path / "x", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "x").exists()


def test_interrupted_bench_keeps_what_it_measured(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "bench"
    # SIGINT arrives right after the second point is written: no race with the run's end.
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("interrupting.py")),
                           "--signal", "SIGINT", "--after-points", "2", "--", "bench",
                           "--device", "cpu", "--suite", "smoke", "--duration", "0.02",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    document = json.loads((out / "bench.json").read_text())
    assert document["status"] == "interrupted"
    assert len(document["points"]) == 2
    assert all(p["status"] == "ok" for p in document["points"])
    assert "2 of 8 points measured" in proc.stderr


def _gpu_energy(clock: FakeClock):
    """A simulated 300 W GPU (counter stepping every 100 ms) read on an injected clock."""
    from fakes import FakeGpu, FakeNVML

    from bigbench.measuring.energy.setup import build_monitor

    gpu = FakeGpu("GPU-bench-1", "NVIDIA H100 80GB HBM3", [(0, 300.0)])
    return build_monitor(interval_s=0.05, gpu_uuid=gpu.uuid,
                         nvml_backend=FakeNVML([gpu], clock, counter_step_s=0.1),
                         measure_host=False, clock=clock)


def _sampled_steps(clock: FakeClock, energy, step_s: float):
    """Steps of ``step_s`` that let the power sampler tick on the fake clock."""
    def builder(workload, point):
        def step(batch):
            clock.advance(step_s)
            energy.sampler.sample_once()
            return torch.tensor(1.0)
        return step
    return builder


def test_bench_repeats_reach_ok_energy_quality_by_default() -> None:
    clock = FakeClock()
    energy = _gpu_energy(clock)
    point = Point("rnn", "train", "fp32", 8, sample_shape=(20,), num_classes=2, vocab_size=10)
    figures = measure_point(point, Plan(steps=5, warmup=1, repeats=3), CPU, energy, clock=clock,
                            step_builder=_sampled_steps(clock, energy, 0.05))
    result = figures["energy"]
    assert figures["steps"]["min_repeat_s"] == pytest.approx(5.0)  # the GPU minimum window
    assert [r["quality"] for r in result["repeats"]] == ["ok"] * 3 and result["quality"] == "ok"
    assert all(r["time_s"] >= 5.0 for r in result["repeats"])
    # 300 W for 0.05 s per step of 8 samples: 1.875 J/sample, inside the error bound.
    j = result["j_per_sample"]
    assert abs(j["median"] - 300 * 0.05 / 8) <= j["uncertainty"]
    assert j["uncertainty"] < 0.05 * j["median"]


def test_short_bench_repeats_say_their_energy_is_low_quality() -> None:
    clock = FakeClock()
    energy = _gpu_energy(clock)
    point = Point("rnn", "train", "fp32", 8, sample_shape=(20,), num_classes=2, vocab_size=10)
    figures = measure_point(point, Plan(steps=2, warmup=1, repeats=3, energy_min_window=False),
                            CPU, energy, clock=clock,
                            step_builder=_sampled_steps(clock, energy, 0.04))
    result = figures["energy"]
    assert figures["steps"]["min_repeat_s"] == 0.0
    assert all(r["quality"] == "low" for r in result["repeats"]) and result["quality"] == "low"
    assert any("shorter than 5 s" in reason for reason in result["quality_reasons"])
    for repeat in result["repeats"]:  # 80 ms windows: never 0 J, always inside the bound
        assert repeat["energy_j"] > 0
        assert abs(repeat["energy_j"] - 300 * 0.08) <= repeat["uncertainty_j"]


def test_a_given_module_is_measured_as_it_is() -> None:
    from bigbench.benchmark.point import point_model

    point = Point("cnn", "infer", "fp32", 4, sample_shape=(1, 28, 28))
    plan = Plan(steps=2, warmup=1, repeats=1)
    stock = measure_point(point, plan, CPU, NULL)
    model = point_model(point)
    model.module.features[0] = torch.nn.Conv2d(1, 32, kernel_size=1)  # e.g. pruned to 1×1
    changed = measure_point(point, plan, CPU, NULL, model=model)
    assert stock["flops"]["per_sample"] - changed["flops"]["per_sample"] == 2 * 28 * 28 * 32 * 8


def test_measure_points_yields_each_result(tmp_path) -> None:
    from bigbench.benchmark.run import measure_points

    points = [Point("rnn", "infer", "fp32", b, sample_shape=(20,), num_classes=2,
                    vocab_size=10) for b in (2, 4, 8)]
    session = BenchSession(points, Plan(steps=2, warmup=1, repeats=1), CPU, isolated=False,
                           find_max=False, out_dir=tmp_path, label="lib",
                           measure=MeasureConfig(energy=False), env={})
    seen = []
    for result in measure_points(session, should_stop=lambda: len(seen) == 2):
        seen.append(result)
    assert [r["id"] for r in seen] == [p.id for p in points[:2]]
    assert all(r["status"] == "ok" for r in seen)


def test_bench_records_the_same_energy_meters_as_train(tmp_path) -> None:
    """compare checks drivers and power limits per meter: bench.json must carry them too."""
    from fakes import PowercapTree

    from bigbench.benchmark.run import bench_environment

    PowercapTree(tmp_path / "powercap")
    env = bench_environment(CPU, MeasureConfig(powercap_root=str(tmp_path / "powercap")))
    names = sorted(m["key"].rsplit(":", 1)[1] for m in env["energy_meters"])
    assert names == ["dram-0", "package-0"]
    assert all(m["kind"] in ("cpu", "dram") and "max_energy_range_uj" in m
               for m in env["energy_meters"])
    assert env["device"]["type"] == "cpu" and env["torch"] == torch.__version__


def test_kv_cache_points_are_skipped_under_compile_with_the_reason() -> None:
    from bigbench.benchmark.matrix import LM_BENCH_DATA, Matrix
    from bigbench.benchmark.point import skip_reason

    points = expand(Matrix(models=["gpt"], batch_sizes=[2], modes=["infer"], compile=True,
                           data={"gpt": LM_BENCH_DATA}))
    assert {p.mode for p in points} == {"prefill", "decode"}
    for point in points:
        assert "torch.compile" in (skip_reason(point, CPU) or "")
