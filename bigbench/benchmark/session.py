"""Build a benchmark from a suite or a CONFIG plus the caller's choices: the one
implementation behind ``bigbench bench`` and :func:`bigbench.bench`.

:class:`BenchArgs` holds the choices as given (lists as comma-separated strings from the
command line, or sequences from Python); :func:`check_args` checks them all at once and
:func:`build_session` resolves them into the :class:`~bigbench.benchmark.run.BenchSession`
to run. Each caller only names its arguments (``--batch-sizes`` or ``batch_sizes``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bigbench.benchmark.matrix import (
    CUDA_SUITES,
    MAX_BATCH,
    MAX_SEQUENCE,
    MAX_SM_CLOCK,
    MODES,
    PRECISIONS,
    SUITES,
    Matrix,
    Plan,
    check_names,
    check_power_limits,
    check_sizes,
    expand,
)
from bigbench.benchmark.scaling import MAX_RANKS, check_scaling
from bigbench.errors import ConfigError
from bigbench.models.registry import MODELS

if TYPE_CHECKING:
    from bigbench.benchmark.run import BenchSession


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
    power_limits: list[str | float] | None = None
    sm_clocks: list[int] | None = None
    nproc_per_node: list[int] | None = None


#: A list choice as given: ``"cnn,rnn"`` (a flag) or ``["cnn", "rnn"]`` (Python).
ListArg = str | Sequence[str] | None
#: A list of sizes as given: ``"32,64"``, ``[32, 64]`` or ``32``.
SizesArg = str | Sequence[int] | int | None
#: Power limits as given: ``"200,300,max"`` or ``[200, 300, "max"]`` (watts or min/default/max).
LimitsArg = str | Sequence[str | float] | float | None


@dataclass
class BenchArgs:
    """What a benchmark was asked for, exactly as given (nothing checked yet).

    ``None`` leaves the suite's or config's value. ``has_config``: a CONFIG was given (its
    matrix is the base instead of a suite's). ``nproc_per_node``: world sizes to measure the
    CONFIG's training job at instead of the matrix (see bigbench.benchmark.scaling).
    """

    device: str = "auto"
    suite: str | None = None
    has_config: bool = False
    models: ListArg = None
    batch_sizes: SizesArg = None
    precisions: ListArg = None
    modes: ListArg = None
    seq_lens: SizesArg = None
    gen_tokens: SizesArg = None
    compile: bool | None = None
    channels_last: bool | None = None
    steps: int | None = None
    duration_s: float | None = None
    warmup: int | None = None
    repeats: int | None = None
    energy_min_window: bool | None = None
    isolate: bool | None = None
    find_max_batch: bool = False
    model_from: Path | None = None
    power_limits: LimitsArg = None
    sm_clocks: SizesArg = None
    nproc_per_node: SizesArg = None


def _namer(names: Mapping[str, str]) -> Callable[[str], str]:
    """How the caller names each argument (the field's own name unless ``names`` says)."""
    return lambda field: names.get(field, field)


def _check_number(label: str, value: object, minimum: float, problems: list[str],
                  whole: bool = True) -> None:
    """``value`` (when given) is a number of the right kind (an int when ``whole``) and at
    least ``minimum``."""
    if value is None:
        return
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        problems.append(f"{label}: {value!r} is not {'a whole number' if whole else 'a number'}")
    elif not value >= minimum:
        problems.append(f"{label}: {value!r} is below the minimum {minimum:g}")


def _check_flags(args: BenchArgs, name: Callable[[str], str], problems: list[str]) -> None:
    """The on/off choices are booleans (None: the suite's or config's choice)."""
    for field in ("compile", "channels_last", "energy_min_window", "isolate"):
        value = getattr(args, field)
        if value is not None and not isinstance(value, bool):
            problems.append(f"{name(field)}: {value!r} is not True, False or None")
    if not isinstance(args.find_max_batch, bool):
        problems.append(f"{name('find_max_batch')}: {args.find_max_batch!r} is not True or "
                        "False")


def check_args(args: BenchArgs, names: Mapping[str, str] | None = None) -> Overrides:
    """Check every choice of ``args``; the checked choices as :class:`Overrides`.

    Args:
        args: The choices as given.
        names: How the caller names each argument in messages (``{"batch_sizes":
            "--batch-sizes"}``); ``"config"`` names the CONFIG. Default: the field names.

    Raises:
        ConfigError: every problem at once (nothing has run yet).
    """
    from bigbench.config.loader import device_problems

    name = _namer(names or {})
    problems = device_problems(name("device"), args.device)
    if args.has_config and args.suite is not None:
        problems.append(f"give either {name('config')} or {name('suite')}, not both")
    if args.suite is not None and args.suite not in SUITES:
        problems.append(f"{name('suite')}: {args.suite!r} is not a suite; choose from "
                        f"{', '.join(SUITES)}")
    if args.steps is not None and args.duration_s is not None:
        problems.append(f"{name('steps')} and {name('duration_s')} both given; choose one")
    _check_model_from(args, name, problems)
    for field, minimum in (("steps", 1), ("warmup", 0), ("repeats", 1)):
        _check_number(name(field), getattr(args, field), minimum, problems)
    _check_number(name("duration_s"), args.duration_s, 0.001, problems, whole=False)
    _check_flags(args, name, problems)
    flags = Overrides(
        models=_names(name("models"), args.models, MODELS.names(), problems),
        batch_sizes=_sizes(name("batch_sizes"), args.batch_sizes, MAX_BATCH, problems),
        precisions=_names(name("precisions"), args.precisions, PRECISIONS, problems),
        modes=_names(name("modes"), args.modes, MODES, problems),
        seq_lens=_sizes(name("seq_lens"), args.seq_lens, MAX_SEQUENCE, problems),
        gen_tokens=_sizes(name("gen_tokens"), args.gen_tokens, MAX_SEQUENCE, problems),
        compile=args.compile, channels_last=args.channels_last, steps=args.steps,
        duration_s=args.duration_s, warmup=args.warmup, repeats=args.repeats,
        energy_min_window=args.energy_min_window,
        power_limits=_limits(name("power_limits"), args.power_limits, problems),
        sm_clocks=_sizes(name("sm_clocks"), args.sm_clocks, MAX_SM_CLOCK, problems),
        nproc_per_node=_sizes(name("nproc_per_node"), args.nproc_per_node, MAX_RANKS,
                              problems))
    if flags.nproc_per_node is not None:  # scaling measures one setting: refuse the rest
        check_scaling(args, flags, name("nproc_per_node"), name, problems)
    if args.device == "cpu" and (args.power_limits is not None or args.sm_clocks is not None):
        problems.append(f"{name('power_limits')} and {name('sm_clocks')} set the GPU's power "
                        "limit and clocks: they need a CUDA device, not the CPU")
    if problems:
        raise ConfigError(*problems)
    return flags


def _check_model_from(args: BenchArgs, name: Callable[[str], str], problems: list[str]) -> None:
    """``model_from`` names a folder and replaces the models a CONFIG, suite or list gives."""
    if args.model_from is None:
        return
    if not isinstance(args.model_from, (str, Path)):
        problems.append(f"{name('model_from')}: {args.model_from!r} is not a path")
        return
    if not Path(args.model_from).is_dir():
        problems.append(f"{name('model_from')} {args.model_from}: no such directory")
    for other, given in (("config", args.has_config), ("suite", args.suite is not None),
                         ("models", args.models is not None)):
        if given:
            problems.append(f"{name('model_from')} measures the model saved there; give "
                            f"either it or {name(other)}, not both")


def _names(label: str, value: ListArg, allowed: Sequence[str], problems: list[str]
           ) -> list[str] | None:
    return None if value is None else check_names(label, value, list(allowed), problems)


def _sizes(label: str, value: SizesArg, maximum: int, problems: list[str]) -> list[int] | None:
    return None if value is None else check_sizes(label, value, maximum, problems)


def _limits(label: str, value: LimitsArg, problems: list[str]) -> list[str | float] | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    return None if value is None else check_power_limits(label, value, problems)


def build_session(config: Any, args: BenchArgs, flags: Overrides, out: Path | None,
                  names: Mapping[str, str] | None = None) -> BenchSession:
    """The benchmark to run: the matrix of ``config`` (or of ``args.suite``) with ``flags``
    applied, on the device of ``args``, writing into ``out`` (or a new folder under
    ``output.dir``, else runs/).

    With power limits or SM clocks (flags or the CONFIG's ``bench:``), the GPU in use is
    opened here: the privilege to change it is proven and ``gpu_state.json`` written into the
    output folder before anything changes (see bigbench.benchmark.gpu_settings).

    Raises:
        DeviceError: the device does not exist. ConfigError: ``find_max_batch`` off CUDA,
        or power limits or clocks off CUDA. OutputError: the output folder cannot be created.
        PowerControlError: no privilege to change the GPU, or a limit or clock outside its
        range (nothing changed; no folder is left behind).
    """
    from bigbench import devices
    from bigbench.benchmark import gpu_settings
    from bigbench.benchmark.run import BenchSession, bench_environment
    from bigbench.config.schema import MeasureConfig
    from bigbench.results import create_run_dir

    name = _namer(names or {})
    torch_device = devices.resolve(args.device)
    if args.model_from is not None:
        matrix, plan, label = saved_model_matrix(Path(args.model_from), flags)
    else:
        matrix, plan, label = resolve_matrix(config, args.suite, torch_device.type, flags)
    if args.find_max_batch and torch_device.type != "cuda":
        raise ConfigError(f"{name('find_max_batch')} needs a CUDA device: on "
                          "the CPU an allocation that does not fit ends the process (the "
                          "kernel's OOM killer) instead of raising an error bigbench could "
                          "record")
    gpu_settings.check_device(matrix, torch_device, name("power_limits"))
    measure = config.measure if config else MeasureConfig()
    isolated = torch_device.type == "cuda" if args.isolate is None else args.isolate
    existed = out is not None and out.exists()
    out_dir = create_run_dir(Path(config.output.dir if config else "runs"), f"bench-{label}",
                             out)
    env = bench_environment(torch_device, measure)
    points, power = expand(matrix), None
    if gpu_settings.wanted(matrix):
        try:
            power, limits, clocks = gpu_settings.open_control(matrix, env["device"], out_dir)
        except BaseException:
            if not existed and not any(out_dir.iterdir()):
                out_dir.rmdir()  # refused before anything ran: leave no empty run behind
            raise
        points = gpu_settings.interleave(points, limits, clocks)
    return BenchSession(
        points=points, plan=plan, device=torch_device, isolated=isolated,
        find_max=args.find_max_batch, out_dir=out_dir, label=label, measure=measure, env=env,
        model_source=Path(args.model_from) if args.model_from is not None else None,
        power=power)


#: What a saved model is measured at unless flags say otherwise: latency and throughput of
#: inference (a quantized model cannot train).
SAVED_MODEL_BATCHES = [1, 64]


def saved_model_matrix(folder: Path, flags: Overrides) -> tuple[Matrix, Plan, str]:
    """The matrix around the model saved in ``folder`` (a variant folder of bigbench optimize
    or a training run): its registry name, arguments and data shape; inference at batch 1
    and 64 unless ``flags`` choose.

    Raises:
        CheckpointError: the folder holds no loadable model.
    """
    from bigbench.optimize.artifacts import load_source

    loaded = load_source(folder)
    built = loaded.built
    args = {k: v for k, v in built.args.items() if k != "name"}
    matrix = Matrix(models=[built.name], batch_sizes=list(SAVED_MODEL_BATCHES),
                    precisions=["fp32"], modes=["infer"], model_args={built.name: args},
                    data={built.name: loaded.info})
    matrix, plan = apply_overrides(matrix, Plan(), flags)
    return matrix, plan, f"from-{folder.name}"


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
        power_limits=list(bench.power_limits) if bench and bench.power_limits else None,
        sm_clocks=list(bench.sm_clocks) if bench and bench.sm_clocks else None,
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
                 "compile", "channels_last", "power_limits", "sm_clocks"):
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


__all__ = ["BenchArgs", "Overrides", "apply_overrides", "build_session", "check_args", "expand",
           "matrix_from_config", "resolve_matrix", "suite_matrix"]
