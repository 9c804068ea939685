"""``bigbench sweep`` as a library call: check, then train every trial, then the frontier.

1. Checks before any trial (every user mistake is one line, exit 2): a ``sweep:`` section,
   power limits and temperature cooldowns only on a GPU, every combination's config valid,
   eta in 0..1, and — with power limits — the privilege to set them and every limit inside
   the GPU's range (the limiter refuses with the fix or the range).
2. The trials in interleaved rounds (bigbench.sweep.plan): for each, the cooldown, the
   combination's power limit, then a real training run into ``trials/<id>/`` (an ordinary
   run directory). sweep.json is rewritten atomically after every trial, with the medians
   and the frontier over what has finished, so an interrupted sweep keeps its trials.
3. The GPU's original power settings are restored at the end — after an error in a trial,
   an exception in bigbench or Ctrl-C too; ``gpu_state.json`` holds them for
   ``bigbench gpu restore`` after a hard kill.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bigbench.config.schema import ExperimentConfig
from bigbench.config.sweep import SweepConfig
from bigbench.errors import BigbenchError, ConfigError
from bigbench.interrupt import StopRequest
from bigbench.records import SWEEP_SCHEMA
from bigbench.results import DocumentRun, create_run_dir
from bigbench.sweep import gpu, plan, summary, trial
from bigbench.sweep.gpu import DeviceFacts

SWEEP_FILE = "sweep.json"
#: The GPU's original power settings, written by the limiter before any change.
STATE_FILE = "gpu_state.json"
TRIALS_DIR = "trials"

Progress = Callable[[str], None]


class SweepRun(DocumentRun):
    """A finished (or stopped) sweep: its folder, sweep.json and warnings."""

    file_name = SWEEP_FILE


@dataclass
class _Plan:
    """What the checks produced: the combinations, their configs and the trial order."""

    device: DeviceFacts
    section: SweepConfig
    combos: list[plan.Combination]
    configs: dict[str, ExperimentConfig]
    trials: list[plan.PlannedTrial]
    eta: float


@dataclass
class _Gpu:
    """What the trials need from the GPU: its limiter (None: limits left alone), the watts
    of each combination and a thermometer for the cooldown (None: no temperature wait)."""

    limiter: Any | None
    watts: dict[str, float | None]
    read_c: gpu.Thermometer | None


def check_plan(config: ExperimentConfig, device: DeviceFacts, eta: float | None) -> _Plan:
    """Every check that needs no GPU change and no training (raises ConfigError)."""
    section = config.sweep
    if section is None:
        raise ConfigError("the config has no sweep: section; add one listing what to vary, "
                          "e.g. sweep: {batch_sizes: [32, 64, 128]} (see "
                          "configs/sweep-cnn.yaml)")
    if device.type != "cuda":
        for key in ("power_limits", "cooldown_below_c"):
            if getattr(section, key) is not None:
                raise ConfigError(f"sweep.{key}: only for a GPU, but the sweep runs on "
                                  f"{device.type} ({device.name}); remove sweep.{key} or run "
                                  "with --device cuda")
    if eta is not None and not 0.0 <= eta <= 1.0:
        raise ConfigError(f"--eta {eta:g}: must be between 0 and 1 (1 minimises energy, 0 "
                          "time)")
    from bigbench.config.loader import load_source

    combos = plan.combinations(section, config)
    configs = {}
    for combo in combos:
        try:
            configs[combo.id] = load_source(config, combo.overrides())
        except ConfigError as exc:
            raise ConfigError(*(f"sweep combination {combo.id}: {p}"
                                for p in exc.problems)) from None
    return _Plan(device, section, combos, configs, plan.interleaved(combos, section.repeats),
                 section.eta if eta is None else eta)


def run_sweep(config: ExperimentConfig, *, out: Path | None = None,
              stop: StopRequest | None = None, eta: float | None = None,
              progress: Progress = lambda line: None) -> SweepRun:
    """Train every trial of ``config``'s ``sweep:`` section and find the frontier.

    Args:
        config: The experiment config with its sweep: section.
        out: A new or empty folder for the sweep (default output.dir/<UTC time>-<name>-sweep).
        stop: Set by Ctrl-C / SIGTERM: the running trial stops, the sweep ends interrupted.
        eta: Overrides sweep.eta.
        progress: Called with one line per stage.

    Raises:
        BigbenchError: a user mistake or a GPU that refuses its limits, before any trial.
    """
    stop = stop or StopRequest()
    checked = check_plan(config, gpu.device_facts(config.device), eta)
    run = SweepRun(create_run_dir(Path(config.output.dir), f"{config.name}-sweep", out),
                   _start_document(config, checked))
    try:
        device = _prepare(run, checked)
    except BigbenchError:
        _remove_if_empty(run.out_dir)  # a refusal before any trial leaves nothing behind
        raise
    failure = None
    try:
        _trials(run, checked, device, stop, progress)
    except KeyboardInterrupt:
        run.document["status"] = "interrupted"
    except Exception as exc:  # recorded, then raised: sweep.json says what happened
        _failed(run.document, exc)
        raise
    finally:
        try:
            _restore(run, device.limiter)
        finally:  # sweep.json is written even when a held signal arrives after the restore
            failure = _finish(run, checked, device.watts, stop)
    if failure is not None:
        raise failure
    return run


def _failed(document: dict[str, Any], exc: BaseException) -> None:
    document.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(limit=8))


def _prepare(run: SweepRun, checked: _Plan) -> _Gpu:
    """The GPU's limiter with every configured limit resolved to watts, and the cooldown's
    thermometer; nothing of either when the sweep does not ask for them.

    Raises:
        BigbenchError: no permission to set limits, a limit out of the GPU's range, or a
            temperature that cannot be read — before anything changed.
    """
    section = checked.section
    if section.power_limits is None:
        read_c = gpu.thermometer(checked.device, None) \
            if section.cooldown_below_c is not None else None
        return _Gpu(None, {c.id: None for c in checked.combos}, read_c)
    limiter = gpu.open_limiter(checked.device, run.out_dir / STATE_FILE)
    run.warnings += list(getattr(limiter, "warnings", []))
    try:
        resolved = {spec: float(limiter.resolve(spec)) for spec in section.power_limits}
        low, high = limiter.allowed_range_w()
        run.document["gpu"] = {
            "index": checked.device.index, "state_file": STATE_FILE,
            "allowed_range_w": [float(low), float(high)], "original": limiter.snapshot(),
            "limits_w": {plan.limit_label(k): v for k, v in resolved.items()},
            "restored": None}
        read_c = gpu.thermometer(checked.device, limiter) \
            if section.cooldown_below_c is not None else None
    except BaseException:
        limiter.restore()  # nothing changed yet, but the limiter's own cleanup must run
        # Restored and refused before any trial: no state is left to restore from.
        (run.out_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    watts = {c.id: resolved[c.power_limit] for c in checked.combos}  # type: ignore[index]
    return _Gpu(limiter, watts, read_c)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only succeeds when empty: a state file written stays for restore
    except OSError:
        pass


def _trials(run: SweepRun, checked: _Plan, device: _Gpu, stop: StopRequest,
            progress: Progress) -> None:
    from bigbench import trainer

    section, limiter, watts = checked.section, device.limiter, device.watts
    folder = run.out_dir / TRIALS_DIR
    folder.mkdir(exist_ok=True)
    run.write()
    total = len(checked.trials)
    for planned in checked.trials:
        if stop.requested:
            return
        combo = planned.combination
        entry = _entry(planned, watts[combo.id])
        if planned.position > 0 and (section.cooldown_s or device.read_c is not None):
            progress(f"cooling down before trial {planned.position + 1}/{total}")
            entry["cooldown"] = gpu.cool_down(
                section.cooldown_s, section.cooldown_below_c, section.cooldown_timeout_s,
                device.read_c, lambda: stop.requested)
            if stop.requested:
                return
        if limiter is not None:
            limiter.apply(watts[combo.id])
            entry["telemetry_start"] = limiter.snapshot()
        progress(f"trial {planned.position + 1}/{total}: {combo.id} (round "
                 f"{planned.round + 1})")
        run.document["trials"].append(entry)
        started = time.perf_counter()
        try:
            result = trainer.run_training(checked.configs[combo.id],
                                          out=folder / planned.id, stop=stop)
        except KeyboardInterrupt:
            entry.update(status="interrupted", reason="stopped at once (a second Ctrl-C)")
            raise
        except Exception as exc:  # one trial's failure must not cost the others
            written = folder / planned.id
            entry.update(status="failed", reason=f"{type(exc).__name__}: {exc}",
                         duration_s=time.perf_counter() - started,
                         run_dir=str(written) if (written / "run.json").is_file() else None)
            run.warnings.append(f"trial {planned.id} failed: {type(exc).__name__}: {exc}")
        else:
            _record(entry, result, checked.device, limiter, time.perf_counter() - started)
        if limiter is not None:
            entry["telemetry_end"] = limiter.snapshot()
        _summarise(run, checked, watts)
        run.write()
        progress(f"trial {planned.id}: {_brief(entry)}")
        if entry["status"] == "interrupted":
            return


def _entry(planned: plan.PlannedTrial, watts: float | None) -> dict[str, Any]:
    combo = planned.combination
    return {"id": planned.id, "combination": combo.id, "round": planned.round,
            "position": planned.position, "batch_size": combo.batch_size,
            "precision": combo.precision, "power_limit": combo.power_limit,
            "power_limit_w": watts, "status": "running", "run_dir": None,
            "started_at": _now()}


def _record(entry: dict[str, Any], result: Any, device: DeviceFacts, limiter: Any,
            seconds: float) -> None:
    """A finished training run's figures into its trial entry."""
    record = result.record
    entry.update(status=record.get("status", "failed"), duration_s=seconds,
                 run_dir=str(result.run_dir) if result.run_dir is not None else None)
    if entry["status"] != "completed":
        entry["reason"] = record.get("stop_detail") or record.get("stop_reason") or \
            f"the run ended {entry['status']}"
    entry.update(trial.figures(record, device.type == "cuda"))
    if limiter is not None:
        # The limiter knows the GPU's range and the limit it set even where the run's NVML
        # meter did not report them.
        reasons = entry["reasons"]
        if entry["max_power_limit_w"] is None:
            entry["max_power_limit_w"] = float(limiter.allowed_range_w()[1])
            reasons.pop("max_power_limit_w", None)
        if entry["limit_in_effect_w"] is None:
            snapshot = limiter.snapshot().get("power_limit_w")
            entry["limit_in_effect_w"] = float(snapshot) if snapshot is not None else None
            if snapshot is not None:
                reasons.pop("limit_in_effect_w", None)
    goal = trial.target_goal(record)
    if goal is not None:
        entry["target"] = goal


def _brief(entry: dict[str, Any]) -> str:
    if entry["status"] != "completed":
        return f"{entry['status']} ({entry.get('reason')})"
    rate, joules = entry.get("samples_per_s"), entry.get("j_per_sample")
    return (f"{rate:,.1f} samples/s, " if rate else "n/a samples/s, ") + \
        (f"{joules:.4g} J/sample" if joules is not None else "n/a J/sample")


def _summarise(run: SweepRun, checked: _Plan, watts: dict[str, float | None]) -> None:
    results, found = summary.summarise(checked.combos, watts, run.document["trials"],
                                       checked.eta)
    run.document["results"], run.document["frontier"] = results, found
    goals = [t["target"] for t in run.document["trials"] if t.get("target")]
    if goals:
        run.document["target"] = goals[0]


def _restore(run: SweepRun, limiter: Any) -> None:
    """Put the GPU's original power settings back; a failure is recorded and warned about."""
    if limiter is None:
        return
    try:
        limiter.restore()
    except Exception as exc:  # the sweep's results are still worth writing
        run.document["gpu"].update(restored=False, restore_error=f"{type(exc).__name__}: {exc}")
        run.warnings.append(f"the GPU's power settings were not restored ({exc}); run "
                            f"bigbench gpu restore {run.out_dir / STATE_FILE}")
    finally:  # a second Ctrl-C held during the restore is raised after it: record it first
        if limiter.restored:
            run.document["gpu"]["restored"] = True


def _finish(run: SweepRun, checked: _Plan, watts: dict[str, float | None],
            stop: StopRequest) -> Exception | None:
    """The final status, medians and frontier, and sweep.json written whatever happened.

    Returns:
        An error raised while summarising (recorded in the document; the caller raises it),
        or None.
    """
    document, failure = run.document, None
    try:
        _summarise(run, checked, watts)
    except Exception as exc:  # a bug in a derived figure must not cost the trials' records
        failure = exc
        if document["status"] != "failed":
            _failed(document, exc)
    if document["status"] == "running":
        ran = [t for t in document["trials"] if t["status"] != "running"]
        interrupted = stop.requested or any(t["status"] == "interrupted" for t in ran)
        document["status"] = "interrupted" if interrupted else "completed"
        if interrupted:
            document["reason"] = (f"stopped after {len(ran)} of {len(checked.trials)} "
                                  "trials")
    for entry in document["trials"]:
        if entry["status"] == "running":  # a trial cut short by an exception in bigbench
            entry.update(status="interrupted" if document["status"] == "interrupted"
                         else "failed", reason=entry.get("reason") or document.get("error"))
    document["finished_at"] = _now()
    run.write()
    from bigbench.records import RecordError, SweepDocument, validate

    try:  # the typed model is the contract; a mismatch is a bug, reported, not fatal
        validate(document, SweepDocument, SWEEP_FILE)
    except RecordError as exc:
        run.warnings.append(f"{exc.problems[0]} (a bug in bigbench: please report it)")
    return failure


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _start_document(config: ExperimentConfig, checked: _Plan) -> dict[str, Any]:
    section = config.sweep
    assert section is not None
    return {
        "schema": SWEEP_SCHEMA, "status": "running", "name": config.name,
        "started_at": _now(), "finished_at": None,
        "config": config.model_dump(mode="json"),
        "settings": {"eta": checked.eta, "repeats": section.repeats,
                     "order": "interleaved: round r runs every combination, rotated by r",
                     "device": checked.device.as_dict()},
        "combinations": [{"id": c.id, "batch_size": c.batch_size, "precision": c.precision,
                          "power_limit": c.power_limit} for c in checked.combos],
        "planned": [t.id for t in checked.trials],
        "gpu": None, "trials": [], "results": [], "frontier": None,
    }
