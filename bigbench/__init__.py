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

from bigbench.api import (
    BenchResult,
    Measurement,
    MeasureResult,
    RunResult,
    bench,
    compare,
    load_bench,
    load_experiment,
    load_run,
    measure,
    report,
    train,
)

__version__ = "0.1.0"

__all__ = ["BenchResult", "MeasureResult", "Measurement", "RunResult", "__version__", "bench",
           "compare", "load_bench", "load_experiment", "load_run", "measure", "report", "train"]
