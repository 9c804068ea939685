"""A finished run's summary rows: humanised figures, "n/a (why)" for the unmeasured.

The rows are shared by the console summary of ``bigbench train`` and the report's run table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bigbench.records import Evaluation, RunEnergy, RunRecord, Section, TrainingTarget


def human_bytes(value: int | None) -> str | None:
    """``1536`` → ``1.5 KiB``."""
    if value is None:
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None  # unreachable


def _na(section: Section | None, key: str) -> str:
    reasons = section.reasons if section is not None else {}
    reason = reasons.get(key) or getattr(section, "reason", None) or "not measured"
    return f"n/a ({reason})"


def as_record(record: RunRecord | Mapping[str, Any]) -> RunRecord:
    """``record`` as a typed :class:`RunRecord` (a dict is validated; a mismatch is a bug)."""
    return record if isinstance(record, RunRecord) else RunRecord.model_validate(dict(record))


def summary_rows(record: RunRecord | Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the summary table: work, then speed, accuracy, memory, energy.

    Args:
        record: A finished run's record (typed, or run.json's dict).
    """
    run = as_record(record)
    tp, mem, ev, flops = run.throughput, run.memory, run.eval, run.flops
    if tp is None or mem is None or ev is None or run.energy is None or run.progress is None:
        raise ValueError(f"the run is {run.status}: no measured sections to summarise")
    rows = [
        ("status", run.status + (f" — {run.stop_detail}" if run.stop_detail else "")),
        ("run directory", run.run_dir),
        ("model", f"{run.model.name} ({run.model.params:,} parameters)"),
        ("data", f"{run.data.name} ({run.data.train_size:,} train / "
                 f"{run.data.test_size or 0:,} test)"),
        ("device", run.env.device.name),
        ("steps", f"{run.progress.steps:,} ({tp.warmup_steps} warm-up, "
                  f"{tp.measured_steps:,} measured)"),
        ("throughput", f"{tp.samples_per_s:,.1f} samples/s" if tp.samples_per_s
         else _na(tp, "samples_per_s")),
    ]
    rows += _job_rows(record, rows)
    if tp.tokens_per_s:
        rows.append(("tokens/s", f"{tp.tokens_per_s:,.0f}"))
    step = tp.step_time_s
    if step.p50 is not None:
        rows.append(("step time p50/p90/p99", " / ".join(
            f"{q * 1000:.2f} ms" for q in (step.p50, step.p90 or 0.0, step.p99 or 0.0))))
    if flops is not None and flops.train_step_per_sample:
        rows += [
            ("FLOPs per sample", f"{flops.train_step_per_sample / 1e6:,.1f} MFLOP "
                                 f"(train step, {flops.method})"),
            ("achieved", f"{flops.achieved_flops_per_s / 1e9:,.1f} GFLOP/s"
             if flops.achieved_flops_per_s else _na(flops, "achieved_flops_per_s")),
            ("MFU", f"{flops.mfu:.1%} of the {flops.peak_dtype} peak"
             if flops.mfu is not None else _na(flops, "mfu")),
        ]
    rows += _eval_rows(ev)
    if run.target is not None:
        rows.append(("time to target", _target_text(run.target)))
    rows += [
        ("peak host RSS", human_bytes(mem.host_peak_rss_bytes) or _na(mem, "host")),
        ("peak device memory", human_bytes(mem.device_peak_allocated_bytes)
         or _na(mem, "device_peak_allocated_bytes")),
        ("energy", _energy_text(run.energy)),
    ]
    if flops is not None and flops.train_step_per_sample:
        rows.append(("FLOPs per joule", f"{flops.flops_per_j / 1e9:,.2f} GFLOP/J"
                     if flops.flops_per_j else _na(flops, "flops_per_j")))
    if run.carbon is not None:
        carbon = run.carbon
        rows.append(("carbon", f"{carbon.measured_window_g:.3f} gCO2e (measured window)"
                     if carbon.measured_window_g is not None
                     else _na(carbon, "measured_window_g")))
    if run.time is not None:
        rows.append(("wall time", f"{run.time.wall_s:.1f} s"))
    return rows


def _job_rows(record: RunRecord | Mapping[str, Any], rows: list[tuple[str, str]]
              ) -> list[tuple[str, str]]:
    """A distributed job's figures (run.json ``distributed``): the ranks, and throughput and
    energy over all of them; the rows above become rank 0's."""
    job = record.get("distributed") if isinstance(record, Mapping) else \
        getattr(record, "distributed", None)
    if job is None:
        return []
    if not isinstance(job, Mapping):
        job = job.model_dump()
    rows[-1] = ("throughput (rank 0)", rows[-1][1])
    hosts = job.get("hosts") or []
    out = [("ranks", f"{job['world_size']} on {len(hosts)} host(s) ({job.get('strategy')}, "
                     f"{job.get('backend')}; global batch {job.get('global_batch_size')})"),
           ("job throughput", f"{job['samples_per_s']:,.1f} samples/s (all ranks' samples / "
                              "the slowest rank's window)" if job.get("samples_per_s")
            else "n/a (no rank measured a step)")]
    out.append(("gradient all-reduce", _communication(job)))
    energy = job.get("energy") or {}
    if energy.get("total_j") is not None:
        per_sample = energy.get("j_per_sample")
        out.append(("job energy", f"{energy['total_j']:,.1f} J"
                    + (f", {per_sample:.4g} J/sample" if per_sample is not None else "")
                    + " (each device counted once)"))
    else:
        why = (energy.get("reasons") or {}).get("total_j") or energy.get("reason") or \
            "not measured"
        out.append(("job energy", f"n/a ({why})"))
    return out


def _communication(job: Mapping[str, Any]) -> str:
    """The time per step with a gradient all-reduce in flight, and its share of the step."""
    per_step, share = job.get("communication_per_step_s"), job.get("communication_share")
    if per_step is None:
        why = (job.get("reasons") or {}).get("communication_per_step_s") or \
            "not recorded by this version of bigbench"
        return f"n/a ({why})"
    text = f"{per_step * 1e3:.3g} ms per step in flight"
    if share is not None:
        text += f" ({share:.0%} of the step; it overlaps the backward pass)"
    return text


def _eval_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Accuracy and loss; for language models also perplexity, bits/token and the floor."""
    if ev.perplexity is None and ev.entropy_floor is None and "perplexity" not in ev.reasons:
        return [("test accuracy", f"{ev.accuracy:.2%}" if ev.accuracy is not None
                 else _na(ev, "accuracy")),
                ("test loss", f"{ev.loss:.4f}" if ev.loss is not None else _na(ev, "loss"))]
    loss = _na(ev, "loss") if ev.loss is None else \
        f"{ev.loss:.4f} nats/token ({ev.bits_per_token:.3f} bits/token)"
    if ev.loss is not None and ev.entropy_floor is not None:
        loss += f", {ev.loss - ev.entropy_floor:+.4f} above the corpus floor " \
                f"{ev.entropy_floor:.4f}"
    return [("test loss", loss),
            ("test perplexity", f"{ev.perplexity:.3f}" if ev.perplexity is not None
             else _na(ev, "perplexity")),
            ("next-token accuracy", f"{ev.accuracy:.2%}" if ev.accuracy is not None
             else _na(ev, "accuracy"))]


def _target_text(target: TrainingTarget) -> str:
    """``reached 97% accuracy at step 300: 4.1 s, 120 J`` or ``n/a (not reached …)``."""
    if not target.reached:
        return _na(target, "steps_to_target")
    goal = f"{target.goal * 100:.4g}% accuracy" if target.metric == "accuracy" else \
        f"{target.metric} {target.goal:.4g}"
    time = f"{target.time_to_target_s:.3g} s" if target.time_to_target_s is not None \
        else _na(target, "time_to_target_s")
    joules, bound = target.energy_to_target_j, target.energy_to_target_uncertainty_j
    energy = f"energy {_na(target, 'energy_to_target_j')}" if joules is None else \
        f"{joules:,.4g} J" + (f" ± {_share(bound / joules)}" if bound is not None and joules > 0
                              else "")
    return (f"reached {goal} at step {target.steps_to_target:,} "
            f"({target.samples_to_target:,} samples): {time}, {energy}")


def _share(fraction: float) -> str:
    """``3%``, ``0.4%`` or ``< 0.1%``: an error bound, never shown as an exact 0%."""
    if fraction >= 0.01:
        return f"{fraction:.0%}"
    return f"{fraction:.1%}" if fraction >= 0.001 else "< 0.1%"


def _energy_text(energy: RunEnergy) -> str:
    if energy.total_j is None:
        return f"n/a ({energy.reason})"
    methods = sorted({d.method for d in energy.devices if d.measured and d.method})
    per_sample = f"{energy.j_per_sample * 1000:.3f} mJ/sample, " \
        if energy.j_per_sample is not None else ""
    if energy.j_per_token is not None:
        per_sample += f"{energy.j_per_token * 1e6:.2f} µJ/token, "
    power = f"{energy.avg_power_w:.1f} W avg " if energy.avg_power_w is not None else ""
    bound = ""
    if energy.uncertainty_j is not None and energy.total_j > 0:
        bound = f" ± {energy.uncertainty_j / energy.total_j:.0%}"  # J/sample shares it
    text = (f"{energy.total_j:,.1f} J{bound} measured window — {per_sample}{power}"
            f"({', '.join(methods)}; quality {energy.quality})")
    if energy.status == "partial":
        text += f"; partial: {energy.reason}"
    return text
