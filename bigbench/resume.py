"""Resuming an interrupted run: what may be resumed, config differences, segment totals.

A run resumed once or more is made of *segments* (one per process). Each segment's measured
steps, samples, time and energy are kept in run.json under ``segments``; the top-level figures
are totals over all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigbench.checkpoint import find_checkpoint
from bigbench.errors import BigbenchError


class ResumeError(BigbenchError):
    """The run directory cannot be resumed."""


@dataclass
class ResumeInfo:
    """A run directory to continue, and what it holds."""

    run_dir: Path
    record: dict[str, Any]
    checkpoint: Path
    config_changes: list[str]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old → new`` for every key whose value differs."""
    a, b = flatten(old), flatten(new)
    return [f"{key}: {json.dumps(a.get(key))} → {json.dumps(b.get(key))}"
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def open_run(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """The run's record and checkpoint folder, or a ResumeError saying why not."""
    record_path = run_dir / "run.json"
    if not run_dir.is_dir():
        raise ResumeError(f"--resume {run_dir}: not a directory")
    if not record_path.is_file() or not (run_dir / "config.yaml").is_file():
        raise ResumeError(f"--resume {run_dir}: not a bigbench run directory (no run.json or "
                          "config.yaml)")
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResumeError(f"{record_path}: unreadable ({exc})") from None
    if not isinstance(record, dict) or record.get("schema") != "bigbench.run/1":
        raise ResumeError(f"{record_path}: not a bigbench.run/1 record")
    if record.get("status") == "completed":
        raise ResumeError(f"--resume {run_dir}: the run already completed; nothing to resume")
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is None:
        raise ResumeError(f"--resume {run_dir}: no checkpoint to resume from (set "
                          "train.checkpoint_every, or stop runs with Ctrl-C, which saves one)")
    return record, checkpoint


def segment_summary(index: int, started_at: str, finished_at: str | None, steps_from: int,
                    steps_to: int, throughput: dict[str, Any], energy: dict[str, Any]
                    ) -> dict[str, Any]:
    """What one segment measured."""
    return {"index": index, "started_at": started_at, "finished_at": finished_at,
            "steps": [steps_from, steps_to],
            "measured_steps": throughput.get("measured_steps", 0),
            "measured_samples": throughput.get("measured_samples", 0),
            "measured_time_s": throughput.get("measured_time_s", 0.0),
            "energy_j": energy.get("total_j"), "energy_status": energy.get("status")}


def total_over_segments(record: dict[str, Any], segments: list[dict[str, Any]]) -> None:
    """Replace the top-level throughput and energy totals with totals over ``segments``."""
    samples = sum(s["measured_samples"] for s in segments)
    time_s = sum(s["measured_time_s"] for s in segments)
    tp = record["throughput"]
    tp.update(measured_samples=samples, measured_time_s=time_s,
              measured_steps=sum(s["measured_steps"] for s in segments))
    tp["samples_per_s"] = samples / time_s if time_s > 0 else None
    if tp.get("tokens_per_s") is not None and record["data"]["sample_shape"]:
        tp["tokens_per_s"] = tp["samples_per_s"] * record["data"]["sample_shape"][0]
    energy = record["energy"]
    values = [s["energy_j"] for s in segments]
    if None in values:
        if any(v is not None for v in values):
            energy["status"] = "partial"
            energy["reason"] = "; ".join(filter(None, [
                energy.get("reason"), "energy was not measured in every segment of this "
                "resumed run; totals cover the measured segments only"]))
        measured = [s for s in segments if s["energy_j"] is not None]
    else:
        measured = segments
    if measured:
        total = sum(s["energy_j"] for s in measured)
        m_samples = sum(s["measured_samples"] for s in measured)
        m_time = sum(s["measured_time_s"] for s in measured)
        energy.update(total_j=total, j_per_sample=total / m_samples if m_samples else None,
                      samples_per_j=m_samples / total if total else None,
                      avg_power_w=total / m_time if m_time > 0 else None)
