"""The Python API (bigbench.trainer, bench, compare, measure ...) called directly, as a notebook
would: typed results equal to the files the CLI writes, typed errors, cheap import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import LivePowercap

import bigbench
from bigbench.errors import BigbenchError, ConfigError
from bigbench.measuring.energy import rapl
from bigbench.records import BenchDocument, RunRecord

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "configs" / "smoke.yaml"
FAST = ["train.max_steps=12", "train.warmup_steps=2", "train.threads=1"]


def _empty_powercap(tmp: Path) -> str:
    root = tmp / "no-powercap"
    root.mkdir()
    return str(root)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> bigbench.RunResult:
    tmp = tmp_path_factory.mktemp("api-train")
    with pytest.MonkeyPatch.context() as mp:  # never this host's RAPL counters
        mp.setenv(rapl.ROOT_ENV, _empty_powercap(tmp))
        return bigbench.train(SMOKE, overrides=FAST, device="cpu", out=tmp / "run")


@pytest.fixture(scope="module")
def smoke_bench(tmp_path_factory: pytest.TempPathFactory) -> bigbench.BenchResult:
    tmp = tmp_path_factory.mktemp("api-bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(rapl.ROOT_ENV, _empty_powercap(tmp))
        return bigbench.bench(suite="smoke", device="cpu", models=["rnn"], batch_sizes=[4],
                              duration_s=0.02, repeats=1, warmup=1, out=tmp / "bench")


def test_train_returns_the_typed_record_written_to_disk(smoke_run) -> None:
    assert smoke_run.status == "completed" and smoke_run.ok and smoke_run.exit_code == 0
    record = smoke_run.record
    assert isinstance(record, RunRecord)
    assert record.config.train.max_steps == 12
    assert record.throughput.samples_per_s > 0
    assert record.energy.total_j is None and record.energy.reason  # no meter: null + why
    on_disk = json.loads((smoke_run.run_dir / "run.json").read_text())
    assert on_disk == smoke_run.to_dict()
    assert json.loads(smoke_run.to_json()) == on_disk


def test_load_run_round_trips(smoke_run) -> None:
    loaded = bigbench.load_run(smoke_run.run_dir)
    assert loaded == smoke_run.record
    assert bigbench.load_run(smoke_run.run_dir / "run.json") == loaded


def test_config_errors_are_raised_with_every_problem(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        bigbench.train(SMOKE, overrides=["train.max_stepz=3", "model.chanels=[4]"],
                       out=tmp_path / "run")
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("max_stepz" in p and "max_steps" in p for p in problems)  # did you mean
    assert any("chanels" in p for p in problems)
    assert not (tmp_path / "run").exists()


def test_train_accepts_a_dict_and_rejects_a_bad_type(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        bigbench.train({"model": {"name": "cnm"}, "data": {"name": "digits"}},
                       out=tmp_path / "run")
    assert "cnm" in str(caught.value)
    with pytest.raises(ConfigError):
        bigbench.train(42)  # type: ignore[arg-type]


def test_bench_returns_typed_points(smoke_bench) -> None:
    assert isinstance(smoke_bench.document, BenchDocument)
    assert smoke_bench.status == "completed" and smoke_bench.failed == []
    points = smoke_bench.points
    assert {(p.settings.model, p.settings.mode, p.settings.batch_size) for p in points} == \
        {("rnn", "train", 4), ("rnn", "infer", 4)}
    assert all(p.samples_per_s.median > 0 for p in points)
    on_disk = json.loads((smoke_bench.out_dir / "bench.json").read_text())
    assert on_disk == smoke_bench.to_dict()
    assert bigbench.load_bench(smoke_bench.out_dir) == smoke_bench.document


def test_points_frame_is_the_csv_rows_as_a_dataframe(smoke_bench, monkeypatch) -> None:
    pytest.importorskip("pandas", reason="pandas is in the dev extra; make install adds it")
    frame = smoke_bench.points_frame()
    assert list(frame["model"]) == ["rnn", "rnn"]
    rates = [p.samples_per_s.median for p in smoke_bench.document.points]
    assert list(frame["samples_per_s"]) == rates
    monkeypatch.setitem(sys.modules, "pandas", None)  # without pandas: a clear ImportError
    with pytest.raises(ImportError, match="pandas"):
        smoke_bench.points_frame()


def test_bench_argument_errors_are_collected(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        bigbench.bench(suite="smoke", device="cpu", models=["rnm"], batch_sizes=[0],
                       repeats=0, out=tmp_path / "b")
    assert len(caught.value.problems) == 3
    assert "did you mean 'rnn'" in str(caught.value)


def test_compare_a_bench_with_itself(smoke_bench, smoke_run) -> None:
    result = bigbench.compare(smoke_bench, smoke_bench.out_dir / "bench.json")
    assert result.passed and result.regressions == []
    assert {r.metric for r in result.rows} == {"samples_per_s", "j_per_sample"}
    assert all(r.change_pct == 0 for r in result.rows if r.metric == "samples_per_s")
    assert json.loads(result.to_json())["regressions"] == []
    with pytest.raises(BigbenchError, match="samples_per_sec"):
        bigbench.compare(smoke_bench, smoke_bench, metrics=["samples_per_sec"])


def test_measure_a_block_with_rapl(tmp_path, monkeypatch) -> None:
    import torch

    root = tmp_path / "powercap"
    live = LivePowercap(root, {"intel-rapl:0": 40.0, "intel-rapl:0:2": 4.0},
                        period_s=0.002).start()
    monkeypatch.setenv(rapl.ROOT_ENV, str(root))
    try:
        a = torch.randn(64, 64)
        with bigbench.measure(device="cpu", interval_ms=5) as m:
            started = time.perf_counter()  # long enough that counter steps do not matter
            while time.perf_counter() - started < 0.3:
                a = torch.tanh(a @ a)
    finally:
        live.stop()
    result = m.result
    assert result.time_s > 0 and m.time_s == result.time_s
    measured = [d for d in result.devices if d["measured"]]
    assert sorted(d["kind"] for d in measured) == ["cpu", "dram"]
    assert all(d["method"] == "rapl" and d["quality"] for d in measured)
    assert result.energy_j == pytest.approx(44.0 * result.time_s, rel=0.2, abs=0.2)
    assert result.energy_reason is None and result.host_peak_rss_bytes > 0
    assert result.device_peak_allocated_bytes is None  # CPU: no allocator peak
    assert json.loads(result.to_json())["energy_j"] == result.energy_j


def test_measure_without_meters_gives_null_with_a_reason() -> None:
    with bigbench.measure("cpu") as m:
        sum(range(1000))
    assert m.energy_j is None and m.energy_reason
    assert m.devices and all(d["energy_j"] is None and d["reason"] for d in m.devices)


def test_measure_argument_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        bigbench.measure("gpu0", interval_ms=1)
    assert len(caught.value.problems) == 2
    m = bigbench.measure("cpu")
    with pytest.raises(BigbenchError, match="with block"):
        m.result  # noqa: B018


def test_api_functions_do_not_share_a_name_with_a_submodule() -> None:
    """Importing any part of the package never replaces an API function with a module."""
    import importlib

    import bigbench.api

    for name in ("comparison", "trainer", "measuring", "benchmark", "reporting",
                 "benchmark.run", "reporting.build", "measuring.meter"):
        importlib.import_module(f"bigbench.{name}")
    for name in ("train", "bench", "compare", "report", "measure", "load_run", "load_bench"):
        assert getattr(bigbench, name) is getattr(bigbench.api, name), name


def test_import_bigbench_does_not_import_torch() -> None:
    code = ("import sys, bigbench; assert 'torch' not in sys.modules; "
            "assert 'pydantic' not in sys.modules; print(bigbench.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argument", [{"steps": 2.5}, {"repeats": 2.5}, {"warmup": 0.5},
                                      {"duration_s": "1"}])
def test_bench_refuses_arguments_of_the_wrong_kind_before_running(argument, tmp_path) -> None:
    with pytest.raises(ConfigError, match=next(iter(argument))):
        bigbench.bench(suite="smoke", device="cpu", out=tmp_path / "b", **argument)
    assert not (tmp_path / "b").exists()


def test_a_loaded_run_can_be_compared_and_reported(smoke_run, smoke_bench, tmp_path) -> None:
    record = bigbench.load_run(smoke_run.run_dir)
    assert bigbench.compare(record, smoke_run, metrics=["samples_per_s"]).passed
    page = bigbench.report(record, out=tmp_path / "report")
    assert page.html.is_file()
    with pytest.raises(ConfigError, match="pass its path"):
        bigbench.compare(bigbench.load_bench(smoke_bench.out_dir), smoke_bench)
