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
from bigbench.comparison import CompareError
from bigbench.errors import BigbenchError, ConfigError
from bigbench.measuring.energy import rapl
from bigbench.records import BenchDocument, RecordError, RunRecord
from bigbench.reporting.inputs import ReportError
from bigbench.resume import ResumeError

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
                 "benchmark.run", "reporting.build", "measuring.meter", "models", "devices",
                 "data", "catalog", "resume", "train_setup", "measuring.energy.discovery"):
        importlib.import_module(f"bigbench.{name}")
    for name in (n for n in bigbench.__all__ if n != "__version__"):
        assert getattr(bigbench, name) is getattr(bigbench.api, name), name


def test_import_bigbench_does_not_import_torch() -> None:
    code = ("import sys, bigbench; from bigbench import ConfigSource, ResultLike; "
            "assert 'torch' not in sys.modules; "
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


def test_a_loaded_bench_can_be_compared_and_reported(smoke_bench, tmp_path) -> None:
    document = bigbench.load_bench(smoke_bench.out_dir)
    result = bigbench.compare(document, smoke_bench, metrics="samples_per_s")
    assert result.passed and len(result.rows) == 2
    assert all(row.change_pct == 0 for row in result.rows)
    page = bigbench.report([document], out=tmp_path / "report")
    assert page.html.is_file()
    assert "loaded BenchDocument" in page.html.read_text()
    drawn = [f for f in page.figures if f.missing is None]
    assert drawn  # the bench's figures, from the document alone


def test_comparing_loaded_documents_with_nothing_in_common_names_them(smoke_bench,
                                                                     smoke_run) -> None:
    bench, run = bigbench.load_bench(smoke_bench.out_dir), bigbench.load_run(smoke_run.run_dir)
    with pytest.raises(CompareError, match="base \\(a loaded BenchDocument\\)"):
        bigbench.compare(bench, run)


# --- resuming, the listings, config show and the energy probe: the CLI's twins ---------------

RESUMABLE = {"name": "res", "model": {"name": "cnn", "channels": [4, 8], "hidden": [16]},
             "data": {"name": "digits", "size": 256, "test_size": 64},
             "train": {"max_steps": 20, "batch_size": 16, "warmup_steps": 2, "log_every": 5,
                       "threads": 1},
             "device": "cpu"}


def _interrupt_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """SIGINT to this process right after ``step``: the run stops there as after Ctrl-C."""
    import os
    import signal

    from bigbench import training_loop

    original = training_loop.TrainingLoop._step

    def step_then_signal(self, done: int) -> None:  # noqa: ANN001
        original(self, done)
        if done == step:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(training_loop.TrainingLoop, "_step", step_then_signal)


def test_an_interrupted_run_resumes_through_the_api(tmp_path, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        _interrupt_at_step(patch, 7)
        stopped = bigbench.train(RESUMABLE, out=tmp_path / "run")
    assert stopped.status == "interrupted" and stopped.exit_code == 130
    assert stopped.record.progress.steps == 7 and (tmp_path / "run" / "checkpoint").is_dir()
    with pytest.raises(ConfigError, match="differs from the run's") as caught:
        bigbench.train(resume=stopped.run_dir, overrides={"train.max_steps": 30})
    assert "  train.max_steps: 20 → 30" in caught.value.problems
    resumed = bigbench.train(resume=stopped.run_dir)
    assert resumed.status == "completed" and resumed.run_dir == stopped.run_dir
    assert resumed.record.progress.steps == 20
    assert resumed.record.resumed[0].from_step == 7
    assert bigbench.load_run(stopped.run_dir) == resumed.record
    with pytest.raises(ResumeError, match="already completed"):
        bigbench.train(resume=stopped.run_dir)


def test_a_forced_resume_records_the_config_change(tmp_path, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        _interrupt_at_step(patch, 4)
        stopped = bigbench.train(RESUMABLE, out=tmp_path / "run")
    resumed = bigbench.train(RESUMABLE, {"train.max_steps": 10}, resume=tmp_path / "run",
                             force=True)
    assert resumed.ok and resumed.record.progress.steps == 10
    assert resumed.record.resumed[0].config_changes == ["train.max_steps: 20 → 10"]
    assert stopped.run_dir == resumed.run_dir


def test_resume_mistakes_are_refused_before_anything_runs(tmp_path) -> None:
    with pytest.raises(ConfigError, match="give a CONFIG to train, or --resume"):
        bigbench.train()
    with pytest.raises(ConfigError, match="continues in its own directory"):
        bigbench.train(SMOKE, out=tmp_path / "new", resume=tmp_path)
    with pytest.raises(ResumeError, match="not a directory"):
        bigbench.train(resume=tmp_path / "nope")
    assert not (tmp_path / "new").exists()


def test_show_config_is_what_config_show_prints(cli) -> None:
    import yaml

    shown = bigbench.show_config(SMOKE, ["train.max_steps=7"])
    printed = cli("config", "show", SMOKE, "--set", "train.max_steps=7")
    assert printed.exit_code == 0 and yaml.safe_load(printed.stdout) == shown
    assert shown["train"]["max_steps"] == 7 and shown["train"]["seed"] == 0  # defaults spelled
    assert bigbench.show_config(shown) == shown  # a dict round-trips
    with pytest.raises(ConfigError, match="max_stepz"):
        bigbench.show_config(SMOKE, {"train.max_stepz": 1})


def test_listings_are_what_the_commands_print(cli, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML: the same reason either way
    for function, command in ((bigbench.list_models, "models"),
                              (bigbench.list_datasets, "data"),
                              (bigbench.list_devices, "devices")):
        printed = cli(command, "--json")
        assert printed.exit_code == 0, printed.stderr
        assert function() == json.loads(printed.stdout), command
    models = {row["name"]: row for row in bigbench.list_models()}
    assert models["cnn"]["params"] == 333_526 and "sizes" in models["gpt"]
    datasets = {row["name"] for row in bigbench.list_datasets()}
    assert {"digits", "tokens", "npz"} <= datasets
    assert bigbench.list_devices()["nvml"]["available"] is False


def test_probe_energy_is_what_energy_probe_prints(cli, tmp_path, monkeypatch) -> None:
    root = tmp_path / "powercap"
    live = LivePowercap(root, {"intel-rapl:0": 40.0}, period_s=0.002).start()
    monkeypatch.setitem(sys.modules, "pynvml", None)
    try:
        found = bigbench.probe_energy(root)
        printed = cli("energy", "probe", "--json", "--powercap-root", root)
    finally:
        live.stop()
    assert printed.exit_code == 0 and json.loads(printed.stdout) == found
    assert ("cpu", "rapl") in [(m["kind"], m["counter"]) for m in found["working"]]
    assert [m["kind"] for m in found["unavailable"]] == ["gpu"]
    assert found["unavailable"][0]["reason"]
    nothing = bigbench.probe_energy(_empty_powercap(tmp_path))
    assert nothing["working"] == [] and len(nothing["unavailable"]) == 2


# --- arguments of the wrong type: one typed error naming the argument, never a TypeError -----

def _bench_call(**kwargs):
    return lambda tmp: bigbench.bench(**{"suite": "smoke", "device": "cpu", "out": tmp / "b",
                                         **kwargs})


WRONG_ARGUMENTS = [
    ("train overrides", lambda tmp: bigbench.train(SMOKE, overrides=5), ConfigError,
     "overrides"),
    ("train override item", lambda tmp: bigbench.train(SMOKE, overrides=[1]), ConfigError,
     "overrides"),
    ("train override value", lambda tmp: bigbench.train(SMOKE, overrides={"seed": object()}),
     ConfigError, "overrides: seed"),
    ("train device", lambda tmp: bigbench.train(SMOKE, device=0), ConfigError, "device"),
    ("train out", lambda tmp: bigbench.train(SMOKE, out=5), ConfigError, "out"),
    ("train seed", lambda tmp: bigbench.train(SMOKE, seed="1"), ConfigError, "seed"),
    ("train log_to", lambda tmp: bigbench.train(SMOKE, log_to=5), ConfigError, "log_to"),
    ("train resume", lambda tmp: bigbench.train(resume=5), ConfigError, "resume"),
    ("train force", lambda tmp: bigbench.train(SMOKE, force="yes"), ConfigError, "force"),
    ("train progress", lambda tmp: bigbench.train(SMOKE, progress=1), ConfigError,
     "progress"),
    ("train config", lambda tmp: bigbench.train(3.5), ConfigError, "config"),
    ("bench device", _bench_call(device=5), ConfigError, "device"),
    ("bench suite", lambda tmp: bigbench.bench(suite=5, out=tmp / "b"), ConfigError, "suite"),
    ("bench models", _bench_call(models=5), ConfigError, "models"),
    ("bench model item", _bench_call(models=[None]), ConfigError, "models"),
    ("bench batch_sizes", _bench_call(batch_sizes=[1.5]), ConfigError, "batch_sizes"),
    ("bench seq_lens", _bench_call(seq_lens={"a": 1}), ConfigError, "seq_lens"),
    ("bench compile", _bench_call(compile="yes"), ConfigError, "compile"),
    ("bench find_max_batch", _bench_call(find_max_batch=None), ConfigError, "find_max_batch"),
    ("bench out", lambda tmp: bigbench.bench(suite="smoke", device="cpu", out=7), ConfigError,
     "out"),
    ("bench overrides", _bench_call(overrides="a=b"), ConfigError, "overrides"),
    ("bench progress", _bench_call(progress="no"), ConfigError, "progress"),
    ("compare base", lambda tmp: bigbench.compare(5, tmp), CompareError, "base"),
    ("compare metrics", lambda tmp: bigbench.compare(tmp, tmp, metrics=5), CompareError,
     "metrics"),
    ("compare threshold", lambda tmp: bigbench.compare(tmp, tmp, fail_above_pct="5"),
     CompareError, "fail_above_pct"),
    ("report results", lambda tmp: bigbench.report(5), ReportError, "results"),
    ("report result item", lambda tmp: bigbench.report([tmp, 5]), ReportError, "results"),
    ("report out", lambda tmp: bigbench.report(tmp, out=5), ReportError, "out"),
    ("measure device", lambda tmp: bigbench.measure(device=None), ConfigError, "device"),
    ("measure interval", lambda tmp: bigbench.measure(interval_ms="50"), ConfigError,
     "interval_ms"),
    ("measure powercap_root", lambda tmp: bigbench.measure(powercap_root=5), ConfigError,
     "powercap_root"),
    ("measure min_window_s", lambda tmp: bigbench.measure(min_window_s="1"), ConfigError,
     "min_window_s"),
    ("probe powercap_root", lambda tmp: bigbench.probe_energy(5), ConfigError,
     "powercap_root"),
    ("load_run", lambda tmp: bigbench.load_run(5), RecordError, "path"),
    ("load_bench", lambda tmp: bigbench.load_bench(None), RecordError, "path"),
    ("load_experiment overrides", lambda tmp: bigbench.load_experiment(SMOKE, 5), ConfigError,
     "overrides"),
    ("show_config", lambda tmp: bigbench.show_config([SMOKE]), ConfigError, "config"),
]


@pytest.mark.parametrize(("call", "error", "argument"), [c[1:] for c in WRONG_ARGUMENTS],
                         ids=[c[0] for c in WRONG_ARGUMENTS])
def test_wrong_typed_arguments_raise_one_typed_error(call, error, argument, tmp_path) -> None:
    with pytest.raises(BigbenchError) as caught:
        call(tmp_path)
    assert type(caught.value) is error, caught.value
    assert len(caught.value.problems) == 1, caught.value.problems
    assert caught.value.problems[0].startswith(argument) or \
        f"{argument}:" in caught.value.problems[0], caught.value.problems
    assert not (tmp_path / "b").exists()


def test_type_aliases_are_importable_and_name_the_real_types() -> None:
    import typing

    from bigbench.api.commands import ConfigSource, OverridesLike, ResultLike

    assert bigbench.ConfigSource is ConfigSource and bigbench.ResultLike is ResultLike
    refs = {a.__forward_arg__ for a in typing.get_args(ResultLike)
            if isinstance(a, typing.ForwardRef)}
    assert refs == {"RunRecord", "BenchDocument"}
    assert {bigbench.RunResult, bigbench.BenchResult} <= set(typing.get_args(ResultLike))
    assert typing.ForwardRef("ExperimentConfig") in typing.get_args(ConfigSource)
    assert type(None) in typing.get_args(OverridesLike)
    import bigbench.records as records
    from bigbench.config import ExperimentConfig

    for name in refs:  # each forward reference names a class where the docs say it lives
        assert isinstance(getattr(records, name), type)
    assert isinstance(ExperimentConfig, type)


def test_sweep_and_gpu_restore_from_python(tmp_path) -> None:
    """The API twins of bigbench sweep and bigbench gpu restore."""
    import bigbench
    from bigbench.measuring.energy.power_limits import PowerControlError

    config = {"name": "tiny", "model": {"name": "cnn", "channels": [4, 8], "hidden": [16]},
              "data": {"name": "digits", "size": 256, "test_size": 64},
              "train": {"max_steps": 4, "batch_size": 16, "warmup_steps": 1, "log_every": 2},
              "device": "cpu", "sweep": {"batch_sizes": [8, 16], "repeats": 1}}
    result = bigbench.sweep_settings(config, out=tmp_path / "sweep")
    assert result.status == "completed" and result.failed == []
    assert [t.status for t in result.document.trials] == ["completed", "completed"]
    assert result.to_dict() == json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    with pytest.raises(bigbench.errors.ConfigError, match="eta"):
        bigbench.sweep_settings(config, eta="half")
    with pytest.raises(PowerControlError, match="no such file"):
        bigbench.restore_gpu(tmp_path / "nowhere")
