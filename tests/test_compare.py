"""bigbench compare: matching, noise, regressions and exit codes 0/1/2."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import TINY_CNN


def _point(model: str, batch: int, rate: float, iqr: float, j: float | None = None) -> dict:
    return {"id": f"{model}/train/fp32/bs{batch}",
            "settings": {"model": model, "mode": "train", "precision": "fp32",
                         "batch_size": batch, "compile": False, "channels_last": False},
            "status": "ok", "samples_per_s": {"median": rate, "iqr": iqr},
            "energy": {"j_per_sample": {"median": j, "iqr": 0.0 if j else None}},
            "latency_s": {"p50": 1.0 / rate}, "memory": {}, "flops": {}}


def _bench(tmp_path, name: str, points: list[dict], device: str = "AMD EPYC") -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"schema": "bigbench.bench/1", "points": points,
                                "env": {"device": {"name": device}, "torch": "2.13.0"}}))
    return str(path)


BASE = [_point("cnn", 32, 1000.0, 20.0, 0.5), _point("rnn", 32, 5000.0, 50.0, 0.1)]


def test_identical_results_exit_0(cli, tmp_path) -> None:
    path = _bench(tmp_path, "a", BASE)
    result = cli("compare", path, path)
    assert result.exit_code == 0 and "no regression" in result.stdout


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
    noisy[0]["samples_per_s"] = {"median": 900.0, "iqr": 250.0}  # ranges overlap
    assert cli("compare", _bench(tmp_path, "a", BASE), _bench(tmp_path, "b", noisy)
               ).exit_code == 0
    slightly = copy.deepcopy(BASE)
    slightly[0]["samples_per_s"] = {"median": 960.0, "iqr": 0.0}
    a, b = _bench(tmp_path, "c", BASE), _bench(tmp_path, "d", slightly)
    assert cli("compare", a, b).exit_code == 0  # 4% < 5% threshold
    assert cli("compare", a, b, "--fail-above", "3").exit_code == 1


def test_unmatched_points_and_environment_warnings(cli, tmp_path) -> None:
    other = [BASE[0], _point("gru", 64, 100.0, 1.0)]
    result = cli("compare", _bench(tmp_path, "a", BASE),
                 _bench(tmp_path, "b", other, device="NVIDIA H100 80GB HBM3"))
    assert result.exit_code == 0
    assert "only in base: rnn/train/fp32/bs32" in result.stdout
    assert "only in new: gru/train/fp32/bs64" in result.stdout
    assert "environments differ in device.name" in result.stderr


@pytest.mark.parametrize("problem", ["missing", "schema", "garbage", "disjoint", "metric",
                                     "damaged"])
def test_bad_input_exits_2(cli, tmp_path, problem) -> None:
    good = _bench(tmp_path, "a", BASE)
    args = {
        "missing": [good, str(tmp_path / "nope.json")],
        "schema": [good, _write(tmp_path / "s.json", {"schema": "other/1"})],
        "garbage": [good, _write(tmp_path / "g.json", None, raw="{not json")],
        "disjoint": [good, _bench(tmp_path, "z", [_point("gru", 1, 1.0, 0.0)])],
        "metric": [good, good, "--metric", "samples_per_sec"],
        "damaged": [good, _bench(tmp_path, "d", [{"id": "x", "settings": "oops"}])],
    }[problem]
    result = cli("compare", *args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def _write(path, document, raw: str | None = None) -> str:
    path.write_text(raw if raw is not None else json.dumps(document))
    return str(path)


def test_run_directories_compare_as_single_points(cli, write_config, tmp_path) -> None:
    config = write_config(TINY_CNN)
    for name in ("r1", "r2"):
        assert cli("train", config, "--out", tmp_path / name).exit_code == 0
    result = cli("compare", tmp_path / "r1", tmp_path / "r2", "--metric", "samples_per_s",
                 "--fail-above", "90")
    assert result.exit_code == 0, result.stdout
    assert "cnn/train/fp32/bs16" in result.stdout


def test_values_of_the_wrong_type_are_not_measured(cli, tmp_path) -> None:
    odd = copy.deepcopy(BASE)
    odd[0]["samples_per_s"] = {"median": "fast", "iqr": None}
    del odd[1]["id"]
    result = cli("compare", _bench(tmp_path, "a", BASE), _bench(tmp_path, "b", odd))
    assert result.exit_code == 0
    assert "n/a for 1 point(s)" in result.stdout
