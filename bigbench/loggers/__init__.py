"""Experiment tracker loggers: the run's events, copied to TensorBoard, MLflow or a CSV file.

``output.loggers`` names them. Each is fed what the run already produces, never anything more:

- ``start(config, run_dir)`` once the run directory exists;
- ``log_train(event)`` / ``log_eval(event)`` with each metrics.jsonl entry (at log intervals and
  evaluations, never per step), plus ``power_w`` — the latest power sample of every metered
  device (watts, None before its first sample) — when energy is measured;
- ``finish(record, run_dir)`` with run.json once it is written — exactly once, also when the
  run ends by an exception or a second Ctrl-C (then with the record as far as it got).

Loggers run on the writing rank only (see :class:`bigbench.run_writer.RunWriter`). A logger's
package is an optional extra, checked by :func:`check_loggers` before anything is written; a
logger that fails later never costs the run: :class:`RunLoggers` catches the error, stops
feeding that logger and turns it into a warning.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bigbench.errors import ConfigError

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig
    from bigbench.measuring.energy.monitor import EnergyMonitor

__all__ = ["REQUIREMENTS", "RunLogger", "RunLoggers", "build_loggers", "check_loggers",
           "latest_power"]

#: Per logger: the pip extra that installs it and the modules it needs.
REQUIREMENTS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "tensorboard": ("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
    "mlflow": ("mlflow", ("mlflow",)),
    "csv": (None, ()),
}


class RunLogger(Protocol):
    """What every logger offers. ``warnings`` collects problems that did not stop it."""

    name: str
    warnings: list[str]

    def start(self, config: ExperimentConfig, run_dir: Path) -> None:
        """The run directory exists and training is about to start."""

    def log_train(self, event: Mapping[str, Any]) -> None:
        """A training log event (``step``, ``time_s``, ``loss``, ``lr``, ``samples_per_s``…)."""

    def log_eval(self, event: Mapping[str, Any]) -> None:
        """An evaluation (``step``, ``time_s`` and the task's metrics)."""

    def finish(self, record: Mapping[str, Any], run_dir: Path) -> None:
        """run.json is written: the run is over, whatever its status."""


def check_loggers(names: Sequence[str]) -> None:
    """Import every module the named loggers need.

    Raises:
        ConfigError: one line per logger whose extra is not installed.
    """
    problems = []
    for name in names:
        extra, modules = REQUIREMENTS[name]
        try:
            for module in modules:
                importlib.import_module(module)
        except ImportError:
            problems.append(f"output.loggers: '{name}' needs the {extra} extra: "
                            f"pip install 'bigbench[{extra}]' (in a checkout: "
                            f"pip install -e '.[{extra}]')")
    if problems:
        raise ConfigError(*problems)


def build_loggers(names: Sequence[str], *, eval_metrics: Sequence[str] = (),
                  power: Callable[[], dict[str, float | None]] | None = None,
                  power_devices: Sequence[str] = ()) -> RunLoggers:
    """The named loggers behind one :class:`RunLoggers` (their imports checked first).

    Args:
        names: ``output.loggers``.
        eval_metrics: The task's evaluation metrics (the CSV file's columns).
        power: Returns the latest power sample per device (see :func:`latest_power`).
        power_devices: The metered devices' keys, in the order ``power`` returns them.

    Raises:
        ConfigError: a logger's extra is not installed.
    """
    check_loggers(names)
    loggers: list[RunLogger] = []
    for name in names:
        if name == "tensorboard":
            from bigbench.loggers.tensorboard_logger import TensorBoardLogger

            loggers.append(TensorBoardLogger())
        elif name == "mlflow":
            from bigbench.loggers.mlflow_logger import MlflowLogger

            loggers.append(MlflowLogger())
        elif name == "csv":
            from bigbench.loggers.csv_logger import CsvLogger

            loggers.append(CsvLogger(eval_metrics, power_devices))
        else:  # the schema admits only the names above
            raise ConfigError(f"output.loggers: unknown logger '{name}'")
    return RunLoggers(loggers, power)


def latest_power(energy: EnergyMonitor) -> dict[str, float | None]:
    """The newest power sample (W) of every device ``energy`` samples; None before the first.

    Reads the last element of each trace: constant time, no lock (the sampler appends the time
    before the watts, so the shorter of the two lists is complete).
    """
    latest: dict[str, float | None] = {}
    for key, trace in energy.sampler.traces.items():
        count = min(len(trace.t_s), len(trace.power_w))
        latest[key] = trace.power_w[count - 1] if count else None
    return latest


class RunLoggers:
    """Feeds every logger each event; a logger that raises is reported once, then left alone.

    A logger that fails in ``start`` gets nothing more; one that fails on an event gets no
    further events but still its ``finish`` (so it can close its files and record the result).
    """

    def __init__(self, loggers: Sequence[RunLogger] = (),
                 power: Callable[[], dict[str, float | None]] | None = None) -> None:
        self.loggers = list(loggers)
        self.power = power
        self.warnings: list[str] = []
        self._muted: set[str] = set()  # failed on an event: finish only
        self._dead: set[str] = set()  # failed to start: nothing more

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def start(self, config: ExperimentConfig, run_dir: Path | None) -> None:
        """Start every logger (nothing on ranks that do not write: ``run_dir`` None)."""
        if run_dir is None:
            self.loggers = []
            return
        for logger in self.loggers:
            if not self._call(logger, "start", config, run_dir):
                self._dead.add(logger.name)

    def log_train(self, entry: Mapping[str, Any]) -> None:
        """A metrics.jsonl training entry, with the latest power."""
        self._event("log_train", entry)

    def log_eval(self, entry: Mapping[str, Any]) -> None:
        """A metrics.jsonl evaluation entry, with the latest power."""
        self._event("log_eval", entry)

    def finish(self, record: Mapping[str, Any], run_dir: Path | None) -> list[str]:
        """Hand run.json to every logger; returns every warning of the run's loggers."""
        if run_dir is not None:
            for logger in self.loggers:
                if logger.name not in self._dead:
                    self._call(logger, "finish", record, run_dir)
        for logger in self.loggers:
            self.warnings.extend(getattr(logger, "warnings", []))
        return self.warnings

    def _event(self, method: str, entry: Mapping[str, Any]) -> None:
        live = [lg for lg in self.loggers if lg.name not in self._dead | self._muted]
        if not live:
            return
        event = dict(entry)
        if self.power is not None:
            try:
                event["power_w"] = self.power()
            except Exception:  # power is a bonus: an event without it is still an event
                pass
        for logger in live:
            if not self._call(logger, method, event):
                self._muted.add(logger.name)

    def _call(self, logger: RunLogger, method: str, *args: Any) -> bool:
        try:
            getattr(logger, method)(*args)
        except Exception as exc:  # a tracker's bug or outage must not lose the run
            first_line = (str(exc).strip().splitlines() or [""])[0]
            after = {"start": "it logged nothing",
                     "finish": "its final record is incomplete"}.get(
                method, "it got no further events")
            self.warnings.append(f"output.loggers: '{logger.name}' failed in {method} "
                                 f"({type(exc).__name__}: {first_line}); {after} — the run's "
                                 "own files are complete")
            return False
        return True
