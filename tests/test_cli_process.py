"""What needs a real process: import cost, signals, the console script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_help_and_config_validation_do_not_import_torch(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: {name: cnn}\ndata: {name: digits}\n")
    code = (
        "import sys\n"
        "from bigbench.cli import app\n"
        "for argv in (['--help'], ['config', 'validate', sys.argv[1]], ['models', '--help']):\n"
        "    try:\n"
        "        app(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (argv, exit.code)\n"
        "print('torch' in sys.modules)\n"
    )
    result = _python("-c", code, str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_version() -> None:
    result = _python("-m", "bigbench", "--version")
    assert result.returncode == 0 and result.stdout.startswith("bigbench ")


LONG_RUN = """\
name: long
model: {name: cnn, channels: [4], hidden: []}
data: {name: digits, size: 512, test_size: 64}
train: {max_steps: 1000000, batch_size: 8, warmup_steps: 2, log_every: 5}
device: cpu
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_writes_run_json(tmp_path: Path, sig, code) -> None:
    config = tmp_path / "long.yaml"
    config.write_text(LONG_RUN)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bigbench", "train", str(config), "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "120"})
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never logged"
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert record["progress"]["steps"] >= 10
    assert record["throughput"]["samples_per_s"] > 0
    assert (out / "model.safetensors").exists()
