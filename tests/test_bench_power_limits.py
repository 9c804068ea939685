"""bench --power-limits / --sm-clocks at the library level, on a fake GPU (no CUDA here).

The points are measured by an injected function (the real measure_point with fake steps whose
duration follows the fake GPU's speed), so these tests show the plumbing, the order, the
window-edge snapshots and that the GPU is restored on every exit path. No figure here is a
measurement of real hardware.
"""

from __future__ import annotations

import functools
import json
import os
import signal

import pytest
import torch
from fakes import NO_PERMISSION, FakeClock, FakeGpu, FakeNVML

from bigbench.benchmark import gpu_settings
from bigbench.benchmark.matrix import Matrix, Plan, Point
from bigbench.benchmark.point import measure_point
from bigbench.benchmark.run import BenchSession, run_bench
from bigbench.config.schema import MeasureConfig
from bigbench.interrupt import graceful_stop
from bigbench.measuring.energy.power_limits import PowerControlError
from bigbench.records import BenchDocument

UUID = "GPU-5eed0000-bench"
CPU = torch.device("cpu")  # the points' device; the GPU settings go to the fake NVML
PLAN = Plan(steps=4, warmup=2, repeats=2, energy_min_window=False)


def make_gpu(**kwargs) -> FakeGpu:
    return FakeGpu(UUID, "NVIDIA H100 80GB HBM3", [(0, 600.0)], default_limit_w=600.0,
                   min_limit_w=200.0, max_limit_w=700.0, **kwargs)


def base_points(batches=(2, 4)) -> list[Point]:
    return [Point("rnn", "infer", "fp32", b, sample_shape=(6,), num_classes=2, vocab_size=10,
                  model_args=(("embedding_dim", 4), ("hidden_size", 8))) for b in batches]


@pytest.fixture(scope="module", autouse=True)
def _torch_imported_once() -> None:
    """Pay torch's one-time lazy imports (dynamo, via the first optimizer and FLOP count)
    before the tests, not inside whichever test happens to run first."""
    import torch._dynamo  # noqa: F401


@functools.cache
def environment() -> dict:
    """A real environment record (bench.json validates against its schema)."""
    from bigbench.benchmark.run import bench_environment

    return bench_environment(CPU, MeasureConfig(energy=False))


def session_at(tmp_path, gpu: FakeGpu, limits=("200", "max"), clocks=None, batches=(2, 4),
               clock: FakeClock | None = None) -> BenchSession:
    """A session whose GPU settings go through open_control, as build_session's do."""
    matrix = Matrix(models=["rnn"], batch_sizes=list(batches), power_limits=list(limits),
                    sm_clocks=list(clocks) if clocks else None)
    power, watts, mhz = gpu_settings.open_control(
        matrix, {"index": 0, "uuid": UUID}, tmp_path, FakeNVML([gpu], clock or FakeClock()))
    return BenchSession(gpu_settings.interleave(base_points(batches), watts, mhz), PLAN, CPU,
                        isolated=False, find_max=False, out_dir=tmp_path, label="power",
                        measure=MeasureConfig(energy=False), env=environment(), power=power)


def fake_measure(gpu: FakeGpu, clock: FakeClock, seen: list | None = None, before=None,
                 step_s: float = 0.01, energy=None):
    """measure_point with steps lasting ``step_s / gpu.speed()`` that warm the GPU by 0.5 °C;
    ``seen`` gets (point id, limit W, locked clock, temperature) as each point starts;
    ``energy``: a monitor of the fake GPU to measure with (its sampler ticks every step)."""
    def builder(workload, point):
        def step(batch):
            clock.advance(step_s / gpu.speed())
            gpu.temperature_c += 0.5
            if energy is not None:
                energy.sampler.sample_once()
            return torch.tensor(1.0)
        return step

    def measure(point, plan, device, null_energy, gpu_snapshot=None):
        if seen is not None:
            seen.append((point.id, gpu.limit_mw / 1000, gpu.locked_mhz, gpu.temperature_c))
        if before is not None:
            before(len(seen or []))
        return measure_point(point, plan, device, energy or null_energy, clock=clock,
                             step_builder=builder, gpu_snapshot=gpu_snapshot)
    return measure


def document(tmp_path) -> dict:
    return json.loads((tmp_path / "bench.json").read_text())


def assert_restored(gpu: FakeGpu, tmp_path) -> None:
    assert gpu.limit_mw == 600_000 and gpu.locked_mhz is None
    assert json.loads((tmp_path / "gpu_state.json").read_text())["restored"] is True


def test_settings_are_interleaved_in_rotated_order() -> None:
    points = gpu_settings.interleave(base_points((1, 2, 3)), [200.0, 300.0, 700.0], None)
    assert [(p.batch_size, p.power_limit_w) for p in points] == [
        (1, 200.0), (1, 300.0), (1, 700.0),
        (2, 300.0), (2, 700.0), (2, 200.0),
        (3, 700.0), (3, 200.0), (3, 300.0)]
    assert points[0].id == "rnn/infer/fp32/bs1/pl200W"
    both = gpu_settings.interleave(base_points((1,)), [250.5], [1410, 1980])
    assert [p.id.split("/", 4)[-1] for p in both] == ["pl250.5W/sm1410MHz", "pl250.5W/sm1980MHz"]
    assert both[0].settings()["power_limit_w"] == 250.5
    assert "power_limit_w" not in base_points((1,))[0].settings()  # unset: ids as before
    assert Point.from_dict(both[0].as_dict()) == both[0]  # crosses to --isolate subprocesses


def test_each_point_runs_at_its_limit_and_the_gpu_is_restored_at_the_end(tmp_path) -> None:
    gpu, clock, seen = make_gpu(), FakeClock(), []
    session = session_at(tmp_path, gpu, clock=clock)
    run = run_bench(session, measure=fake_measure(gpu, clock, seen))
    assert [(pid.rsplit("/", 1)[1], watts) for pid, watts, _, _ in seen] == [
        ("pl200W", 200.0), ("pl700W", 700.0), ("pl700W", 700.0), ("pl200W", 200.0)]
    assert_restored(gpu, tmp_path)
    saved = document(tmp_path)
    assert saved["status"] == "completed" and "bug in bigbench" not in " ".join(run.warnings)
    assert [p["status"] for p in saved["points"]] == ["ok"] * 4
    BenchDocument.model_validate(saved)
    assert saved["gpu_control"]["restored"] is True
    assert saved["gpu_control"]["original_power_limit_w"] == 600.0
    assert saved["gpu_control"]["state_file"] == "gpu_state.json"
    first = saved["points"][0]
    assert first["settings"]["power_limit_w"] == 200.0
    settings = first["gpu_settings"]
    assert settings["requested_w"] == 200.0 and settings["in_effect_w"] == 200.0
    assert settings["sm_clock_mhz"] is None


def test_snapshots_are_read_at_the_measured_window_edges(tmp_path) -> None:
    gpu, clock, seen = make_gpu(), FakeClock(), []
    session = session_at(tmp_path, gpu, limits=["250"], clocks=[1410], batches=(2,), clock=clock)
    run_bench(session, measure=fake_measure(gpu, clock, seen))
    point = document(tmp_path)["points"][0]
    settings, at_start = point["gpu_settings"], seen[0][3]
    assert settings["edges"] == "measured_window" and settings["sm_clock_mhz"] == 1410
    # Warm-up (2 steps) ran before the window; 2 repeats × 4 steps inside it; 0.5 °C a step.
    assert settings["start"]["temperature_c"] == at_start + 2 * 0.5
    assert settings["end"]["temperature_c"] == at_start + (2 + 2 * 4) * 0.5
    for edge in ("start", "end"):
        snap = settings[edge]
        assert snap["power_limit_w"] == 250.0 and snap["sm_clock_mhz"] == 1410
        assert snap["throttle_reasons"] == ["sw_power_cap"] and snap["reasons"] == {}
    assert_restored(gpu, tmp_path)


def test_without_window_snapshots_the_point_edges_are_recorded_and_said_so(tmp_path) -> None:
    gpu, clock = make_gpu(), FakeClock()
    session = session_at(tmp_path, gpu, limits=["300"], batches=(2,), clock=clock)
    plain = fake_measure(gpu, clock)
    run_bench(session, measure=lambda *args, gpu_snapshot=None: plain(*args))
    settings = document(tmp_path)["points"][0]["gpu_settings"]
    assert settings["edges"] == "point" and settings["start"]["power_limit_w"] == 300.0
    assert settings["end"]["temperature_c"] > settings["start"]["temperature_c"]


def test_a_lower_limit_trades_speed_for_energy_on_the_fake_gpu(tmp_path) -> None:
    """The fake's toy model (power ∝ limit, speed ∝ limit^0.3) through the real energy monitor:
    the plumbing carries both effects into each point's figures."""
    from bigbench.measuring.energy.setup import build_monitor

    gpu, clock = make_gpu(), FakeClock()
    energy = build_monitor(interval_s=0.05, gpu_uuid=UUID, measure_host=False, clock=clock,
                           nvml_backend=FakeNVML([gpu], clock, counter_step_s=0.1))
    session = session_at(tmp_path, gpu, limits=["300", "default"], batches=(8,), clock=clock)
    session.plan = Plan(steps=100, warmup=1, repeats=1, energy_min_window=False)
    run_bench(session, measure=fake_measure(gpu, clock, step_s=0.05, energy=energy))
    by_limit = {p["settings"]["power_limit_w"]: p for p in document(tmp_path)["points"]}
    slow, fast = by_limit[300.0], by_limit[600.0]
    speed = slow["samples_per_s"]["median"] / fast["samples_per_s"]["median"]
    joules = slow["energy"]["j_per_sample"]["median"] / fast["energy"]["j_per_sample"]["median"]
    assert speed == pytest.approx(0.5 ** 0.3, rel=0.01)  # slower at half the limit ...
    assert joules == pytest.approx(0.5 / 0.5 ** 0.3, rel=0.05)  # ... for fewer joules
    assert_restored(gpu, tmp_path)


def test_an_exception_inside_a_point_is_a_result_and_the_run_still_restores(tmp_path) -> None:
    gpu, clock, seen = make_gpu(), FakeClock(), []

    def fail_second(count: int) -> None:
        if count == 2:
            raise ValueError("a kernel failed")

    session = session_at(tmp_path, gpu, clock=clock)
    run_bench(session, measure=fake_measure(gpu, clock, seen, before=fail_second))
    assert [p["status"] for p in document(tmp_path)["points"]] == ["ok", "failed", "ok", "ok"]
    failed = document(tmp_path)["points"][1]
    assert failed["gpu_settings"]["edges"] == "point"  # it never reached its window
    assert_restored(gpu, tmp_path)


def test_an_exception_escaping_the_run_restores_before_it_propagates(tmp_path) -> None:
    gpu, clock = make_gpu(), FakeClock()
    session = session_at(tmp_path, gpu, clock=clock)

    def broken_display(run) -> None:
        assert gpu.limit_mw != 600_000  # the limit is in effect while points run
        raise RuntimeError("the live table broke")

    with pytest.raises(RuntimeError, match="live table"):
        run_bench(session, on_result=broken_display, measure=fake_measure(gpu, clock))
    assert_restored(gpu, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_after_the_point_and_restores(tmp_path, sig) -> None:
    gpu, clock, seen = make_gpu(), FakeClock(), []

    def signal_second(count: int) -> None:
        if count == 2:
            os.kill(os.getpid(), sig)  # graceful_stop: the flag is set, the point finishes

    session = session_at(tmp_path, gpu, clock=clock)
    with graceful_stop() as stop:
        run = run_bench(session, lambda: stop.requested,
                        measure=fake_measure(gpu, clock, seen, before=signal_second))
    assert stop.signal == sig and run.document["status"] == "interrupted"
    assert [p["status"] for p in document(tmp_path)["points"]] == ["ok", "ok"]
    assert_restored(gpu, tmp_path)
    assert document(tmp_path)["gpu_control"]["restored"] is True


def test_a_second_ctrl_c_interrupts_the_point_and_still_restores(tmp_path) -> None:
    gpu, clock, seen = make_gpu(), FakeClock(), []

    def ctrl_c_twice(count: int) -> None:
        if count == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second raises KeyboardInterrupt here

    session = session_at(tmp_path, gpu, clock=clock)
    with graceful_stop() as stop:
        run = run_bench(session, lambda: stop.requested,
                        measure=fake_measure(gpu, clock, seen, before=ctrl_c_twice))
    assert run.document["status"] == "interrupted" and len(run.results) == 1
    assert gpu.limit_calls[-1] == 600_000
    assert_restored(gpu, tmp_path)


def test_a_refused_clock_lock_stops_the_run_with_nothing_changed(tmp_path) -> None:
    gpu, clock = make_gpu(clock_error=NO_PERMISSION), FakeClock()
    session = session_at(tmp_path, gpu, limits=["250"], clocks=[1410], clock=clock)
    with pytest.raises(PowerControlError, match="no permission to lock the SM clock"):
        run_bench(session, measure=fake_measure(gpu, clock))
    # Clocks are locked before the limit is set: the refusal came before any change.
    assert gpu.limit_calls == [600_000] and gpu.limit_mw == 600_000
    assert document(tmp_path)["status"] == "interrupted"
    assert json.loads((tmp_path / "gpu_state.json").read_text())["restored"] is True


def test_out_of_range_limits_are_refused_before_anything_and_leave_no_state(tmp_path) -> None:
    gpu = make_gpu()
    with pytest.raises(PowerControlError, match="200–700 W"):
        session_at(tmp_path, gpu, limits=["250", "900"])
    with pytest.raises(PowerControlError, match="210–1980 MHz"):
        session_at(tmp_path, gpu, limits=["250"], clocks=[3000])
    assert not (tmp_path / "gpu_state.json").exists() and gpu.limit_mw == 600_000


def test_max_and_default_that_coincide_run_once(tmp_path) -> None:
    gpu = FakeGpu(UUID, "NVIDIA H100", [(0, 700.0)])  # default 700 W = max
    session = session_at(tmp_path, gpu, limits=["default", "max", "700"], batches=(2,))
    assert [p.power_limit_w for p in session.points] == [700.0]
    session.power.restore()


def test_isolated_points_get_their_limit_set_by_the_parent(tmp_path, monkeypatch) -> None:
    from bigbench.benchmark import runner

    gpu, calls = make_gpu(), []

    def subprocess_point(point, plan, device, measure_config, model_from=None, gpu_uuid=None):
        calls.append((point.power_limit_w, gpu.limit_mw / 1000, gpu_uuid))
        return {"id": point.id, "settings": point.settings(), "status": "failed",
                "reason": None, "error": "not run in this test"}

    monkeypatch.setattr(runner, "run_isolated", subprocess_point)
    session = session_at(tmp_path, gpu)
    session.isolated = True
    run_bench(session)
    assert calls == [(200.0, 200.0, UUID), (700.0, 700.0, UUID), (700.0, 700.0, UUID),
                     (200.0, 200.0, UUID)]
    assert document(tmp_path)["points"][0]["gpu_settings"]["edges"] == "point"
    assert_restored(gpu, tmp_path)


# --- the shared parser: refusals before anything runs ---------------------------------------------

@pytest.fixture
def on_a_fake_cuda_gpu(monkeypatch):
    """build_session as on a CUDA machine whose GPU is the fake (torch itself has no CUDA)."""
    from bigbench import devices
    from bigbench.benchmark import run
    from bigbench.measuring.energy import power_limits

    gpu = make_gpu()
    monkeypatch.setattr(devices, "resolve", lambda spec: torch.device("cuda", 0))
    monkeypatch.setattr(run, "bench_environment", lambda device, measure: {
        **environment(), "device": {"type": "cuda", "name": gpu.name, "index": 0, "uuid": UUID}})
    monkeypatch.setattr(power_limits, "load_backend",
                        lambda: (FakeNVML([gpu], FakeClock()), None))
    return gpu


def _build(out, **choices):
    from bigbench.benchmark.session import BenchArgs, build_session, check_args

    args = BenchArgs(device="cuda", models="rnn", batch_sizes="4", modes="infer", **choices)
    return build_session(None, args, check_args(args), out)


def test_build_session_opens_the_gpu_and_interleaves_the_points(tmp_path,
                                                                 on_a_fake_cuda_gpu) -> None:
    session = _build(tmp_path / "b", power_limits="max,300", sm_clocks=[1410])
    assert [p.id for p in session.points] == ["rnn/infer/fp32/bs4/pl700W/sm1410MHz",
                                              "rnn/infer/fp32/bs4/pl300W/sm1410MHz"]
    assert session.power is not None and (tmp_path / "b" / "gpu_state.json").exists()
    assert on_a_fake_cuda_gpu.limit_mw == 600_000  # nothing changes before the run
    session.power.restore()


@pytest.mark.parametrize(("choices", "message"), [
    ({"power_limits": "250,900"}, "200–700 W"),
    ({"power_limits": "250", "sm_clocks": "5000"}, "210–1980 MHz"),
])
def test_out_of_range_settings_leave_no_folder(tmp_path, on_a_fake_cuda_gpu, choices,
                                               message) -> None:
    with pytest.raises(PowerControlError, match=message):
        _build(tmp_path / "b", **choices)
    assert not (tmp_path / "b").exists()


def test_no_permission_is_refused_before_anything_and_leaves_no_folder(
        tmp_path, on_a_fake_cuda_gpu) -> None:
    on_a_fake_cuda_gpu.set_error = NO_PERMISSION
    with pytest.raises(PowerControlError, match="sudo nvidia-smi -pm 1"):
        _build(tmp_path / "b", power_limits="200")
    assert not (tmp_path / "b").exists() and on_a_fake_cuda_gpu.limit_calls == []


@pytest.mark.parametrize(("choices", "message"), [
    ({"device": "cpu", "power_limits": "200"}, "need a CUDA device"),
    ({"device": "auto", "power_limits": "200"}, "needs a CUDA GPU"),  # auto is the CPU here
    ({"device": "auto", "sm_clocks": [1410]}, "needs a CUDA GPU"),
    ({"device": "cpu", "power_limits": "200,lots"}, "'lots' is not a power limit"),
    ({"device": "cpu", "power_limits": [0]}, "0 is not a power limit"),
    ({"device": "cpu", "sm_clocks": "1410,x"}, "'x' is not a positive integer"),
])
def test_the_api_refuses_gpu_settings_it_cannot_apply(tmp_path, choices, message) -> None:
    import bigbench
    from bigbench.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        bigbench.bench(suite="smoke", out=tmp_path / "b", **choices)
    assert not (tmp_path / "b").exists()
