"""The GPU state file: what :mod:`~bigbench.measuring.energy.power_limits` must put back.

Written (atomically) before a GPU setting changes and marked ``restored`` once the original is
back, so a run killed hard leaves the only record of the original, which ``bigbench gpu
restore`` reads. JSON, schema ``bigbench.gpu_state/1``::

    {"schema", "uuid", "index", "name", "original_power_limit_w", "default_power_limit_w",
     "allowed_range_w": [min, max], "clocks_locked", "restored", "pid", "created_at",
     "restored_at"}

Power in watts; times UTC ISO 8601. No NVML here: this module only reads and writes the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bigbench.errors import BigbenchError

#: Identifier in the ``schema`` key of a state file.
STATE_SCHEMA = "bigbench.gpu_state/1"
#: The state file's name inside an output directory.
STATE_FILE = "gpu_state.json"


class PowerControlError(BigbenchError):
    """A GPU setting cannot be changed or restored (one line, naming the fix)."""


def state_path(path: Path) -> Path:
    """The state file named by ``path``: itself, or ``gpu_state.json`` in a directory."""
    return path / STATE_FILE if path.is_dir() else path


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old or the new file).

    Raises:
        OutputError: the file cannot be written.
    """
    from bigbench.results import write_json

    write_json(path, state)


def refuse_unrestored(path: Path) -> None:
    """Refuse to reuse a state file that is not restored yet: it holds the only record of the
    true original, which a new run would overwrite with the changed setting.

    Raises:
        PowerControlError: ``path`` holds a state not yet restored.
    """
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("restored") is False:
        raise PowerControlError(f"{path} records GPU settings an earlier run changed and did "
                                f"not restore: run `bigbench gpu restore {path}` first, or "
                                "choose another output directory")


def load_state(path: Path) -> dict[str, Any]:
    """The state file at ``path`` (a file or an output directory), checked.

    Raises:
        PowerControlError: missing, unreadable or not a bigbench GPU state file.
    """
    file = state_path(Path(path))
    if not file.exists():
        where = f"{path} has no {STATE_FILE}" if Path(path).is_dir() else f"{file}: no such file"
        raise PowerControlError(f"{where}; give a bench output directory or its {STATE_FILE}")
    try:
        state = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise PowerControlError(f"{file}: not a bigbench GPU state file ({exc})") from None
    expected = {"uuid": str, "original_power_limit_w": float, "clocks_locked": bool,
                "restored": bool}
    if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA or not all(
            _is(state.get(key), kind) for key, kind in expected.items()):
        raise PowerControlError(f"{file}: not a bigbench GPU state file (expected schema "
                                f"{STATE_SCHEMA!r} with uuid, original_power_limit_w, "
                                "clocks_locked and restored)")
    return state


def _is(value: object, kind: type) -> bool:
    """``isinstance`` where a bool is not a number (JSON true is not 1 W)."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)
