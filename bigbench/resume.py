"""Resuming an interrupted run: what may be resumed, and how its config differs.

A run resumed once or more is made of *segments* (one per process); run.json keeps each under
``segments`` and its top-level figures are totals over all of them (see
:mod:`bigbench.run_record`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigbench.checkpoint import find_checkpoint
from bigbench.errors import BigbenchError
from bigbench.records import RUN_SCHEMA


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
    if not isinstance(record, dict) or record.get("schema") != RUN_SCHEMA:
        raise ResumeError(f"{record_path}: not a {RUN_SCHEMA} record")
    if record.get("status") == "completed":
        raise ResumeError(f"--resume {run_dir}: the run already completed; nothing to resume")
    checkpoint = find_checkpoint(run_dir)
    if checkpoint is None:
        raise ResumeError(f"--resume {run_dir}: no checkpoint to resume from (set "
                          "train.checkpoint_every, or stop runs with Ctrl-C, which saves one)")
    return record, checkpoint
