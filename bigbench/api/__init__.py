"""The Python API: bigbench's commands as typed library calls (see docs/python-api.md).

Owns: :func:`train`, :func:`bench`, :func:`compare`, :func:`report`, :func:`measure`,
:func:`load_run`, :func:`load_bench` and the result types they return. Each composes the same
library calls as its CLI command, returns the typed documents the command writes, and raises
:class:`~bigbench.errors.BigbenchError` subclasses instead of printing and exiting.
Must never import at module level: torch, pydantic models, rich, or anything under
``bigbench.cli`` (``import bigbench`` loads this package).
"""

from __future__ import annotations

from bigbench.api.commands import (
    bench,
    compare,
    load_bench,
    load_experiment,
    load_run,
    report,
    train,
)
from bigbench.api.energy import Measurement, MeasureResult, measure
from bigbench.api.results import BenchResult, RunResult

__all__ = ["BenchResult", "MeasureResult", "Measurement", "RunResult", "bench", "compare",
           "load_bench", "load_experiment", "load_run", "measure", "report", "train"]
