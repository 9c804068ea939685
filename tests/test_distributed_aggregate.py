"""Combining the ranks' figures on rank 0: every (host, device) counted once, float64 sums,
throughput over the slowest window, nulls with reasons, JSON-safe output."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import random

import jsonschema
import pytest
from conftest import TINY_CNN, undeclared_keys
from fakes import LivePowercap

from bigbench.distributed.aggregate import RankSummary, combine, rank_summary
from bigbench.measuring.energy import rapl
from bigbench.measuring.stats import summarize_durations
from bigbench.rank import Rank
from bigbench.records import RunRecord, json_schema
from bigbench.records.run import RunConfig, RunTime, TrainSettings


def entry(key: str, energy_j: float | None, uncertainty_j: float | None = 0.5,
          kind: str | None = None, reason: str | None = None) -> dict:
    """A device entry in the shape of run.json's energy.devices."""
    kind = kind or ("gpu" if key.startswith("gpu:") else "cpu")
    return {"key": key, "kind": kind, "name": key.split(":")[-1], "energy_j": energy_j,
            "uncertainty_j": uncertainty_j if energy_j is not None else None,
            "method": "rapl" if kind != "gpu" else "nvml_energy_counter",
            "measured": energy_j is not None, "reason": reason,
            "quality": "ok" if energy_j is not None else "invalid",
            "quality_reasons": [] if energy_j is not None else [reason or "no reading"]}


def summary(rank: int, local_rank: int, host: str, devices: list[dict], samples: int = 64,
            time_s: float = 2.0, durations_s: list[float] | None = None) -> RankSummary:
    durations = durations_s if durations_s is not None else [0.25] * 8
    return rank_summary(Rank(rank=rank, world_size=4, local_rank=local_rank), host=host,
                        device=f"cuda:{local_rank}", samples=samples, steps=len(durations),
                        time_s=time_s, durations_s=durations,
                        peak_memory_bytes=1 << 30, energy_devices=devices)


def two_hosts() -> list[RankSummary]:
    """node-a: ranks 0 and 1 share one GPU and both report the CPU package (slightly
    different readings: their windows differ). node-b: ranks 2 and 3 own a GPU each and both
    report package-0 (identical readings); only rank 2 reports package-1. The key
    cpu:package-0 exists on both hosts: different devices."""
    return [
        summary(0, 0, "node-a", [entry("gpu:GPU-a", 100.0), entry("cpu:package-0", 50.0),
                                 entry("dram:dram-0", 5.0, kind="dram")], time_s=2.0),
        summary(1, 1, "node-a", [entry("gpu:GPU-a", 101.5), entry("cpu:package-0", 50.25)],
                time_s=2.5),
        summary(2, 0, "node-b", [entry("gpu:GPU-b0", 80.0), entry("cpu:package-0", 40.0),
                                 entry("cpu:package-1", 41.0)], time_s=2.25),
        summary(3, 1, "node-b", [entry("gpu:GPU-b1", 82.0), entry("cpu:package-0", 40.0)],
                samples=32, time_s=1.5),
    ]


def test_each_device_counts_once_and_the_total_is_the_hand_sum() -> None:
    out = combine(two_hosts())
    energy = out["energy"]
    counted = [(d["host"], d["key"]) for d in energy["devices"]]
    assert len(counted) == len(set(counted)) == 7
    assert ("node-a", "cpu:package-0") in counted and ("node-b", "cpu:package-0") in counted
    # the lowest rank's reading of each shared device, each device once; never averaged
    assert energy["total_j"] == 100.0 + 50.0 + 5.0 + 80.0 + 40.0 + 41.0 + 82.0
    assert energy["uncertainty_j"] == 7 * 0.5
    assert energy["status"] == "measured" and energy["reason"] is None
    assert energy["j_per_sample"] == energy["total_j"] / (3 * 64 + 32)
    dropped = {(d["host"], d["key"], d["rank"]): d for d in energy["dropped_duplicates"]}
    assert set(dropped) == {("node-a", "gpu:GPU-a", 1), ("node-a", "cpu:package-0", 1),
                            ("node-b", "cpu:package-0", 3)}
    assert dropped["node-a", "gpu:GPU-a", 1]["kept_rank"] == 0
    assert dropped["node-a", "gpu:GPU-a", 1]["difference_j"] == 1.5
    assert not dropped["node-a", "gpu:GPU-a", 1]["agrees"]
    assert dropped["node-b", "cpu:package-0", 3]["agrees"]
    ranks = {r["rank"]: r for r in out["ranks"]}
    assert ranks[0]["energy_j"] == 155.0 and ranks[2]["energy_j"] == 161.0
    assert ranks[3]["energy_j"] == 82.0 and ranks[3]["energy_devices"] == ["gpu:GPU-b1"]
    assert ranks[1]["energy_j"] is None  # not 0 J: its readings are under rank 0
    assert "counted under another rank" in ranks[1]["reasons"]["energy_j"]
    assert math.fsum(r["energy_j"] for r in out["ranks"] if r["energy_j"] is not None) \
        == energy["total_j"]
    assert out["hosts"] == [{"host": "node-a", "ranks": 2, "rank_ids": [0, 1]},
                            {"host": "node-b", "ranks": 2, "rank_ids": [2, 3]}]
    assert out["world_size"] == 4


def test_the_kept_reading_does_not_depend_on_arrival_order() -> None:
    summaries = two_hosts()
    shuffled = summaries[:]
    random.Random(3).shuffle(shuffled)
    assert combine(shuffled) == combine(summaries) == combine(summaries[::-1])


def test_a_reading_beats_an_absence_of_a_shared_device() -> None:
    out = combine([summary(0, 0, "h", [entry("gpu:GPU-x", None, reason="NVML busy")]),
                   summary(1, 1, "h", [entry("gpu:GPU-x", 90.0)])])
    energy = out["energy"]
    assert energy["status"] == "measured" and energy["total_j"] == 90.0
    assert [d["rank"] for d in energy["devices"]] == [1]
    (drop,) = energy["dropped_duplicates"]
    assert drop["rank"] == 0 and drop["kept_rank"] == 1 and drop["energy_j"] is None


def test_energy_is_summed_in_float64_without_loss() -> None:
    tiny = [1e-16] * 10
    devices = [entry("cpu:package-0", 1.0)] + [entry(f"gpu:GPU-{i}", t)
                                                  for i, t in enumerate(tiny)]
    total = combine([summary(0, 0, "h", devices)])["energy"]["total_j"]
    assert total == math.fsum([1.0, *tiny])
    assert total != sum([1.0, *tiny])  # a naive left-to-right sum loses every tiny reading
    assert total > 1.0


def test_throughput_is_all_samples_over_the_slowest_window() -> None:
    summaries = [summary(0, 0, "a", [], samples=100, time_s=2.0, durations_s=[0.1, 0.2]),
                 summary(1, 1, "a", [], samples=100, time_s=4.0, durations_s=[0.3, 0.4]),
                 summary(2, 0, "b", [], samples=60, time_s=3.0, durations_s=[0.5])]
    out = combine(summaries)
    assert out["samples"] == 260 and out["time_s"] == 4.0 and out["slowest_rank"] == 1
    assert out["samples_per_s"] == 260 / 4.0  # not the sum of the ranks' own rates
    assert [r["samples_per_s"] for r in out["ranks"]] == [50.0, 25.0, 20.0]
    # overall percentiles pool every step; per-rank ones stay each rank's own
    assert out["step_time_s"] == summarize_durations([0.1, 0.2, 0.3, 0.4, 0.5])
    assert out["ranks"][2]["step_time_s"] == summarize_durations([0.5])


def test_a_rank_without_energy_keeps_the_total_and_says_why() -> None:
    summaries = two_hosts()
    summaries[3] = dataclasses.replace(summaries[3], energy_devices=[])
    out = combine(summaries)
    assert out["energy"]["status"] == "measured"
    assert out["energy"]["total_j"] == 100.0 + 50.0 + 5.0 + 80.0 + 40.0 + 41.0
    rank3 = out["ranks"][3]
    assert rank3["energy_j"] is None and rank3["energy_devices"] == []
    assert rank3["reasons"]["energy_j"] == "the rank reported no energy meter"


def test_a_host_without_any_meter_makes_the_energy_partial() -> None:
    out = combine([summary(0, 0, "a", [entry("cpu:package-0", 10.0)]),
                   summary(1, 0, "b", [])])
    energy = out["energy"]
    assert energy["status"] == "partial" and energy["total_j"] == 10.0
    assert "b: no rank on this host reported an energy meter" in energy["reason"]


def test_a_device_with_null_energy_makes_the_total_partial_with_its_reason() -> None:
    summaries = two_hosts()
    summaries[3] = dataclasses.replace(summaries[3], energy_devices=[
        entry("gpu:GPU-b1", None, reason="NVML: not supported")])
    energy = combine(summaries)["energy"]
    assert energy["status"] == "partial"
    assert energy["total_j"] == 100.0 + 50.0 + 5.0 + 80.0 + 40.0 + 41.0  # null, not 0, left out
    assert "node-b gpu GPU-b1: NVML: not supported" in energy["reason"]
    (gpu,) = [d for d in energy["devices"] if d["key"] == "gpu:GPU-b1"]
    assert gpu["energy_j"] is None and gpu["measured"] is False


def test_no_measured_device_leaves_every_energy_figure_null_with_a_reason() -> None:
    out = combine([summary(0, 0, "a", [entry("gpu:GPU-a", None, reason="MIG slice")]),
                   summary(1, 1, "a", [])])
    energy = out["energy"]
    assert energy["status"] == "unavailable" and energy["total_j"] is None
    for key in ("total_j", "uncertainty_j", "j_per_sample", "samples_per_j", "avg_power_w"):
        assert energy[key] is None and energy["reasons"][key]
    assert "MIG slice" in energy["reasons"]["total_j"]


def test_a_device_without_a_bound_leaves_the_total_bound_null() -> None:
    energy = combine([summary(0, 0, "a", [entry("gpu:GPU-a", 10.0, uncertainty_j=None),
                                          entry("cpu:package-0", 5.0)])])["energy"]
    assert energy["total_j"] == 15.0 and energy["uncertainty_j"] is None
    assert "a gpu GPU-a" in energy["reasons"]["uncertainty_j"]
    assert energy["j_per_sample_uncertainty"] is None


def test_a_non_finite_reading_is_no_measurement() -> None:
    out = combine([summary(0, 0, "a", [entry("gpu:GPU-a", math.nan),
                                       entry("cpu:package-0", 5.0)])])
    assert out["energy"]["status"] == "partial" and out["energy"]["total_j"] == 5.0
    assert "non-finite" in out["energy"]["reason"]
    json.dumps(out, allow_nan=False)


def test_an_empty_window_gives_null_throughput_with_a_reason() -> None:
    out = combine([summary(0, 0, "a", [entry("cpu:package-0", 5.0)], samples=0, time_s=0.0,
                           durations_s=[])])
    assert out["samples_per_s"] is None and out["reasons"]["samples_per_s"]
    assert out["ranks"][0]["samples_per_s"] is None
    assert out["step_time_s"]["p50"] is None
    assert out["energy"]["j_per_sample"] is None and out["energy"]["reasons"]["j_per_sample"]
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("summaries", [two_hosts(), two_hosts()[:1],
                                       [summary(0, 0, "a", [])]])
def test_the_section_is_strict_json(summaries) -> None:
    out = combine(summaries)
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_summaries_travel_as_plain_data() -> None:
    first = two_hosts()[0]
    assert pickle.loads(pickle.dumps(first)) == first
    assert RankSummary(**json.loads(json.dumps(dataclasses.asdict(first)))) == first
    assert first.step_time_s == summarize_durations([0.25] * 8)


def test_combine_refuses_no_ranks_and_a_rank_twice() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine([])
    with pytest.raises(ValueError, match="same rank"):
        combine([summary(0, 0, "a", []), summary(0, 0, "b", [])])


def test_inputs_are_not_modified() -> None:
    summaries = two_hosts()
    before = [dataclasses.asdict(s) for s in summaries]
    combine(summaries)
    assert [dataclasses.asdict(s) for s in summaries] == before


def test_a_run_json_with_the_combined_section_validates(cli, tmp_path, monkeypatch) -> None:
    """A real run's energy entries, as two simulated hosts would send them, combined and
    added to its run.json: valid through the models and the exported JSON Schema, every key
    declared."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CNN)
    live = LivePowercap(tmp_path / "powercap", {"intel-rapl:0": 40.0, "intel-rapl:0:2": 4.0},
                        period_s=0.002).start()
    try:
        monkeypatch.setenv(rapl.ROOT_ENV, str(tmp_path / "powercap"))
        assert cli("train", config, "--out", tmp_path / "run").exit_code == 0
    finally:
        live.stop()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    devices = run["energy"]["devices"]
    assert devices and all(d["measured"] for d in devices)
    throughput = run["throughput"]
    summaries = [
        rank_summary(Rank(rank=r, world_size=4, local_rank=r % 2), host=host, device="cpu",
                     samples=throughput["measured_samples"], steps=throughput["measured_steps"],
                     time_s=throughput["measured_time_s"], durations_s=[0.01, 0.02],
                     peak_memory_bytes=None, energy_devices=devices,
                     reasons={"peak_memory_bytes": "CPU run: no device allocator"})
        for r, host in enumerate(["node-a", "node-a", "node-b", "node-b"])]
    section = combine(summaries)
    energy = section["energy"]
    assert len(energy["devices"]) == 2 * len(devices)  # each host's zones once
    assert energy["total_j"] == pytest.approx(2 * run["energy"]["total_j"], rel=1e-12)
    run["distributed"] = section
    record = RunRecord.model_validate(run)
    jsonschema.Draft202012Validator(json_schema("run")).validate(run)
    assert record.distributed is not None and record.distributed.world_size == 4
    assert record.distributed.energy.total_j == energy["total_j"]
    assert undeclared_keys(record, (RunConfig, TrainSettings, RunTime)) == []
    broken = json.loads(json.dumps(run))
    broken["distributed"]["ranks"][0]["samples"] = "many"
    with pytest.raises(ValueError):
        RunRecord.model_validate(broken)
