"""Build a benchmark's matrix and plan from a suite or a CONFIG, plus command-line flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bigbench.benchmark.matrix import CUDA_SUITES, SUITES, Matrix, Plan, expand
from bigbench.errors import ConfigError


@dataclass
class Overrides:
    """Command-line choices; None leaves the suite's or config's value."""

    models: list[str] | None = None
    batch_sizes: list[int] | None = None
    precisions: list[str] | None = None
    modes: list[str] | None = None
    seq_lens: list[int] | None = None
    gen_tokens: list[int] | None = None
    compile: bool | None = None
    channels_last: bool | None = None
    steps: int | None = None
    duration_s: float | None = None
    warmup: int | None = None
    repeats: int | None = None
    energy_min_window: bool | None = None


def matrix_from_config(config: Any) -> tuple[Matrix, Plan]:
    """The matrix around one experiment: its model (and arguments) on its data's shape."""
    import torch

    from bigbench.data import build_data

    bench = config.bench
    model_args = {k: v for k, v in config.model.model_dump().items() if k != "name"}
    info = build_data(config.data, torch.device("cpu")).info
    models = bench.models if bench and bench.models else [config.model.name]
    matrix = Matrix(
        models=models,
        batch_sizes=bench.batch_sizes if bench and bench.batch_sizes else
        [config.train.batch_size],
        precisions=list(bench.precisions) if bench and bench.precisions else
        [config.train.precision],
        modes=list(bench.modes) if bench else ["train", "infer"],
        compile=bench.compile if bench else False,
        channels_last=bench.channels_last if bench else False,
        seq_lens=bench.seq_lens if bench else None,
        gen_tokens=list(bench.gen_tokens) if bench else [32],
        model_args={config.model.name: model_args},
        data={config.model.name: info},
    )
    plan = Plan(steps=bench.steps, duration_s=bench.duration_s, warmup=bench.warmup,
                repeats=bench.repeats) if bench else Plan()
    # Benchmarking a config trains with the config's optimizer, not the stated default.
    plan.optimizer = config.train.optimizer.model_dump(mode="json")
    plan.threads = config.train.threads
    return matrix, plan


def apply_overrides(matrix: Matrix, plan: Plan, flags: Overrides) -> tuple[Matrix, Plan]:
    """Flags win over the suite or config."""
    if flags.steps is not None and flags.duration_s is not None:
        raise ConfigError("--steps and --duration both given; choose one")
    for name in ("models", "batch_sizes", "precisions", "modes", "seq_lens", "gen_tokens",
                 "compile", "channels_last"):
        value = getattr(flags, name)
        if value is not None:
            setattr(matrix, name, value)
    if flags.steps is not None:
        plan.steps, plan.duration_s = flags.steps, None
    if flags.duration_s is not None:
        plan.duration_s = flags.duration_s
    if flags.warmup is not None:
        plan.warmup = flags.warmup
    if flags.repeats is not None:
        plan.repeats = flags.repeats
    if flags.energy_min_window is not None:
        plan.energy_min_window = flags.energy_min_window
    return matrix, plan


def resolve_matrix(config: Any, suite: str | None, device_type: str,
                   flags: Overrides) -> tuple[Matrix, Plan, str]:
    """The benchmark's matrix, plan and label: the CONFIG's (when given) or the suite's
    (default ``standard``; its CUDA version on a CUDA device), with ``flags`` applied."""
    if config is not None:
        matrix, plan = matrix_from_config(config)
        label = config.name
    else:
        label = suite or "standard"
        matrix, plan = suite_matrix(label, device_type)
    matrix, plan = apply_overrides(matrix, plan, flags)
    return matrix, plan, label


def suite_matrix(name: str, device_type: str = "cpu") -> tuple[Matrix, Plan]:
    """A fresh copy of a named suite (its CUDA version on a CUDA device, where it has one)."""
    matrix, plan = (CUDA_SUITES.get(name) if device_type == "cuda" else None) or SUITES[name]
    return (Matrix(**{**matrix.__dict__, "models": list(matrix.models),
                      "batch_sizes": list(matrix.batch_sizes),
                      "data": dict(matrix.data), "model_args": dict(matrix.model_args)}),
            Plan(**{**plan.__dict__, "optimizer": dict(plan.optimizer)}))


__all__ = ["Overrides", "apply_overrides", "expand", "matrix_from_config", "resolve_matrix",
           "suite_matrix"]
