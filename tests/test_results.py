"""Result files: atomic writes, exclusive run directories, output path checks."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bigbench.errors import OutputError
from bigbench.results import atomic_write_text, create_run_dir, write_json


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch) -> None:
    target = tmp_path / "run.json"
    write_json(target, {"status": "running"})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="disk full"):
        write_json(target, {"status": "completed"})
    assert target.read_text() == '{\n  "status": "running"\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left


def test_nan_is_refused_rather_than_written(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"loss": float("nan")})


def test_run_directories_are_exclusive(tmp_path) -> None:
    first = create_run_dir(tmp_path / "runs", "exp")
    second = create_run_dir(tmp_path / "runs", "exp")
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name.startswith(first.name)


def test_explicit_out_checks(tmp_path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        create_run_dir(tmp_path, "exp", out=a_file)
    used = tmp_path / "used"
    used.mkdir()
    (used / "run.json").write_text("{}")
    with pytest.raises(OutputError, match="not empty"):
        create_run_dir(tmp_path, "exp", out=used)
    with pytest.raises(OutputError, match="does not exist"):
        create_run_dir(tmp_path, "exp", out=tmp_path / "missing" / "run")
    fresh = create_run_dir(tmp_path, "exp", out=tmp_path / "fresh")
    assert fresh == tmp_path / "fresh" and fresh.is_dir()


def test_text_files_get_normal_permissions(tmp_path) -> None:
    atomic_write_text(tmp_path / "a.txt", "hi")
    mode = (tmp_path / "a.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_output_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("")
    with pytest.raises(OutputError, match="output.dir"):
        create_run_dir(tmp_path / "runs", "exp")
