"""The training command: data and model onto the device, the step engine, evaluation, results.

Reads top to bottom: prepare everything that can fail on user input *before* the run directory
exists, then train inside measurement windows, then write run.json whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bigbench import devices, environment
from bigbench.checkpoint import (
    TrainingPosition,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from bigbench.config.render import config_yaml
from bigbench.config.schema import ExperimentConfig, TrainConfig
from bigbench.data import build_data
from bigbench.data.tensors import Batcher
from bigbench.engine import EngineState, LogEvent, StepEngine, train_phases
from bigbench.errors import ConfigError, OutputError
from bigbench.interrupt import StopRequest
from bigbench.measure.energy.setup import build_monitor
from bigbench.measure.memory import oom_memory_figures
from bigbench.measure.meter import Meter
from bigbench.measure.timing import StepTimer
from bigbench.models import build_model
from bigbench.models.build import check_model_fits
from bigbench.optim import build_optimizer, build_schedule
from bigbench.record import RunContext, finish_record, start_record
from bigbench.results import MetricsLog, atomic_write_text, create_run_dir, write_json
from bigbench.resume import ResumeInfo
from bigbench.speed import apply_runtime_settings, autocast_dtype, use_channels_last
from bigbench.steps import eager_step_time, evaluate, make_train_step


@dataclass
class TrainCallbacks:
    """How the caller follows the run (progress bars); all optional."""

    on_start: Callable[[int], None] = lambda total_steps: None
    on_step: Callable[[int], None] = lambda step: None
    on_log: Callable[[LogEvent], None] = lambda event: None
    on_eval: Callable[[dict[str, Any]], None] = lambda result: None
    on_phase: Callable[[str], None] = lambda message: None


@dataclass
class TrainResult:
    """The finished run: its directory, its record and the exit code the CLI should use."""

    run_dir: Path
    record: dict[str, Any]
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plan_steps(train: TrainConfig, steps_per_epoch: int, train_size: int) -> tuple[int, int]:
    """Total optimizer steps and epochs to run; refuses plans that would measure nothing."""
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size ({train.batch_size}) is larger than the training "
                          f"set ({train_size} samples) and drop_last is on, so an epoch has no "
                          "step; lower batch_size or set train.drop_last: false")
    if train.max_steps is not None:
        return train.max_steps, -(-train.max_steps // steps_per_epoch)
    total = train.epochs * steps_per_epoch
    if train.warmup_steps >= total:
        raise ConfigError(f"train.warmup_steps ({train.warmup_steps}) must be less than the run's "
                          f"{total} steps ({train.epochs} epoch(s) × {steps_per_epoch} steps), "
                          "otherwise no step is measured")
    return total, train.epochs


def _count_flops(config: ExperimentConfig, info: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not config.measure.flops:
        return None, None
    from bigbench.measure.flops import count_flops

    try:
        return count_flops(config.model, info), None
    except Exception as exc:  # an op the meta device cannot run: say so instead of guessing
        return None, f"FLOP counting failed: {type(exc).__name__}: {exc}"


def run_training(config: ExperimentConfig, *, out: Path | None, stop: StopRequest,
                 callbacks: TrainCallbacks | None = None,
                 resume: ResumeInfo | None = None) -> TrainResult:
    """Train ``config`` and write its run directory (or continue ``resume``'s).

    Everything that depends on user input (device, data files, model shape, the checkpoint) is
    checked before anything is written, so a mistake leaves nothing behind.
    """
    callbacks = callbacks or TrainCallbacks()
    started_at = datetime.now(timezone.utc)
    wall_start = time.perf_counter()
    train_cfg = config.train

    device = devices.resolve(config.device)
    performance = apply_runtime_settings(train_cfg, device)
    seed_everything(train_cfg.seed)
    dataset = build_data(config.data, device)
    check_model_fits(config.model, dataset.info, device)
    built = build_model(config.model, dataset.info)
    model = built.module.to(device)
    batcher = Batcher(dataset.train, train_cfg.batch_size, train_cfg.drop_last, train_cfg.seed)
    total_steps, planned_epochs = plan_steps(train_cfg, batcher.steps_per_epoch,
                                             len(dataset.train))
    channels_last = use_channels_last(train_cfg, built.family, built.args)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = autocast_dtype(train_cfg.precision)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler("cuda") if train_cfg.precision == "fp16" and \
        device.type == "cuda" else None
    optimizer = build_optimizer(train_cfg.optimizer, model.parameters())
    schedule = build_schedule(train_cfg.schedule, optimizer, total_steps)
    flop_counts, flop_error = _count_flops(config, dataset.info)
    skip_nan = train_cfg.on_nan == "skip_step"

    def step_factory(net: torch.nn.Module, opt: torch.optim.Optimizer,
                     sched: Any = None, scale: Any = None) -> Any:
        return make_train_step(net, opt, sched, train_cfg.grad_clip, skip_nan,
                               channels_last=channels_last, amp_dtype=amp_dtype, scaler=scale,
                               device_type=device.type)

    eager_s, runnable = None, model
    if train_cfg.compile:
        eager_s, runnable = _compile(model, train_cfg, step_factory,
                                     next(iter(batcher.epoch(0))), device)
    position, checkpoint_state = None, {}
    if resume is not None:
        position, checkpoint_state = load_checkpoint(resume.checkpoint, model, optimizer,
                                                     schedule)
        if scaler is not None and checkpoint_state.get("scaler"):
            scaler.load_state_dict(checkpoint_state["scaler"])
        if train_cfg.threads is None and checkpoint_state.get("threads"):
            # Floating-point reductions depend on the thread count: resume with the original
            # run's, so the resumed run computes exactly what the uninterrupted one would.
            torch.set_num_threads(int(checkpoint_state["threads"]))
            performance["threads"] = torch.get_num_threads()
        run_dir = resume.run_dir
        if resume.config_changes:
            atomic_write_text(run_dir / "config.yaml", config_yaml(config))
    else:
        run_dir = create_run_dir(Path(config.output.dir), config.name, out)
        atomic_write_text(run_dir / "config.yaml", config_yaml(config))
    prior_segments: list[dict[str, Any]] = checkpoint_state.get("segments", [])
    prior_durations: list[float] = checkpoint_state["durations"].tolist() \
        if "durations" in checkpoint_state else []
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    energy = build_monitor(config.measure, device)
    meter = Meter(device, energy)
    timer = StepTimer(device)
    env = environment.collect(device)
    if hasattr(energy, "devices"):
        env["energy_meters"] = [{"key": d.key, "kind": d.kind, **d.info()} for d in energy.devices]
    performance.update(channels_last=channels_last, precision=train_cfg.precision,
                       grad_scaler=scaler is not None, compile=train_cfg.compile,
                       optimizer_foreach=optimizer.defaults.get("foreach"))
    record = start_record(config, built, dataset.info, env, performance, run_dir,
                          started_at.isoformat(), resume,
                          position.step if position is not None else 0)
    write_json(run_dir / "run.json", record)

    first_step_at: list[float] = []

    def on_step(step: int) -> None:
        if not first_step_at:
            first_step_at.append(time.time())
        callbacks.on_step(step)

    def on_log(event: LogEvent) -> None:
        metrics.append({"event": "train", "step": event.step, "epoch": event.epoch,
                        "loss": event.loss if event.loss == event.loss else None,
                        "lr": optimizer.param_groups[0]["lr"],
                        "samples_per_s": event.samples_per_s})
        callbacks.on_log(event)

    extend_s = 0.0
    if config.measure.extend_to_min_window and getattr(energy, "devices", None):
        extend_s = energy.min_window_s
    start = EngineState()
    first_epoch, first_step_in_epoch = 0, 0
    if position is not None:
        start = EngineState(step=position.step, samples=position.samples,
                            last_finite_loss=position.last_finite_loss,
                            skipped_steps=position.skipped_steps)
        first_epoch, first_step_in_epoch = position.epoch, position.step_in_epoch
    # A resumed process warms up again: its first steps are as cold as a new run's.
    warmup_end = start.step + train_cfg.warmup_steps
    progress = {"epoch": first_epoch, "epoch_start_step": start.step - first_step_in_epoch}

    def on_checkpoint() -> None:
        step = engine.state.step
        save_checkpoint(run_dir, model, optimizer, schedule, TrainingPosition(
            step=step, epoch=progress["epoch"],
            step_in_epoch=step - progress["epoch_start_step"],
            epochs_done=context.epochs_done, samples=engine.state.samples,
            last_finite_loss=engine.state.last_finite_loss,
            skipped_steps=engine.state.skipped_steps), extra={
            "durations": torch.tensor(prior_durations + timer.durations_s, dtype=torch.float64),
            "segments": context.segments(),
            "last_eval": context.last_eval,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "threads": torch.get_num_threads()})
        context.checkpoint_step = step

    engine = StepEngine(step_factory(runnable, optimizer, schedule, scaler), meter, timer,
                        phases=train_phases(total_steps, min(warmup_end, total_steps),
                                            extend_s, compile_step=train_cfg.compile,
                                            start_step=start.step),
                        log_every=train_cfg.log_every, on_log=on_log, on_step=on_step,
                        should_stop=lambda: stop.requested,
                        checkpoint_every=train_cfg.checkpoint_every,
                        on_checkpoint=on_checkpoint, skip_non_finite=skip_nan, start=start)
    context = RunContext(record=record, run_dir=run_dir, meter=meter, timer=timer,
                         engine=engine, energy=energy, dataset_info=dataset.info,
                         has_test=dataset.test is not None, config=config,
                         wall_start=wall_start, first_step_at=first_step_at,
                         flop_counts=flop_counts, flop_error=flop_error,
                         prior_segments=prior_segments, prior_durations=prior_durations,
                         segment_started_at=started_at.isoformat(), segment_from=start.step,
                         last_eval=checkpoint_state.get("last_eval"),
                         epochs_done=position.epochs_done if position else 0,
                         checkpoint_step=start.step, eager_step_s=eager_s)
    eval_batch = train_cfg.eval_batch_size or train_cfg.batch_size
    if hasattr(energy, "start"):
        energy.start()
    try:
        if config.measure.idle_s > 0:
            callbacks.on_phase(f"measuring idle power for {config.measure.idle_s:g} s")
            with meter.window("idle"):
                _idle(config.measure.idle_s, stop)
        callbacks.on_start(total_steps)
        model.train()
        endless = train_cfg.max_steps is not None or extend_s > 0
        epochs = itertools.count(first_epoch) if endless else range(first_epoch, planned_epochs)
        for epoch in epochs:
            progress["epoch"] = epoch
            progress["epoch_start_step"] = engine.state.step - (
                first_step_in_epoch if epoch == first_epoch else 0)
            engine.run(batcher.epoch(epoch, first_step_in_epoch if epoch == first_epoch else 0),
                       epoch)
            if engine.state.stop_reason is not None:
                break
            context.epochs_done = epoch + 1
            if dataset.test is not None:
                with meter.window("eval"):
                    accuracy, loss = evaluate(model, dataset.test, eval_batch, amp_dtype)
                context.last_eval = {"accuracy": accuracy, "loss": loss,
                                     "samples": len(dataset.test), "step": engine.state.step,
                                     "epoch": epoch}
                metrics.append({"event": "eval", **context.last_eval})
                callbacks.on_eval(context.last_eval)
            if engine.finished:
                break
        if engine.state.stop_reason == "interrupted" and \
                context.checkpoint_step != engine.state.step:
            engine.checkpoint()  # so that --resume continues from exactly here
    except KeyboardInterrupt:
        engine.state.stop_reason = "interrupted"
        engine.state.stop_detail = f"stopped by a second signal during step {engine.state.step + 1}"
    except torch.cuda.OutOfMemoryError as exc:
        engine.state.stop_reason = "out_of_memory"
        engine.state.stop_detail = (f"out of memory at step {engine.state.step + 1} with batch "
                                    f"size {train_cfg.batch_size}")
        context.error = {"type": "out_of_memory", "message": str(exc).strip().splitlines()[0],
                         "batch_size": train_cfg.batch_size,
                         "memory": oom_memory_figures(device),
                         "hint": f"lower train.batch_size (now {train_cfg.batch_size}), or find "
                                 "the largest that fits with bigbench bench --find-max-batch"}
    except OutputError as exc:  # disk full or unwritable: keep what is on disk, say so
        engine.state.stop_reason = "write_error"
        engine.state.stop_detail = exc.problems[0]
        context.error = {"type": "write_error", "message": exc.problems[0]}
        _stop_energy(energy)
        with contextlib.suppress(OutputError):
            finish_record(context, model=None)
        raise
    except Exception as exc:  # a bug or a runtime failure: record it, then re-raise
        engine.state.stop_reason = "error"
        context.error = {"type": type(exc).__name__, "message": str(exc),
                         "traceback": traceback.format_exc()}
        _stop_energy(energy)
        finish_record(context, model=None)
        raise
    _stop_energy(energy)
    warnings = finish_record(context, model=model if config.output.save_weights else None)
    exit_code = stop.exit_code if engine.state.stop_reason == "interrupted" else \
        (1 if record["status"] == "failed" else 0)
    return TrainResult(run_dir=run_dir, record=record, exit_code=exit_code, warnings=warnings)


def _compile(model: torch.nn.Module, train_cfg: TrainConfig, step_factory: Any,
             batch: Any, device: torch.device) -> tuple[float, Any]:
    """Time an eager step (for the payback figure), then return it and the compiled model."""
    saved = rng_state()  # timing eager steps on a copy must not shift any random stream
    eager_s = eager_step_time(
        model, lambda net: build_optimizer(train_cfg.optimizer, net.parameters()),
        step_factory, batch, device)
    set_rng_state(saved)
    return eager_s, torch.compile(model)


def _idle(seconds: float, stop: StopRequest) -> None:
    """Sleep for the idle baseline, waking early on a stop request."""
    deadline = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _stop_energy(energy: Any) -> None:
    if hasattr(energy, "stop"):
        energy.stop()
