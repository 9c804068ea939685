"""``bigbench sweep``: the plan and its interleaved order, a real CPU sweep end to end, a
GPU-style sweep over power limits against a fake limiter (applied per trial, always restored),
time and energy to a target, the cooldown, refusals, and the report's frontier figure."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bigbench.config import load_config
from bigbench.errors import BigbenchError
from bigbench.interrupt import StopRequest
from bigbench.records import SweepDocument, json_schema, load_sweep
from bigbench.sweep import gpu, plan
from bigbench.sweep.gpu import DeviceFacts, cool_down
from bigbench.sweep.run import run_sweep
from bigbench.trainer import TrainResult

#: A CPU config whose every trial trains 6 steps (2 warm-up) and evaluates: about a second.
TINY = """\
name: tiny
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 256, test_size: 64}
train:
  max_steps: 6
  batch_size: 16
  warmup_steps: 2
  log_every: 4
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
device: cpu
"""
SWEEP = TINY + "sweep: {batch_sizes: [8, 16], repeats: 2}\n"


def check_schema(document: dict) -> SweepDocument:
    """sweep.json against its exported JSON Schema (an independent validator) and its model."""
    jsonschema.Draft202012Validator(json_schema("sweep")).validate(document)
    return SweepDocument.model_validate(document)


# --- the plan -------------------------------------------------------------------------------------

def test_combinations_cover_every_axis_in_order(tmp_path) -> None:
    config = load_config(_write(tmp_path, TINY + "sweep: {batch_sizes: [8, 16], precisions: "
                                "[fp32, bf16], power_limits: [250, max]}\n"))
    combos = plan.combinations(config.sweep, config)
    assert [c.id for c in combos] == [
        "bs8-fp32-250W", "bs8-fp32-max", "bs8-bf16-250W", "bs8-bf16-max",
        "bs16-fp32-250W", "bs16-fp32-max", "bs16-bf16-250W", "bs16-bf16-max"]
    assert combos[2].overrides() == ["train.batch_size=8", "train.precision=bf16"]
    # A null axis is the config's own setting; no power limits leaves the limit alone.
    only = load_config(_write(tmp_path, TINY + "sweep: {precisions: [bf16]}\n"))
    (combo,) = plan.combinations(only.sweep, only)
    assert (combo.id, combo.batch_size, combo.power_limit) == ("bs16-bf16", 16, None)


def test_rounds_are_interleaved_and_rotated() -> None:
    combos = [plan.Combination(name, 8, "fp32") for name in "abc"]
    trials = plan.interleaved(combos, 4)
    order = [t.combination.id for t in trials]
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    # Every round runs every combination once; each is first in some round.
    for r in range(4):
        assert sorted(order[3 * r:3 * r + 3]) == ["a", "b", "c"]
    assert {order[3 * r] for r in range(3)} == {"a", "b", "c"}
    assert [t.id for t in trials[:4]] == ["001-a-r1", "002-b-r1", "003-c-r1", "004-b-r2"]
    assert [t.position for t in trials] == list(range(12))


# --- a real sweep on the CPU ----------------------------------------------------------------------

def test_a_cpu_sweep_end_to_end(cli, tmp_path) -> None:
    out = tmp_path / "sweep"
    result = cli("sweep", _write(tmp_path, SWEEP), "--out", out)
    assert result.exit_code == 0, result.stderr
    document = json.loads((out / "sweep.json").read_text())
    typed = check_schema(document)
    assert load_sweep(out).status == typed.status == "completed"
    assert document["schema"] == "bigbench.sweep/1"
    # Interleaved: round 2 starts with the second combination.
    assert [t["combination"] for t in document["trials"]] == [
        "bs8-fp32", "bs16-fp32", "bs16-fp32", "bs8-fp32"]
    assert document["planned"] == [t["id"] for t in document["trials"]]
    for trial in document["trials"]:
        run = json.loads((Path(trial["run_dir"]) / "run.json").read_text())
        assert trial["status"] == run["status"] == "completed"
        assert run["config"]["train"]["batch_size"] == trial["batch_size"]
        assert trial["samples_per_s"] == run["throughput"]["samples_per_s"] > 0
        assert trial["s_per_sample"] == pytest.approx(1 / trial["samples_per_s"])
        # No energy meter in the tests: null with the run's reason, never 0.
        assert trial["j_per_sample"] is None and "RAPL" in trial["reasons"]["j_per_sample"]
        assert trial["limit_in_effect_w"] is None and "CPU" in trial["reasons"][
            "limit_in_effect_w"]
        assert 0.0 <= trial["eval"]["accuracy"] <= 1.0
    for entry in document["results"]:
        assert entry["completed"] == 2 and len(entry["samples_per_s"]["values"]) == 2
        assert entry["s_per_sample"] == pytest.approx(1 / entry["samples_per_s"]["median"])
        assert entry["energy_j"] is None and entry["pareto"] is None and not entry["optimal"]
    frontier = document["frontier"]
    assert frontier["basis"] == "per_sample" and frontier["front"] == []
    assert frontier["optimum"]["combination"] is None
    assert frontier["optimum"]["reason"] == "no point has both a time and an energy figure"
    assert set(frontier["excluded"]) == {"bs8-fp32", "bs16-fp32"}
    assert all("RAPL" in why for why in frontier["excluded"].values())
    assert "bs8-fp32" in result.stdout and "optimum at eta 0.5: n/a" in result.stdout
    assert f"bigbench report {out}" in result.stderr


def test_markdown_and_json_output(cli, tmp_path) -> None:
    config = _write(tmp_path, TINY + "sweep: {batch_sizes: [8]}\n")
    markdown = cli("sweep", config, "--out", tmp_path / "a", "--markdown")
    assert markdown.exit_code == 0, markdown.stderr
    lines = markdown.stdout.splitlines()
    assert lines[0].startswith("| combination | batch | precision | trials | samples/s |")
    assert lines[2].startswith("| bs8-fp32 | 8 | fp32 | 1/1 |")
    printed = cli("sweep", config, "--out", tmp_path / "b", "--json", "--eta", "1")
    assert printed.exit_code == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["settings"]["eta"] == 1.0 and document["frontier"]["optimum"]["eta"] == 1.0


# --- a GPU-style sweep against a fake limiter -----------------------------------------------------

class PowerControlError(BigbenchError):
    """Stands in for the limiter's own error (a BigbenchError with the fix)."""


class FakeLimiter:
    """Records every call; power limits between 100 and 400 W, default 300 W."""

    def __init__(self, log: list[tuple], temperature_c: float = 60.0) -> None:
        self.limit, self.log, self.temperature_c = 300.0, log, temperature_c

    def resolve(self, spec: float | str) -> float:
        watts = {"min": 100.0, "max": 400.0, "default": 300.0}.get(spec, spec)  # type: ignore[arg-type]
        if not 100.0 <= watts <= 400.0:
            raise PowerControlError(f"power limit {watts:g} W is outside this GPU's range "
                                    "100–400 W")
        return watts

    def apply(self, watts: float) -> None:
        self.limit = watts
        self.log.append(("apply", watts))

    def restore(self) -> None:
        self.limit = 300.0
        self.log.append(("restore",))

    @property
    def restored(self) -> bool:
        return self.limit == 300.0

    def snapshot(self) -> dict[str, Any]:
        return {"power_limit_w": self.limit, "sm_clock_mhz": 1980,
                "temperature_c": self.temperature_c, "throttle_reasons": [], "reasons": {}}

    def allowed_range_w(self) -> tuple[float, float]:
        return 100.0, 400.0


def gpu_record(config, limiter: FakeLimiter, target: dict | None = None) -> dict[str, Any]:
    """A run.json as a GPU run would write it: faster and hungrier at a higher limit."""
    batch = config.train.batch_size
    rate = 100.0 * batch * (limiter.limit / 400.0) ** 0.5
    power = 0.8 * limiter.limit
    record = {
        "schema": "bigbench.run/1", "status": "completed", "name": config.name,
        "config": config.model_dump(mode="json"),
        "env": {"energy_meters": [{"key": "gpu:GPU-fake", "kind": "gpu",
                                   "power_limit_w": limiter.limit}]},
        "throughput": {"samples_per_s": rate, "reasons": {}},
        "energy": {"status": "measured", "quality": "ok", "total_j": 10.0,
                   "j_per_sample": power / rate, "avg_power_w": power, "reasons": {},
                   "devices": [{"kind": "gpu", "name": "Fake GPU", "measured": True,
                                "telemetry_end": {"power_limit_w": limiter.limit}}]},
        "eval": {"accuracy": 0.9, "loss": 0.3},
    }
    if target is not None:
        record["target"] = target
    return record


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device, a fake limiter and a run_training that writes a GPU-like run.json.

    Returns the call log and a dict of knobs: ``fail_on`` (a call number that raises),
    ``target`` (a function of the config returning a run.json target section).
    """
    log: list[tuple] = []
    limiter = FakeLimiter(log)
    knobs: dict[str, Any] = {"fail_on": None, "target": None, "calls": 0, "limiter": limiter,
                             "interrupt_on": None}

    def open_limiter(device: DeviceFacts, state_file: Path) -> FakeLimiter:
        log.append(("open", device.index, state_file.name))
        state_file.write_text(json.dumps(limiter.snapshot()))  # before any change
        return limiter

    def run_training(config, *, out, stop, **_: Any) -> TrainResult:
        knobs["calls"] += 1
        log.append(("train", config.train.batch_size, limiter.limit))
        if knobs["calls"] == knobs["fail_on"]:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if knobs["calls"] == knobs["interrupt_on"]:
            stop.signal = signal.SIGINT
        out.mkdir()
        target = knobs["target"](config) if knobs["target"] else None
        record = gpu_record(config, limiter, target)
        if stop.requested:
            record.update(status="interrupted", stop_reason="interrupted",
                          stop_detail="stopped by SIGINT")
        (out / "run.json").write_text(json.dumps(record))
        return TrainResult(out, record, 130 if stop.requested else 0)

    monkeypatch.setattr(gpu, "device_facts",
                        lambda spec: DeviceFacts("cuda", "Fake GPU", 0, "GPU-fake"))
    monkeypatch.setattr(gpu, "open_limiter", open_limiter)
    monkeypatch.setattr("bigbench.trainer.run_training", run_training)
    return log, knobs


LIMITS = TINY + "sweep: {batch_sizes: [16], power_limits: [200, max], repeats: 2}\n"


def test_limits_are_applied_per_trial_and_restored(fake_gpu, cli, tmp_path) -> None:
    log, _ = fake_gpu
    out = tmp_path / "sweep"
    result = cli("sweep", _write(tmp_path, LIMITS), "--out", out)
    assert result.exit_code == 0, result.stderr
    assert log[0] == ("open", 0, "gpu_state.json") and (out / "gpu_state.json").is_file()
    # Each trial runs at its own limit (rounds rotated), and the original comes back once.
    assert log[1:] == [("apply", 200.0), ("train", 16, 200.0), ("apply", 400.0),
                       ("train", 16, 400.0), ("apply", 400.0), ("train", 16, 400.0),
                       ("apply", 200.0), ("train", 16, 200.0), ("restore",)]
    document = json.loads((out / "sweep.json").read_text())
    check_schema(document)
    assert document["gpu"]["restored"] is True
    assert document["gpu"]["limits_w"] == {"200W": 200.0, "max": 400.0}
    assert document["gpu"]["original"]["power_limit_w"] == 300.0
    for trial in document["trials"]:
        assert trial["limit_in_effect_w"] == trial["power_limit_w"]
        assert trial["telemetry_start"]["power_limit_w"] == trial["power_limit_w"]
        assert trial["max_power_limit_w"] == 400.0  # from the limiter's range
    # At 200 W the fake trains slower on less energy per sample: both are on the front.
    frontier = document["frontier"]
    assert frontier["front"] == ["bs16-fp32-200W", "bs16-fp32-max"]
    optimum = frontier["optimum"]
    assert (optimum["max_power_w"], optimum["max_power_source"]) == (400.0,
                                                                     "gpu_max_power_limit")
    # By hand: 200 W → 1131.4 samples/s at 160 W; 400 W → 1600 samples/s at 320 W. At eta
    # 0.5 time is priced at the 400 W maximum: 280 W / 1131.4 > 360 W / 1600, so max wins.
    slow, fast = 1 / (1600 * 0.5 ** 0.5), 1 / 1600
    costs = {"bs16-fp32-200W": 0.5 * 160 * slow + 0.5 * 400 * slow,
             "bs16-fp32-max": 0.5 * 320 * fast + 0.5 * 400 * fast}
    assert {r["id"]: r["cost"] for r in document["results"]} == pytest.approx(costs)
    assert optimum["combination"] == min(costs, key=costs.get) == "bs16-fp32-max"
    assert "★ optimum" in result.stdout and "max (400 W)" in result.stdout


def test_a_trial_that_raises_is_recorded_and_the_limit_still_restored(fake_gpu, cli,
                                                                      tmp_path) -> None:
    log, knobs = fake_gpu
    knobs["fail_on"] = 2
    out = tmp_path / "sweep"
    result = cli("sweep", _write(tmp_path, LIMITS), "--out", out)
    assert result.exit_code == 1
    assert "failed trials: 002-bs16-fp32-max-r1" in result.stderr
    assert log[-1] == ("restore",) and log.count(("restore",)) == 1
    assert [e for e in log if e[0] == "train"] == [("train", 16, 200.0), ("train", 16, 400.0),
                                                  ("train", 16, 400.0), ("train", 16, 200.0)]
    document = check_schema(json.loads((out / "sweep.json").read_text()))
    failed = document.trials[1]
    assert failed.status == "failed" and "illegal memory access" in failed.reason
    assert document.status == "completed" and document.gpu.restored is True
    assert [r.completed for r in document.results] == [2, 1]


def test_an_error_in_bigbench_still_restores_the_limit(fake_gpu, monkeypatch,
                                                       tmp_path) -> None:
    log, _ = fake_gpu

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("bigbench.sweep.summary.summarise", broken)
    config = load_config(_write(tmp_path, LIMITS))
    with pytest.raises(ZeroDivisionError):
        run_sweep(config, out=tmp_path / "sweep")
    assert log[-1] == ("restore",)
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert document["status"] == "failed" and "ZeroDivisionError" in document["error"]


def test_ctrl_c_stops_after_the_trial_keeps_it_and_restores(fake_gpu, tmp_path) -> None:
    log, knobs = fake_gpu
    knobs["interrupt_on"] = 2
    stop = StopRequest()
    run = run_sweep(load_config(_write(tmp_path, LIMITS)), out=tmp_path / "sweep", stop=stop)
    document = run.document
    assert document["status"] == "interrupted" and "2 of 4" in document["reason"]
    assert [t["status"] for t in document["trials"]] == ["completed", "interrupted"]
    assert log[-1] == ("restore",) and document["gpu"]["restored"] is True
    check_schema(json.loads((tmp_path / "sweep" / "sweep.json").read_text()))


def test_a_second_ctrl_c_inside_a_trial_still_restores(fake_gpu, monkeypatch,
                                                       tmp_path) -> None:
    log, knobs = fake_gpu

    def killed(config, **_: Any) -> TrainResult:
        raise KeyboardInterrupt

    monkeypatch.setattr("bigbench.trainer.run_training", killed)
    run = run_sweep(load_config(_write(tmp_path, LIMITS)), out=tmp_path / "sweep")
    assert run.document["status"] == "interrupted" and log[-1] == ("restore",)
    assert run.document["trials"][0]["status"] == "interrupted"


def test_a_limit_outside_the_range_is_refused_before_any_trial(fake_gpu, cli,
                                                               tmp_path) -> None:
    log, _ = fake_gpu
    config = _write(tmp_path, TINY + "sweep: {power_limits: [200, 900]}\n")
    result = cli("sweep", config, "--out", tmp_path / "sweep")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: power limit 900 W is outside this GPU's range 100–400 W"]
    assert not any(e[0] in ("apply", "train") for e in log) and log[-1] == ("restore",)
    assert not (tmp_path / "sweep").exists()  # nothing left behind


def test_the_cooldown_waits_for_the_gpu_between_trials(fake_gpu, tmp_path,
                                                       monkeypatch) -> None:
    log, knobs = fake_gpu
    readings = iter([82.0, 81.0, 75.0, 69.0] * 10)
    knobs["limiter"].snapshot = lambda: {"power_limit_w": 300.0, "temperature_c": next(readings)}
    monkeypatch.setattr(gpu, "POLL_S", 0.001)
    config = load_config(_write(tmp_path, TINY + "sweep: {batch_sizes: [8, 16], power_limits: "
                                "[max], cooldown_below_c: 70, cooldown_timeout_s: 30}\n"))
    document = run_sweep(config, out=tmp_path / "sweep").document
    first, second = document["trials"]
    assert "cooldown" not in first  # nothing to cool down from before the first trial
    assert second["cooldown"]["timed_out"] is False
    assert second["cooldown"]["temperature_end_c"] < 70.0
    check_schema(document)


def test_cool_down_waits_time_then_temperature_with_a_timeout() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += max(seconds, 0.001)

    temperatures = iter([90.0, 88.0, 85.0, 79.0, 75.0])
    done = cool_down(3.0, 80.0, 60.0, lambda: next(temperatures), lambda: False, sleep,
                     lambda: now[0])
    assert done["temperature_start_c"] == 90.0 and done["temperature_end_c"] == 79.0
    assert done["timed_out"] is False and done["waited_s"] >= 3.0 + 2 * gpu.POLL_S
    now[0] = 0.0
    hot = cool_down(0.0, 50.0, 5.0, lambda: 85.0, lambda: False, sleep, lambda: now[0])
    assert hot["timed_out"] is True and 5.0 <= hot["waited_s"] < 5.0 + 2 * gpu.POLL_S
    now[0] = 0.0
    plain = cool_down(2.0, None, 5.0, None, lambda: False, sleep, lambda: now[0])
    assert plain["timed_out"] is None and plain["temperature_end_c"] is None
    stopped = cool_down(100.0, None, 5.0, None, lambda: True, sleep, lambda: now[0])
    assert stopped["waited_s"] == 0.0  # Ctrl-C ends the wait at once


# --- time and energy to a target ------------------------------------------------------------------

def test_time_and_energy_to_target_come_from_each_runs_target_section(fake_gpu, cli,
                                                                       tmp_path) -> None:
    _, knobs = fake_gpu

    def target(config) -> dict[str, Any]:
        # The fabricated runs: batch 8 reaches 95% in 40 s and 6000 J; batch 32 never does.
        reached = config.train.batch_size == 8
        return {"metric": "accuracy", "goal": 0.95, "direction": "max", "reached": reached,
                "steps_to_target": 500 if reached else None,
                "samples_to_target": 4000 if reached else None,
                "time_to_target_s": 40.0 if reached else None,
                "energy_to_target_j": 6000.0 if reached else None, "evaluations": [],
                "reasons": {} if reached else {
                    "time_to_target_s": "not reached: best accuracy 0.93 < 0.95",
                    "energy_to_target_j": "not reached: best accuracy 0.93 < 0.95"}}

    knobs["target"] = target
    out = tmp_path / "sweep"
    config = _write(tmp_path, TINY + "sweep: {batch_sizes: [8, 32]}\n")
    result = cli("sweep", config, "--out", out)
    assert result.exit_code == 0, result.stderr
    document = json.loads((out / "sweep.json").read_text())
    check_schema(document)
    assert document["target"] == {"metric": "accuracy", "goal": 0.95, "direction": "max"}
    first, second = document["trials"]
    assert (first["time_to_target_s"], first["energy_to_target_j"]) == (40.0, 6000.0)
    assert first["target_reached"] is True
    assert second["time_to_target_s"] is None and second["target_reached"] is False
    assert "best accuracy 0.93" in second["reasons"]["time_to_target_s"]
    frontier = document["frontier"]
    assert frontier["basis"] == "to_target" and frontier["energy_unit"] == "J"
    assert frontier["front"] == ["bs8-fp32"]
    assert "best accuracy 0.93" in frontier["excluded"]["bs32-fp32"]
    results = {r["id"]: r for r in document["results"]}
    assert results["bs8-fp32"]["time_s"] == 40.0 and results["bs8-fp32"]["energy_j"] == 6000.0
    assert results["bs32-fp32"]["time_s"] is None and results["bs32-fp32"]["cost"] is None
    assert frontier["optimum"]["combination"] == "bs8-fp32"
    assert frontier["optimum"]["cost_unit"] == "J"
    assert "time to target" in result.stdout and "40 s" in result.stdout


def test_a_real_cpu_sweep_to_a_target_with_metered_energy(cli, tmp_path,
                                                          monkeypatch) -> None:
    from fakes import LivePowercap

    from bigbench.config.schema import TrainConfig
    from bigbench.measuring.energy import rapl

    if "target_accuracy" not in TrainConfig.model_fields:
        pytest.skip("train.target_accuracy is not in this bigbench yet")
    live = LivePowercap(tmp_path / "powercap", {"intel-rapl:0": 40.0}, period_s=0.002).start()
    monkeypatch.setenv(rapl.ROOT_ENV, str(tmp_path / "powercap"))
    # The target is reached at the first evaluation: its windows (12 steps, tens of ms) must
    # span several of the fake counter's updates even on a loaded machine, where the thread
    # that advances it can stall for milliseconds.
    config = _write(tmp_path, TINY.replace("max_steps: 6", "max_steps: 24")
                    .replace("  log_every: 4\n", "  log_every: 4\n  eval_every: 12\n"
                             "  target_accuracy: 0.01\n")
                    + "sweep: {batch_sizes: [8, 16]}\n")
    try:
        result = cli("sweep", config, "--out", tmp_path / "sweep")
    finally:
        live.stop()
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    check_schema(document)
    assert document["frontier"]["basis"] == "to_target"
    for trial in document["trials"]:
        run = json.loads((Path(trial["run_dir"]) / "run.json").read_text())
        assert trial["time_to_target_s"] == run["target"]["time_to_target_s"] > 0
        assert trial["energy_to_target_j"] == run["target"]["energy_to_target_j"] > 0
        assert trial["j_per_sample"] == run["energy"]["j_per_sample"] > 0
    optimum = document["frontier"]["optimum"]
    assert optimum["combination"] in document["frontier"]["front"]
    assert optimum["max_power_source"] == "largest_measured_avg_power"  # no GPU limit known


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sweep", "args", "message"), [
    (None, [], "the config has no sweep: section"),
    ("{power_limits: [250]}", [], "sweep.power_limits: only for a GPU, but the sweep runs on "
                                  "cpu"),
    ("{batch_sizes: [8], cooldown_below_c: 60}", [], "sweep.cooldown_below_c: only for a GPU"),
    ("{}", [], "the sweep is empty: list at least one of batch_sizes, precisions or "
               "power_limits"),
    ("{batch_sizes: []}", [], "sweep.batch_sizes: [] is not allowed"),
    ("{batch_sizes: [0]}", [], "sweep.batch_sizes.0: 0 is not allowed"),
    ("{batch_sizes: [8], repeats: 0}", [], "sweep.repeats: 0 is not allowed"),
    ("{batch_sizes: [8], eta: 1.5}", [], "sweep.eta: 1.5 is not allowed"),
    ("{power_limits: [maxx]}", [], "(did you mean 'max'?)"),
    ("{batch_sizes: [8, 8]}", [], "8 is listed more than once"),
    ("{batch_sizes: [8]}", ["--eta", "-0.5"], "--eta -0.5: must be between 0 and 1"),
])
def test_mistakes_are_one_line_and_exit_2_before_any_trial(cli, tmp_path, sweep, args,
                                                           message) -> None:
    text = TINY + (f"sweep: {sweep}\n" if sweep is not None else "")
    out = tmp_path / "sweep"
    result = cli("sweep", _write(tmp_path, text), "--out", out, *args)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not out.exists()


# --- the report -----------------------------------------------------------------------------------

def test_the_report_draws_the_frontier_of_a_sweep(fake_gpu, cli, tmp_path) -> None:
    out = tmp_path / "sweep"
    config = _write(tmp_path, TINY + "sweep: {batch_sizes: [8, 16], power_limits: [150, "
                    "250, max]}\n")
    assert cli("sweep", config, "--out", out).exit_code == 0
    result = cli("report", out)
    assert result.exit_code == 0, result.stderr
    report = out / "report"
    assert {p.name for p in report.glob("*.png")} == {"frontier-tiny.png"}
    assert (report / "frontier-tiny.svg").is_file()
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "Sweeps" in page and "★ optimum" in page and "The star is the optimum" in page
    summary = (report / "report.md").read_text(encoding="utf-8")
    assert summary.startswith("## bigbench report (0 runs, 0 benchmarks, 1 sweeps)")
    assert "| bs8-fp32-150W |" in summary and "Figures in report.html: 1 of 1 drawn." in summary


def test_a_sweep_without_energy_says_why_it_has_no_figure(cli, tmp_path) -> None:
    out = tmp_path / "sweep"
    config = _write(tmp_path, TINY + "sweep: {batch_sizes: [8]}\n")
    assert cli("sweep", config, "--out", out).exit_code == 0
    result = cli("report", out / "sweep.json", "--out", tmp_path / "report")
    assert result.exit_code == 0, result.stderr
    assert "n/a: Time against energy: sweep tiny: no point has both a time and an energy " \
           "figure: RAPL" in result.stderr.replace("\n", " ")
    assert not list((tmp_path / "report").glob("*.png"))


def _write(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(text)
    return path
