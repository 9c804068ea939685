"""``bigbench train`` as a library call: a short sequence of named stages.

Everything that can fail on user input (device, data files, model shape, the checkpoint) is
checked while the workload is built, before the run directory exists; then the loop trains
inside measurement windows; then run.json is written whatever happened.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bigbench.config.schema import ExperimentConfig
from bigbench.distributed.group import Collectives
from bigbench.distributed.strategy import ShardedLoad, is_sharded, saved_state
from bigbench.errors import OutputError
from bigbench.interrupt import StopRequest
from bigbench.loggers import RunLoggers, build_loggers, check_loggers, latest_power
from bigbench.measurement import energy_monitor, environment
from bigbench.measuring.energy.monitor import EnergyMonitor
from bigbench.measuring.energy.report import energy_warnings, power_rows
from bigbench.measuring.meter import Meter
from bigbench.rank import SINGLE, Rank
from bigbench.resume import ResumeInfo
from bigbench.run_record import RunFacts, finish_record, start_record
from bigbench.run_writer import RunWriter
from bigbench.target import target_of
from bigbench.training_loop import LoopSettings, Restored, TrainCallbacks, TrainingLoop
from bigbench.workload.build import Workload, build_workload

__all__ = ["TrainCallbacks", "TrainResult", "run_training"]


@dataclass
class TrainResult:
    """The finished run: its directory, its record and the exit code the CLI should use."""

    run_dir: Path | None
    record: dict[str, Any]
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)


def run_training(config: ExperimentConfig, *, out: Path | None, stop: StopRequest,
                 callbacks: TrainCallbacks | None = None, resume: ResumeInfo | None = None,
                 rank: Rank = SINGLE) -> TrainResult:
    """Train ``config`` and write its run directory (or continue ``resume``'s).

    Raises:
        BigbenchError: a user mistake (a logger's extra not installed included), before
            anything is written.
        OutputError: the disk filled up or became unwritable (run.json says so if it could).
    """
    check_loggers(config.output.loggers)  # their imports: not part of the run's timeline
    _check_tracking_server(config)
    wall_start = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat()
    workload = build_workload(config, rank)
    restored = _restore(workload, resume, config.train.threads)
    flop_counts, flop_error = _count_flops(config, workload)
    eager_step_s = _compile(workload) if config.train.compile else None
    writer = RunWriter.reopen(resume.run_dir, rank) if resume else \
        RunWriter.create(config, out, rank)
    if resume is not None and resume.config_changes:
        writer.write_config(config)
    energy = energy_monitor(config.measure, workload.device, rank)
    meter = Meter(workload.device, energy, origin=wall_start)
    run_dir = str(writer.run_dir) if writer.run_dir is not None else None
    facts = RunFacts(config, workload, environment(workload.device, energy), run_dir,
                     started_at, wall_start, flop_counts, flop_error, eager_step_s, resume,
                     restored.position.step if restored.position else 0)
    record = start_record(facts)
    writer.write_record(record)
    loggers = _start_loggers(config, writer, workload, energy)
    agreed, collectives = _agreement(stop, rank)
    try:
        loop = TrainingLoop(workload, _loop_settings(config, energy), writer, meter, energy,
                            agreed, callbacks or TrainCallbacks(), restored, started_at, loggers,
                            collectives)
        energy.start()
        try:
            _measure_idle(config, loop, stop)
            failure = loop.run()
        finally:
            energy.stop()
        record_error = _finish(record, facts, loop, energy)
        if rank.world_size > 1 and loop.ended_alone:
            _say_figures_not_gathered(record, loop, rank)
        elif rank.world_size > 1:
            _job_figures_or_why(record, config, workload, loop, rank, agreed)
        # FSDP's weights are gathered by a collective: not once the ranks have parted.
        ranks_together = rank.world_size == 1 or not (loop.ended_alone
                                                      or "distributed_error" in record)
        write_error = _write_results(writer, record, energy, workload, loop,
                                     config.output.save_weights, ranks_together)
    finally:
        # After run.json, so a tracker never costs it; and also when something escaped (a
        # second Ctrl-C, an exit from a callback), so every tracker still closes its files and
        # ends its run with the record as far as it got.
        logger_warnings = loggers.finish(record, writer.run_dir)
    failure = failure or record_error or write_error  # the first cause is the one raised
    if failure is not None:
        raise failure
    exit_code = stop.exit_code if loop.state.stop_reason == "interrupted" else \
        (1 if record["status"] == "failed" else 0)
    return TrainResult(writer.run_dir, record, exit_code, _warnings(record) + logger_warnings)


def _agreement(stop: StopRequest, rank: Rank) -> tuple[Any, Collectives | None]:
    """The stop the training loop polls and the collectives it decides with: for a single
    process its own stop and none; for several ranks the ranks' agreement on the stop (every
    rank ends after the same step) and the collectives that make the loss and evaluation the
    job's (a NaN or a reached target stops every rank together)."""
    if rank.world_size == 1:
        return stop, None
    from bigbench.distributed.group import AgreedStop

    return AgreedStop(stop), Collectives(rank)


def _say_figures_not_gathered(record: dict[str, Any], loop: TrainingLoop, rank: Rank) -> None:
    """This rank's loop ended on its own (an exception, out of memory, a write error, a
    second Ctrl-C): the other ranks are not at the same point, so no collective is issued —
    they fail in their next one once this process exits, and the launcher ends the job."""
    record["distributed_error"] = {
        "world_size": rank.world_size,
        "error": f"rank {rank.rank}'s training loop ended on its own "
                 f"({loop.state.stop_reason}: "
                 f"{loop.state.stop_detail or (loop.error or {}).get('message', '')}"[:400]
                 + "), not at a step the ranks agreed on (its own failure, or a failed "
                 "collective after another rank's): the job's figures were not gathered"}
    if record.get("status") == "completed":
        record["status"] = "failed"


def _job_figures_or_why(record: dict[str, Any], config: ExperimentConfig, workload: Workload,
                        loop: TrainingLoop, rank: Rank, agreed: Any) -> None:
    """The job's figures; when a rank died the collectives fail (within the timeout), and
    run.json still gets written, saying why the job figures are missing."""
    try:
        agreed.settle()
        _add_job_figures(record, config, workload, loop, rank)
    except Exception as exc:  # a dead or failed rank: the record of this one must survive
        record["distributed_error"] = {"world_size": rank.world_size,
                                       "error": f"{type(exc).__name__}: {exc}"[:500]}
        if record.get("status") == "completed":
            record["status"] = "failed"


def _add_job_figures(record: dict[str, Any], config: ExperimentConfig, workload: Workload,
                     loop: TrainingLoop, rank: Rank) -> None:
    """Gather every rank's figures to rank 0 and add the job's (run.json ``distributed``).

    Every rank takes part in the gather, whatever happened to its own record, so none waits
    for a rank that skipped it.
    """
    from bigbench.distributed.aggregate import RankSummary, combine, rank_summary
    from bigbench.distributed.env import host_name, job_shape

    try:
        throughput, memory = record["throughput"], record.get("memory") or {}
        reasons: dict[str, str] = {}
        if workload.communication is None:
            reasons["communication_per_step_s"] = (
                "not measured under fsdp: its gathers and reduce-scatters run inside "
                "fully_shard with no hook to time them (ddp's gradient all-reduce is timed)")
        summary: RankSummary | None = rank_summary(
            rank, host=host_name(), device=str(workload.device),
            samples=throughput["measured_samples"], steps=throughput["measured_steps"],
            time_s=throughput["measured_time_s"], durations_s=loop.durations_s(),
            peak_memory_bytes=memory.get("device_peak_allocated_bytes")
            or memory.get("host_peak_rss_bytes"),
            energy_devices=list((record.get("energy") or {}).get("devices") or []),
            reasons=reasons, communication_s=workload.communication.per_step_s()
            if workload.communication else None, ranks_on_node=job_shape(rank.world_size)[1])
    except Exception:  # this rank's record is broken; the others still report theirs
        summary = None
    assert loop.collectives is not None  # a job of several ranks
    summaries = loop.collectives.gather(summary)
    if summaries is None:
        return
    dist = config.distributed
    reported = [s for s in summaries if s is not None]
    job = combine(reported)
    nnodes, per_node = _job_shape(job, reported, rank.world_size)
    record["distributed"] = {
        **job, "world_size": rank.world_size,
        "strategy": dist.strategy, "backend": _backend_in_use(),
        "nnodes": nnodes, "nproc_per_node": per_node,
        "batch_size_per_rank": config.train.batch_size,
        "global_batch_size": config.train.batch_size * rank.world_size,
        "missing_ranks": [i for i, s in enumerate(summaries) if s is None],
    }


def _job_shape(job: dict[str, Any], reported: list[Any], world_size: int
               ) -> tuple[int | None, int | None]:
    """(nodes, ranks per node) as the launcher tells, each None with its reason added to
    ``job["reasons"]``: ranks per node only when every rank's node runs as many."""
    from bigbench.distributed.env import job_shape

    nnodes = job_shape(world_size)[0]
    layout = {s.ranks_on_node for s in reported}
    per_node = layout.pop() if len(layout) == 1 else None
    unknown = "the launcher's environment does not say"
    if nnodes is None:
        job.setdefault("reasons", {})["nnodes"] = unknown
    if per_node is None:
        job.setdefault("reasons", {})["nproc_per_node"] = \
            "the nodes run different numbers of ranks" if layout else unknown
    return nnodes, per_node


def _backend_in_use() -> str | None:
    import torch.distributed as dist

    return str(dist.get_backend()) if dist.is_initialized() else None


def _start_loggers(config: ExperimentConfig, writer: RunWriter, workload: Workload,
                   energy: EnergyMonitor) -> RunLoggers:
    """The experiment trackers of ``output.loggers``, started (none on ranks that do not
    write); each log event carries the latest power sample of every metered device."""
    if not config.output.loggers or not writer.writes:
        return RunLoggers()
    loggers = build_loggers(config.output.loggers, eval_metrics=workload.task.metrics,
                            power=lambda: latest_power(energy),
                            power_devices=list(energy.sampler.traces))
    loggers.start(config, writer.run_dir)
    return loggers


def _restore(workload: Workload, resume: ResumeInfo | None, threads: int | None) -> Restored:
    """Load the checkpoint of a resumed run into the workload (nothing for a fresh run)."""
    if resume is None:
        return Restored()
    import torch

    from bigbench.checkpoint import load_checkpoint

    assert workload.optimizer is not None
    model, optimizer = workload.model, workload.optimizer
    if is_sharded(model):  # FSDP: whole tensors from the files, scattered into the shards
        view = ShardedLoad(model, optimizer)
        model, optimizer = view, view.optimizer_view  # type: ignore[assignment]
    position, state = load_checkpoint(resume.checkpoint, model, optimizer, workload.schedule)
    saved_world = int(state.get("world_size", 1))
    world = workload.batcher.world_size if workload.batcher is not None else 1
    if saved_world != world:
        from bigbench.resume import ResumeError

        raise ResumeError(f"{resume.run_dir}: it was trained by {saved_world} rank(s) and "
                          f"would resume on {world}; each rank's data shard and position depend "
                          f"on the world size, so resume with --nproc-per-node {saved_world} "
                          "(times the nodes it had)")
    if workload.scaler is not None and state.get("scaler"):
        workload.scaler.load_state_dict(state["scaler"])
    if threads is None and state.get("threads"):
        # Floating-point reductions depend on the thread count: resume with the original
        # run's, so the resumed run computes exactly what the uninterrupted one would.
        torch.set_num_threads(int(state["threads"]))
        workload.performance["threads"] = torch.get_num_threads()
    durations = state["durations"].tolist() if "durations" in state else []
    rank = workload.batcher.rank if workload.batcher is not None else 0
    by_rank = state.get("durations_by_rank")
    if by_rank is not None:
        durations = by_rank[rank].tolist()  # this rank's own
    elif rank > 0:
        durations = []  # "durations" are rank 0's: never reported as another rank's
    return Restored(position, state.get("segments", []), durations, state.get("last_eval"),
                    state.get("target"))


def _count_flops(config: ExperimentConfig, workload: Workload
                 ) -> tuple[dict[str, Any] | None, str | None]:
    from bigbench.workload.steps import step_flops

    if not config.measure.flops:
        return None, None
    try:
        return step_flops(workload), None
    except Exception as exc:  # an op the meta device cannot run: say so instead of guessing
        return None, f"FLOP counting failed: {type(exc).__name__}: {exc}"


def _compile(workload: Workload) -> float:
    """Time an eager step (for the payback figure), then compile the model; returns the time."""
    import torch

    from bigbench.checkpoint import rng_state, set_rng_state
    from bigbench.workload.steps import eager_step_time

    assert workload.batcher is not None
    saved = rng_state()  # timing eager steps on a copy must not shift any random stream
    eager_s = eager_step_time(workload, next(iter(workload.batcher.epoch(0))))
    set_rng_state(saved)
    workload.runnable = torch.compile(workload.runnable)  # DDP's wrapper too, where there is one
    return eager_s


def _loop_settings(config: ExperimentConfig, energy: EnergyMonitor) -> LoopSettings:
    train = config.train
    # Extend until every quality rule can be met: the minimum window *and* the sample count,
    # which loses a sample at each edge of the segments evaluations split the window into.
    extend = config.measure.extend_to_min_window and bool(energy.devices)
    return LoopSettings(
        warmup_steps=train.warmup_steps,
        min_measured_s=energy.quality_window_s if extend else None, log_every=train.log_every,
        checkpoint_every=train.checkpoint_every,
        eval_batch_size=train.eval_batch_size or train.batch_size, compile_step=train.compile,
        endless=train.max_steps is not None or extend, eval_every=train.eval_every,
        target=target_of(train), stop_at_target=train.stop_at_target)


def _measure_idle(config: ExperimentConfig, loop: TrainingLoop, stop: StopRequest) -> None:
    """The idle-power baseline before the first step (measure.idle_s), waking on a stop."""
    seconds = config.measure.idle_s
    if seconds <= 0:
        return
    loop.callbacks.on_phase(f"measuring idle power for {seconds:g} s")
    with loop.meter.window("idle"):
        deadline = time.monotonic() + seconds
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _finish(record: dict[str, Any], facts: RunFacts, loop: TrainingLoop,
            energy: EnergyMonitor) -> Exception | None:
    """Complete run.json; a bug in a derived figure is recorded, and must not lose the run."""
    try:
        finish_record(record, facts, loop, energy)
    except Exception as exc:  # re-raised by the caller once every file is written
        record.update(status="failed", stop_reason="error",
                      stop_detail="assembling run.json failed; training itself ended as "
                                  f"{loop.state.stop_reason or 'planned'}",
                      error={"type": type(exc).__name__, "message": str(exc),
                             "traceback": traceback.format_exc()})
        record.setdefault("files", {"config": "config.yaml", "metrics": "metrics.jsonl",
                                    "weights": None, "power": None, "checkpoint": None})
        return exc
    return None


def _write_results(writer: RunWriter, record: dict[str, Any], energy: EnergyMonitor,
                   workload: Workload, loop: TrainingLoop, save_weights: bool,
                   ranks_together: bool = True) -> OutputError | None:
    """power.csv, the weights and run.json: each attempted on its own, run.json always last.

    The weights are written when training ended as planned or was interrupted (not after a
    NaN loss, out of memory or a bug in the loop), and sharded weights only while every rank
    can still join their gather (``ranks_together``). Returns the first write error, if any.
    """
    files, errors = record["files"], []

    def attempt(name: str, write: Any) -> None:
        try:
            files[name] = write()
        except OutputError as exc:  # a full disk: keep going, so run.json says what happened
            errors.append(exc)
            files[name] = None
        except Exception as exc:  # a bug in one writer must not cost run.json either
            first_line = (str(exc).strip().splitlines() or [""])[0]
            errors.append(OutputError(f"{name}: not written ({type(exc).__name__}: "
                                      f"{first_line})"))
            files[name] = None

    files["checkpoint"] = "checkpoint" if writer.has_checkpoint() else None
    attempt("power", lambda: writer.write_power_csv(power_rows(energy), loop.meter.origin))
    trained = loop.error is None and \
        loop.state.stop_reason in (None, "interrupted", "target_reached")
    if save_weights and trained and (ranks_together or not is_sharded(workload.model)):
        # FSDP: every rank gathers the whole weights (a collective); rank 0 writes them.
        attempt("weights", lambda: writer.save_weights(saved_state(workload.model, None)[0]))
    if errors and record.get("error") is None:
        record["error"] = {"type": "write_error", "message": errors[0].problems[0]}
    try:
        writer.write_record(record)
    except OutputError as exc:
        errors.append(exc)
    return errors[0] if errors else None


def _warnings(record: dict[str, Any]) -> list[str]:
    """Warnings worth showing the user (low energy quality, counter and integral disagreeing),
    and a record that does not match its own schema (a bug, reported rather than fatal)."""
    from bigbench.records import RecordError, RunRecord, validate

    warnings = energy_warnings(record["energy"].get("devices", []))
    try:
        validate(record, RunRecord, "run.json")
    except RecordError as exc:
        warnings.append(f"{exc.problems[0]} (a bug in bigbench: please report it)")
    return warnings


def _check_tracking_server(config: ExperimentConfig) -> None:
    """An MLflow server the run would report to must answer before training starts."""
    if "mlflow" in config.output.loggers:
        from bigbench.loggers.mlflow_logger import check_server

        check_server(config)
