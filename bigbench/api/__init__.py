"""The Python API: bigbench's commands as typed library calls (see docs/python-api.md).

Owns: :func:`train` (and resuming, ``train(resume=...)``), :func:`bench`, :func:`compare`,
:func:`optimize_model`, :func:`report`, :func:`measure`, :func:`probe_energy`, :func:`show_config`,
:func:`list_models`, :func:`list_datasets`, :func:`list_devices`, :func:`load_run`,
:func:`load_bench`, :func:`load_experiment`, the result types they return and the type aliases
of their arguments. Each composes the same library calls as its CLI command, returns the typed
documents or plain data the command writes, and raises
:class:`~bigbench.errors.BigbenchError` subclasses instead of printing and exiting.
Must never import at module level: torch, pydantic models, rich, or anything under
``bigbench.cli`` (``import bigbench`` loads this package).
"""

from __future__ import annotations

from bigbench.api.commands import (
    ConfigSource,
    OverridesLike,
    ResultLike,
    StrPath,
    bench,
    compare,
    load_bench,
    load_experiment,
    load_optimize,
    load_run,
    report,
    show_config,
    train,
)
from bigbench.api.energy import Measurement, MeasureResult, measure, probe_energy
from bigbench.api.info import list_datasets, list_devices, list_models
from bigbench.api.optimize import optimize_model, restore_gpu, sweep_settings
from bigbench.api.results import BenchResult, OptimizeResult, RunResult, SweepResult

__all__ = ["bench", "BenchResult", "compare", "ConfigSource", "list_datasets", "list_devices",
           "list_models", "load_bench", "load_experiment", "load_optimize", "load_run", "measure",
           "Measurement", "MeasureResult", "optimize_model", "OptimizeResult", "OverridesLike",
           "probe_energy", "report", "restore_gpu", "ResultLike", "RunResult", "show_config",
           "StrPath", "sweep_settings", "SweepResult", "train"]
