"""bigbench: train and benchmark neural networks and report what each run cost.

The Python API (docs/python-api.md) mirrors the CLI::

    import bigbench

    run = bigbench.train("configs/smoke.yaml", overrides=["train.max_steps=12"])
    suite = bigbench.bench(suite="smoke", device="cpu")
    with bigbench.measure("cpu") as m:
        ...

Importing this package must stay cheap: it defines the version and the API's thin functions
only (they import what they need when called), so that ``bigbench --help`` and config
validation never pay for importing torch.
"""

from __future__ import annotations

import sys

from bigbench import api as _api
from bigbench.api import (
    BenchResult,
    Measurement,
    MeasureResult,
    RunResult,
    load_bench,
    load_experiment,
    load_run,
)
from bigbench.api._names import SubmoduleCommand, keep_commands

__version__ = "0.1.0"

# These five share their name with a submodule (bigbench/train.py, bigbench/bench/ ...): each
# is the API function when called and the submodule for attribute access; see api/_names.py.
train = SubmoduleCommand(_api.train, "bigbench.train")
bench = SubmoduleCommand(_api.bench, "bigbench.bench")
compare = SubmoduleCommand(_api.compare, "bigbench.compare")
report = SubmoduleCommand(_api.report, "bigbench.report")
measure = SubmoduleCommand(_api.measure, "bigbench.measure")
keep_commands(sys.modules[__name__])

__all__ = ["BenchResult", "MeasureResult", "Measurement", "RunResult", "__version__", "bench",
           "compare", "load_bench", "load_experiment", "load_run", "measure", "report", "train"]
