"""bigbench compare: matching, noise, regressions, environment checks and exit codes 0/1/2."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
from conftest import TINY_CNN

from bigbench.comparison import load_side

H100 = "NVIDIA H100 80GB HBM3"


def _meter(uuid: str, driver: str = "550.54.15", limit: float = 700.0, **extra) -> dict:
    return {"key": f"gpu:{uuid}", "kind": "gpu", "name": H100, "uuid": uuid,
            "driver_version": driver, "power_limit_w": limit, "energy_counter": True,
            "power_method": "nvml_power_instant", **extra}


RAPL = {"key": "rapl:host:package-0", "kind": "cpu", "zone": "/sys/class/powercap/intel-rapl:0",
        "max_energy_range_uj": 262143328850}


def _env(device: str = "AMD EPYC", meters: list | None = None, torch: str = "2.13.0") -> dict:
    return {"bigbench": "0.1.0", "python": "3.11.7", "torch": torch, "cuda": None,
            "cudnn": None, "os": "Linux 6.1", "hostname": "ci", "cpu": "AMD EPYC",
            "logical_cpus": 2, "torch_threads": 2, "device": {"type": "cpu", "name": device},
            "git_commit": None, "argv": ["bigbench"], "energy_meters": meters or []}


def _point(model: str, batch: int, rate: float, iqr: float, j: float | None = None,
           precision: str = "fp32") -> dict:
    return {"id": f"{model}/train/{precision}/bs{batch}",
            "settings": {"model": model, "mode": "train", "precision": precision,
                         "batch_size": batch, "compile": False, "channels_last": False,
                         "model_args": {}, "sample_shape": [1, 28, 28]},
            "status": "ok", "reason": None, "error": None,
            "samples_per_s": {"median": rate, "iqr": iqr, "values": [rate], "noisy": False},
            "energy": {"status": "measured" if j else "unavailable", "reason": None,
                       "j_per_sample": {"median": j, "iqr": 0.0 if j else None,
                                        "values": [j] if j else [], "noisy": None},
                       "devices": []},
            "latency_s": {k: 1.0 / rate for k in ("p50", "p90", "p99", "mean", "min", "max")},
            "memory": {"host_peak_rss_bytes": 1 << 28}, "flops": {"per_sample": None},
            "wall_s": 1.0}


def _bench(tmp_path, name: str, points: list[dict], device: str = "AMD EPYC",
           env: dict | None = None) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({
        "schema": "bigbench.bench/1", "status": "completed", "label": "smoke",
        "started_at": "2026-11-29T14:00:00+00:00", "finished_at": "2026-11-29T14:01:00+00:00",
        "env": env or _env(device), "isolated": False, "matrix": [p["id"] for p in points],
        "plan": {"steps": None, "duration_s": 0.25, "warmup": 10, "repeats": 3},
        "points": points}))
    return str(path)


def _run(precision: str = "fp32", channels_last: bool = False, compile_: bool = False,
         env: dict | None = None, rate: float = 1000.0, telemetry: dict | None = None) -> dict:
    """A finished run.json, written by hand."""
    devices = [{"key": "gpu:GPU-a", "kind": "gpu", "name": H100, "uuid": "GPU-a",
                "energy_j": 50.0, "measured": True, "method": "nvml_energy_counter",
                "telemetry_start": telemetry}] if telemetry else []
    return {
        "schema": "bigbench.run/1", "status": "completed", "name": "tiny", "run_dir": "runs/x",
        "started_at": "2026-11-29T14:00:00+00:00", "finished_at": "2026-11-29T14:01:00+00:00",
        "config": {"name": "tiny", "model": {"name": "cnn"}, "data": {"name": "digits"},
                   "device": "cuda", "train": {"batch_size": 16, "precision": precision,
                                               "compile": compile_, "channels_last": "auto"}},
        "env": env or _env(), "task": "classification",
        "performance": {"threads": 2, "cudnn_benchmark": None, "input_pipeline": "device",
                        "zero_grad_set_to_none": True, "loss_readback": "per log interval",
                        "channels_last": channels_last, "precision": precision,
                        "grad_scaler": False, "compile": compile_, "optimizer_foreach": None},
        "model": {"name": "cnn", "family": "cnn", "params": 100, "trainable_params": 100,
                  "args": {"channels": [4, 8]}},
        "data": {"name": "digits", "sample_shape": [1, 28, 28], "num_classes": 10,
                 "vocab_size": None, "train_size": 256, "test_size": 64},
        "progress": {"steps": 12, "total_steps": 12, "extra_steps": 0, "epochs_completed": 1,
                     "samples": 192, "last_loss": 2.0, "last_finite_loss": 2.0,
                     "skipped_steps": 0},
        "throughput": {"samples_per_s": rate, "tokens_per_s": None,
                       "step_time_s": {k: 0.016 for k in ("p50", "p90", "p99", "mean", "min",
                                                           "max")},
                       "measured_steps": 10, "measured_samples": 160, "measured_time_s": 0.16,
                       "warmup_steps": 2},
        "memory": {"host_peak_rss_bytes": 1 << 28, "device_peak_allocated_bytes": None,
                   "device_peak_reserved_bytes": None},
        "energy": {"status": "measured", "reason": None, "total_j": 50.0,
                   "j_per_sample": 0.3125, "samples_per_j": 3.2, "avg_power_w": 312.5,
                   "peak_power_w": 400.0, "quality": "ok", "devices": devices},
        "flops": {"forward_per_sample": None, "train_step_per_sample": None, "method": None,
                  "achieved_flops_per_s": None, "mfu": None, "peak_flops_per_s": None,
                  "peak_dtype": None, "peak_source": None, "flops_per_j": None},
        "eval": {"accuracy": 0.5, "loss": 1.5, "samples": 64, "step": 12},
        "time": {"wall_s": 2.0, "startup_s": 1.0, "measured_s": 0.16}, "windows": {},
        "error": None, "files": {"config": "config.yaml", "metrics": "metrics.jsonl",
                                 "weights": None, "power": None, "checkpoint": None},
    }


def _write(path, document, raw: str | None = None) -> str:
    path.write_text(raw if raw is not None else json.dumps(document))
    return str(path)


BASE = [_point("cnn", 32, 1000.0, 20.0, 0.5), _point("rnn", 32, 5000.0, 50.0, 0.1)]


def test_identical_results_exit_0(cli, tmp_path) -> None:
    path = _bench(tmp_path, "a", BASE)
    result = cli("compare", path, path)
    assert result.exit_code == 0 and "no regression" in result.stdout
    assert result.stderr == ""  # nothing differs, nothing to warn about


def test_halved_throughput_exits_1_naming_the_points(cli, tmp_path) -> None:
    slow = copy.deepcopy(BASE)
    slow[1]["samples_per_s"]["median"] = 2500.0
    result = cli("compare", _bench(tmp_path, "a", BASE), _bench(tmp_path, "b", slow))
    assert result.exit_code == 1
    assert "regression: rnn/train/fp32/bs32 samples_per_s lower by 50.0%" in result.stdout
    assert "cnn/train/fp32/bs32 samples_per_s lower" not in result.stdout


def test_higher_energy_per_sample_is_worse(cli, tmp_path) -> None:
    hungry = copy.deepcopy(BASE)
    hungry[0]["energy"]["j_per_sample"]["median"] = 0.6
    result = cli("compare", _bench(tmp_path, "a", BASE), _bench(tmp_path, "b", hungry),
                 "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["regressions"] == ["cnn/train/fp32/bs32 j_per_sample"]


def test_differences_inside_the_noise_or_threshold_pass(cli, tmp_path) -> None:
    noisy = copy.deepcopy(BASE)
    noisy[0]["samples_per_s"].update(median=900.0, iqr=250.0)  # ranges overlap
    assert cli("compare", _bench(tmp_path, "a", BASE), _bench(tmp_path, "b", noisy)
               ).exit_code == 0
    slightly = copy.deepcopy(BASE)
    slightly[0]["samples_per_s"].update(median=960.0, iqr=0.0)
    a, b = _bench(tmp_path, "c", BASE), _bench(tmp_path, "d", slightly)
    assert cli("compare", a, b).exit_code == 0  # 4% < 5% threshold
    assert cli("compare", a, b, "--fail-above", "3").exit_code == 1


def test_unmatched_points_and_environment_warnings(cli, tmp_path) -> None:
    other = [BASE[0], _point("gru", 64, 100.0, 1.0)]
    result = cli("compare", _bench(tmp_path, "a", BASE),
                 _bench(tmp_path, "b", other, device=H100))
    assert result.exit_code == 0
    assert "only in base: rnn/train/fp32/bs32" in result.stdout
    assert "only in new: gru/train/fp32/bs64" in result.stdout
    assert "environments differ in device.name" in result.stderr


def _bad_point(problem: str) -> dict:
    point = copy.deepcopy(BASE[0])
    if problem == "damaged":
        point["settings"] = "oops"
    elif problem == "wrong type":
        point["samples_per_s"]["median"] = "fast"
    else:  # "missing key": an ok point without its throughput
        del point["samples_per_s"]
    return point


@pytest.mark.parametrize("problem", ["missing", "schema", "garbage", "disjoint", "metric",
                                     "damaged", "wrong type", "missing key", "folder"])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, problem) -> None:
    good = _bench(tmp_path, "a", BASE)
    (tmp_path / "empty").mkdir()
    args = {
        "missing": [good, str(tmp_path / "nope.json")],
        "schema": [good, _write(tmp_path / "s.json", {"schema": "other/1"})],
        "garbage": [good, _write(tmp_path / "g.json", None, raw="{not json")],
        "disjoint": [good, _bench(tmp_path, "z", [_point("gru", 1, 1.0, 0.0)])],
        "metric": [good, good, "--metric", "samples_per_sec"],
        "folder": [good, str(tmp_path / "empty")],
    }.get(problem) or [good, _bench(tmp_path, "d", [_bad_point(problem)])]
    result = cli("compare", *args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    if problem == "wrong type":
        assert "points[0].samples_per_s.median" in result.stderr
    if problem == "missing key":
        assert "points[0]" in result.stderr and "samples_per_s" in result.stderr


def test_run_directories_compare_as_single_points(cli, write_config, tmp_path) -> None:
    assert cli("train", write_config(TINY_CNN), "--out", tmp_path / "r1").exit_code == 0
    shutil.copytree(tmp_path / "r1", tmp_path / "r2")  # timings on shared CPUs vary too much
    result = cli("compare", tmp_path / "r1", tmp_path / "r2", "--metric", "samples_per_s")
    assert result.exit_code == 0, result.stdout
    # TINY_CNN leaves channels_last on auto: the run says what it used, and matches by it.
    used = json.loads((tmp_path / "r1" / "run.json").read_text())["performance"]
    suffix = "/channels_last" if used["channels_last"] else ""
    assert f"cnn/train/fp32/bs16{suffix} (run)" in result.stdout


def test_unmeasured_figures_are_na(cli, tmp_path) -> None:
    unmeasured = copy.deepcopy(BASE)
    unmeasured[0]["energy"]["j_per_sample"].update(median=None, iqr=None, values=[])
    result = cli("compare", _bench(tmp_path, "a", BASE), _bench(tmp_path, "b", unmeasured))
    assert result.exit_code == 0
    assert "j_per_sample: n/a for 1 point(s)" in result.stdout


def test_a_run_is_matched_with_the_settings_it_used(tmp_path) -> None:
    """A bf16 / channels_last / compiled run is not the fp32 eager point of a baseline."""
    _write(tmp_path / "run.json", _run("bf16", channels_last=True, compile_=True))
    side = load_side(tmp_path / "run.json")
    (key, point), = side.points.items()
    assert key[:6] == ("cnn", "train", "bf16", 16, True, True)
    assert key[6:] == (tuple(point.settings.sample_shape), None)  # shape, generated tokens
    assert point.id == "cnn/train/bf16/bs16/compile/channels_last (run)"


def test_a_bf16_run_does_not_match_an_fp32_baseline(cli, tmp_path) -> None:
    fp32 = _bench(tmp_path, "fp32", [_point("cnn", 16, 1000.0, 0.0, 0.3)])
    bf16 = _bench(tmp_path, "bf16", [_point("cnn", 16, 1000.0, 0.0, 0.3, precision="bf16")])
    run = _write(tmp_path / "run.json", _run("bf16"))
    refused = cli("compare", fp32, run)
    assert refused.exit_code == 2 and "no point in common" in refused.stderr
    matched = cli("compare", bf16, run, "--metric", "samples_per_s")
    assert matched.exit_code == 0 and "cnn/train/bf16/bs16 (run)" in matched.stdout


def _warnings(cli, base: str, new: str) -> list[str]:
    result = cli("compare", base, new, "--metric", "samples_per_s")
    assert result.exit_code == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("kind", ["bench", "run"])
def test_gpu_driver_power_limit_and_clock_changes_are_warned(cli, tmp_path, kind) -> None:
    """Meters are matched by UUID: a RAPL zone first in the list does not hide the GPU."""
    before = _env(H100, [RAPL, _meter("GPU-a", sm_clock_mhz=1980)])
    after = _env(H100, [_meter("GPU-a", driver="560.35.03", limit=500.0, sm_clock_mhz=1410),
                        RAPL])

    def write(name: str, env: dict) -> str:
        if kind == "bench":
            return _bench(tmp_path, name, [_point("cnn", 16, 1000.0, 0.0, 0.3)], env=env)
        return _write(tmp_path / f"{name}.json", _run(env=env))

    warnings = _warnings(cli, write("a", before), write("b", after))
    assert any("gpu.driver_version: '550.54.15' vs '560.35.03'" in w for w in warnings)
    assert any("gpu.power_limit_w: 700.0 vs 500.0" in w for w in warnings)
    assert any("gpu.sm_clock_mhz" in w for w in warnings)
    assert _warnings(cli, write("c", before), write("d", before)) == []


def test_run_clock_from_measured_window_telemetry(cli, tmp_path) -> None:
    env = _env(H100, [_meter("GPU-a")])
    fast = _write(tmp_path / "a.json", _run(env=env, telemetry={"sm_clock_mhz": 1980}))
    slow = _write(tmp_path / "b.json", _run(env=env, telemetry={"sm_clock_mhz": 1200}))
    jitter = _write(tmp_path / "c.json", _run(env=env, telemetry={"sm_clock_mhz": 1950}))
    assert any("gpu.sm_clock_mhz: 1980.0 vs 1200.0" in w for w in _warnings(cli, fast, slow))
    assert _warnings(cli, fast, jitter) == []  # boost jitter under 5% is not a change


def test_several_gpus_are_matched_by_uuid_not_position(cli, tmp_path) -> None:
    points = [_point("cnn", 16, 1000.0, 0.0, 0.3)]
    a = _bench(tmp_path, "a", points, env=_env(H100, [_meter("GPU-a"), _meter("GPU-b")]))
    same = _bench(tmp_path, "b", points, env=_env(H100, [_meter("GPU-b"), _meter("GPU-a")]))
    assert _warnings(cli, a, same) == []
    capped = _bench(tmp_path, "c", points,
                    env=_env(H100, [_meter("GPU-b", limit=400.0), _meter("GPU-a")]))
    assert _warnings(cli, a, capped) == [
        "warning: environments differ in gpu GPU-b.power_limit_w: 700.0 vs 400.0"]


def test_clock_settings_recorded_by_nvml_are_compared_for_bench_files(cli, tmp_path) -> None:
    """What NvmlGpu.info() writes into env.energy_meters is what compare checks."""
    from fakes import FakeClock, FakeGpu, FakeNVML

    from bigbench.measuring.energy import nvml

    gpu = FakeGpu("GPU-a", H100, [(0, 300.0)])
    backend = FakeNVML([gpu], FakeClock())

    def meter_facts() -> dict:
        device = nvml.open_gpu(gpu.uuid, backend).devices[0]
        return {"key": device.key, "kind": device.kind, **device.info()}

    stock = meter_facts()
    assert stock["application_sm_clock_mhz"] == 1755 and stock["max_sm_clock_mhz"] == 1980
    gpu.application_clock_mhz = 1200  # an administrator locked the clocks lower
    locked = meter_facts()
    points = [_point("cnn", 16, 1000.0, 0.0, 0.3)]
    a = _bench(tmp_path, "a", points, env=_env(H100, [stock]))
    b = _bench(tmp_path, "b", points, env=_env(H100, [locked]))
    assert any("gpu.sm_clock_mhz: 1755.0 vs 1200.0" in w for w in _warnings(cli, a, b))
    assert _warnings(cli, a, _bench(tmp_path, "c", points, env=_env(H100, [stock]))) == []


def test_language_model_points_match_by_sequence_and_generation_length(cli, tmp_path) -> None:
    """Points that differ only in prompt or generated length are different points."""
    def point(seq: int, gen: int | None, rate: float) -> dict:
        p = _point("gpt", 2, rate, 0.0, 0.3)
        p["settings"].update(mode="decode" if gen else "prefill", sample_shape=[seq],
                             gen_tokens=gen)
        p["id"] = f"gpt/{p['settings']['mode']}/fp32/bs2/seq{seq}" + (f"/gen{gen}" if gen else "")
        p["tokens_per_s"] = {"median": rate * (1 if gen else seq), "iqr": 0.0,
                             "values": [rate], "noisy": False}
        return p

    points = [point(8, None, 100.0), point(16, None, 50.0), point(8, 2, 300.0),
              point(8, 4, 280.0)]
    base = _bench(tmp_path, "base", points)
    slower = [dict(p) for p in points]
    slower[3] = point(8, 4, 140.0)
    new = _bench(tmp_path, "new", slower)
    result = cli("compare", base, new, "--metric", "tokens_per_s", "--json")
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) == 4
    assert [r["point"] for r in rows if r["regression"]] == ["gpt/decode/fp32/bs2/seq8/gen4"]
    assert result.exit_code == 1
