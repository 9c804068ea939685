"""bigbench: train and benchmark neural networks and report what each run cost.

The Python API (docs/python-api.md) mirrors the CLI::

    import bigbench

    run = bigbench.train("configs/smoke.yaml", overrides=["train.max_steps=12"])
    again = bigbench.train(resume=run.run_dir)   # after an interruption
    suite = bigbench.bench(suite="smoke", device="cpu")
    print(bigbench.list_models(), bigbench.probe_energy())
    with bigbench.measure("cpu") as m:
        ...

Importing this package must stay cheap: it defines the version and the API's thin functions
only (they import what they need when called), so that ``bigbench --help`` and config
validation never pay for importing torch.
"""

from __future__ import annotations

from bigbench.api import (
    BenchResult,
    ConfigSource,
    Measurement,
    MeasureResult,
    OptimizeResult,
    OverridesLike,
    ResultLike,
    RunResult,
    SweepResult,
    bench,
    compare,
    list_datasets,
    list_devices,
    list_models,
    load_bench,
    load_experiment,
    load_optimize,
    load_run,
    measure,
    optimize_model,
    probe_energy,
    report,
    restore_gpu,
    show_config,
    sweep_settings,
    train,
)

__version__ = "0.1.0"

__all__ = ["__version__", "bench", "BenchResult", "compare", "ConfigSource", "list_datasets",
           "list_devices", "list_models", "load_bench", "load_experiment", "load_optimize",
           "load_run", "measure", "Measurement", "MeasureResult", "optimize_model",
           "OptimizeResult", "OverridesLike", "probe_energy", "report", "restore_gpu",
           "ResultLike", "RunResult", "show_config", "sweep_settings", "SweepResult", "train"]
