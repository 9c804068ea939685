"""Run directories and atomic result files.

Every file is written to a temporary file in the same folder, flushed to disk, then renamed over
the target, so a crash, a full disk or a second Ctrl-C leaves either the old complete file or the
new complete one, never half of one. ``metrics.jsonl`` is a log and is appended line by line; a
reader should ignore an incomplete last line.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from bigbench.errors import OutputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Raises:
        OutputError: when the write fails (disk full, permissions); ``path`` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp creates 0600; results should be shareable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(_write_failure(path, exc)) from None
    except BaseException:
        _discard(tmp)
        raise


def file_mode() -> int:
    """0666 minus the process umask: the mode a plain ``open(path, "w")`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically. NaN/inf are refused (not valid JSON)."""
    atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _write_failure(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return (f"{path}: disk full while writing; free space and rerun "
                "(the previous file is intact)")
    return f"{path}: cannot write ({exc.strerror or exc}); the previous file is intact"


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line with a single write call."""
        line = json.dumps(record, allow_nan=False) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as exc:
            raise OutputError(_write_failure(self.path, exc)) from None


def utc_stamp(now: datetime | None = None) -> str:
    """``20261129T141132Z``: sortable, and safe in file names on every OS."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def check_out_dir(out: Path) -> None:
    """Refuse an explicit ``--out`` that cannot become a fresh run directory (before any work)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file; pass a directory path")
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(f"--out {out}: directory exists and is not empty; bigbench never "
                          "writes into an existing run; choose a new path")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"--out {out}: parent folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"--out {out}: parent folder {parent} is not writable")


def create_run_dir(parent: Path, name: str, out: Path | None = None) -> Path:
    """Create a new, empty run directory exclusively and return it.

    Args:
        parent: Folder of run directories (``output.dir``), created when missing.
        name: Experiment name.
        out: An explicit run directory (``--out``); used as is.

    Raises:
        OutputError: when the directory cannot be created or ``out`` is unusable.
    """
    if out is not None:
        check_out_dir(out)
        try:
            out.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot create ({exc.strerror or exc})") from None
        return out
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"output.dir {parent}: is a file; set output.dir to a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"output.dir {parent}: cannot create ({exc.strerror or exc})") from None
    base = f"{utc_stamp()}-{name}"
    for attempt in range(1000):
        candidate = parent / (base if attempt == 0 else f"{base}-{attempt}")
        try:
            candidate.mkdir()  # exclusive: two runs never share a directory
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"output.dir {parent}: cannot create a run directory "
                              f"({exc.strerror or exc})") from None
    raise OutputError(f"output.dir {parent}: too many runs named {base}")


@dataclass
class DocumentRun:
    """A command's run whose result is one JSON document in its folder (optimize.json,
    sweep.json): rewritten atomically after every stage, so a stop keeps what was done.

    Attributes:
        out_dir: The run's folder.
        document: The document as it stands.
        warnings: Things a user must hear about.
    """

    out_dir: Path
    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: The document's file name in ``out_dir``.
    file_name: ClassVar[str] = "result.json"

    def write(self) -> None:
        """The document, replaced atomically."""
        write_json(self.out_dir / self.file_name, self.document)
