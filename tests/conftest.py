"""Shared fixtures: a CLI runner and small configs written into tmp_path."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bigbench.cli import app

#: A config that trains in about a second on CPU.
TINY_CNN = """\
name: tiny
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 256, test_size: 64}
train:
  max_steps: 12
  batch_size: 16
  warmup_steps: 2
  log_every: 4
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
device: cpu
"""


@pytest.fixture(autouse=True)
def _no_host_energy_meters(tmp_path_factory: pytest.TempPathFactory,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read this host's RAPL counters: results must not depend on the machine.

    Points the powercap root at an empty folder (subprocesses inherit it); a test that wants
    meters builds a fake tree and sets the root itself.
    """
    empty = tmp_path_factory.mktemp("no-powercap") / "powercap"
    monkeypatch.setenv("BIGBENCH_POWERCAP_ROOT", str(empty))


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """train.threads sets torch's process-wide thread count; restore it after every test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write YAML text (dedented) to tmp_path/<name> and return the path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


class Cli:
    """Runs bigbench in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | Path):  # noqa: ANN204
        return self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def cli() -> Cli:
    return Cli()


def load_run(run_dir: Path) -> dict:
    """Read run.json of a run directory."""
    return json.loads((run_dir / "run.json").read_text())


@dataclass
class ReportResults:
    """Real results for the report tests: a run with power.csv and energy, and a bench."""

    run: Path
    bench: Path


@pytest.fixture(scope="session")
def report_results(tmp_path_factory: pytest.TempPathFactory) -> ReportResults:
    """A short training run measured against a live fake powercap tree (so it has power.csv,
    windows to shade and measured energy) and a smoke-suite benchmark; made once per session."""
    import torch
    from fakes import LivePowercap

    from bigbench.measuring.energy import rapl

    root = tmp_path_factory.mktemp("report-results")
    configs = Path(__file__).resolve().parents[1] / "configs"
    cli, threads = Cli(), torch.get_num_threads()
    live = LivePowercap(root / "powercap", {"intel-rapl:0": 40.0, "intel-rapl:0:2": 4.0},
                        period_s=0.002).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(rapl.ROOT_ENV, str(root / "powercap"))
            run = cli("train", configs / "smoke.yaml", "--out", root / "run",
                      "--set", "train.max_steps=12", "--set", "train.warmup_steps=2",
                      "--set", "train.log_every=2", "--set", "train.threads=1",
                      "--set", "measure.idle_s=0.1")
            assert run.exit_code == 0, run.stderr
            bench = cli("bench", "--suite", "smoke", "--device", "cpu", "--duration", "0.05",
                        "--repeats", "2", "--warmup", "1", "--out", root / "bench")
            assert bench.exit_code == 0, bench.stderr
    finally:
        live.stop()
        torch.set_num_threads(threads)  # train.threads is process-wide
    return ReportResults(root / "run", root / "bench")


def undeclared_keys(model, lenient: tuple[type, ...] = (), path: str = "") -> list[str]:
    """Keys present in a validated record (recursively) that its class does not declare.

    ``lenient``: sections whose free-form keys are expected (the resolved config).
    """
    from pydantic import BaseModel

    found = [f"{path}.{key}" for key in model.model_extra or {}
             if not isinstance(model, lenient)]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value.items() if isinstance(value, dict) else enumerate(value) \
            if isinstance(value, list) else [("", value)]
        for key, item in items:
            if isinstance(item, BaseModel):
                found += undeclared_keys(item, lenient,
                                         f"{path}.{name}" + (f"[{key}]" if key != "" else ""))
    return found
