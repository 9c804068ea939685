"""train, bench, compare, report and the loaders: the CLI's commands as library calls.

Each function composes the same library calls as its command in :mod:`bigbench.cli`, but
returns typed results and raises :class:`~bigbench.errors.BigbenchError` subclasses where the
command would print and exit. Heavy modules (torch, pydantic models, matplotlib) are imported
inside the functions, so ``import bigbench`` stays cheap.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bigbench.api.results import BenchResult, RunResult
from bigbench.errors import ConfigError

if TYPE_CHECKING:
    from typing import TypeAlias

    from bigbench.api.comparison import Comparison
    from bigbench.config import ExperimentConfig
    from bigbench.records import BenchDocument, RunRecord
    from bigbench.reporting.build import Report

    #: A config: a YAML file, a mapping of its keys, or a validated ExperimentConfig.
    ConfigSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | ExperimentConfig
    #: ``--set``-style overrides: ``["train.max_steps=12"]`` or ``{"train.max_steps": 12}``.
    OverridesLike: TypeAlias = Sequence[str] | Mapping[str, Any] | None
    #: Where a result is: a path (file or folder) or a result the API returned.
    ResultLike: TypeAlias = str | os.PathLike[str] | RunResult | BenchResult


def _override_list(overrides: OverridesLike) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise ConfigError(f"overrides: give a list of key.path=value strings, not the string "
                          f"{overrides!r}; e.g. [{overrides!r}]")
    if isinstance(overrides, Mapping):  # JSON is YAML: each value parses as it would on --set
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def load_experiment(config: ConfigSource, overrides: OverridesLike = None) -> ExperimentConfig:
    """Validate a config from a YAML path, a dict or an :class:`ExperimentConfig`, with overrides.

    Raises:
        ConfigError: every problem at once (``.problems``), each naming its key.
    """
    from bigbench.config import ExperimentConfig, load_config
    from bigbench.config.loader import apply_overrides, validate

    sets = _override_list(overrides)
    if isinstance(config, (str, os.PathLike)):
        return load_config(Path(config), sets)
    if isinstance(config, ExperimentConfig):
        if not sets:
            return config
        data, where = config.model_dump(mode="json"), {(): "config object"}
    elif isinstance(config, Mapping):
        data, where = dict(config), {(): "config dict"}
    else:
        raise ConfigError(f"config: expected a YAML path, a dict or an ExperimentConfig, got "
                          f"{type(config).__name__}")
    return validate(apply_overrides(data, sets, where), where)


def _optional_path(path: str | os.PathLike[str] | None) -> Path | None:
    return None if path is None else Path(path)


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _train_progress(name: str) -> Any:
    from bigbench.trainer import TrainCallbacks

    total = [0]

    def start(steps: int) -> None:
        total[0] = steps
        _say(f"train {name}: {steps} steps")

    return TrainCallbacks(
        on_start=start, on_phase=_say,
        on_log=lambda e: _say(f"step {e.step}/{total[0]}  loss {e.loss:.4f}"),
        on_eval=lambda r: _say(f"eval: {r}"))


def train(config_or_path: ConfigSource, overrides: OverridesLike = None,
          device: str | None = None, out: str | os.PathLike[str] | None = None, *,
          seed: int | None = None, progress: bool = False) -> RunResult:
    """Train a model from a config and measure what it cost (``bigbench train``).

    Args:
        config_or_path: A YAML config path, a dict of config keys, or an ExperimentConfig.
        overrides: ``--set``-style overrides, e.g. ``["train.max_steps=12"]`` or
            ``{"train.max_steps": 12}``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (overrides the config's ``device``).
        out: A new or empty run directory; None: ``output.dir/<UTC time>-<name>``.
        seed: Overrides ``train.seed``.
        progress: Print one line per log interval to stderr.

    Returns:
        The run: its directory, the typed run.json record, status, exit code and warnings.
        A run that fails or is interrupted (Ctrl-C) after it started still returns, with
        ``status`` saying so; its files are complete.

    Raises:
        ConfigError: the config or an override is invalid (every problem in ``.problems``).
        BigbenchError: any other user mistake (device, data, ``out``), before any file is
            written; OutputError when the disk fills up.
    """
    from bigbench.interrupt import graceful_stop
    from bigbench.records import RunRecord, validate
    from bigbench.results import check_out_dir

    sets = _override_list(overrides)
    if device is not None:
        sets.append(f"device={device}")
    if seed is not None:
        sets.append(f"train.seed={seed}")
    cfg = load_experiment(config_or_path, sets)
    out_dir = _optional_path(out)
    if out_dir is not None:
        check_out_dir(out_dir)  # fail before any expensive work, as the CLI does

    from bigbench.trainer import run_training

    with graceful_stop() as stop:
        result = run_training(cfg, out=out_dir, stop=stop,
                              callbacks=_train_progress(cfg.name) if progress else None)
    source = result.run_dir / "run.json" if result.run_dir else "run.json"
    record = validate(result.record, RunRecord, source)
    return RunResult(result.run_dir, record, result.record["status"], result.exit_code,
                     list(result.warnings), result.record)


def _ints(label: str, values: Sequence[int] | None, maximum: int, problems: list[str]
          ) -> list[int] | None:
    if values is None:
        return None
    items = list(values)
    if not items:
        problems.append(f"{label}: give at least one value")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= maximum:
            problems.append(f"{label}: {item!r} is not a positive integer up to {maximum}")
    return list(dict.fromkeys(items))


def _names(label: str, values: Sequence[str] | str | None, allowed: Sequence[str],
           problems: list[str]) -> list[str] | None:
    from bigbench.errors import did_you_mean, one_of

    if values is None:
        return None
    items = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    if not items:
        problems.append(f"{label}: give at least one value")
    for item in items:
        if item not in allowed:
            problems.append(f"{label}: {item!r} is not allowed{did_you_mean(item, allowed)}; "
                            f"choose from {one_of(list(allowed))}")
    return list(dict.fromkeys(items))


def _at_least(label: str, value: float | None, minimum: float, problems: list[str],
              whole: bool = True) -> None:
    """``value`` (when given) is a number of the right kind (an int when ``whole``) and at
    least ``minimum``."""
    if value is None:
        return
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "a whole number" if whole else "a number"
        problems.append(f"{label}: {value!r} is not {kind}")
    elif not value >= minimum:
        problems.append(f"{label}: {value!r} is below the minimum {minimum:g}")


def _bench_flags(has_config: bool, suite: str | None, device: str,
                 models: Sequence[str] | None, batch_sizes: Sequence[int] | None,
                 precisions: Sequence[str] | None, modes: Sequence[str] | None,
                 seq_lens: Sequence[int] | None, gen_tokens: Sequence[int] | None,
                 steps: int | None, duration_s: float | None, warmup: int | None,
                 repeats: int | None, compile: bool | None,  # noqa: A002 - the CLI's name
                 channels_last: bool | None, energy_min_window: bool | None) -> Any:
    """:func:`bench`'s keyword arguments as the CLI's flags, every problem found at once.

    Raises:
        ConfigError: every argument that is not valid (nothing has run yet).
    """
    from bigbench.benchmark.matrix import MAX_SEQUENCE, MODES, PRECISIONS, SUITES
    from bigbench.benchmark.session import Overrides
    from bigbench.config import check_device_string
    from bigbench.models.registry import MODELS

    problems: list[str] = []
    try:
        check_device_string(device)
    except ValueError as exc:
        problems.append(f"device: {exc}")
    if has_config and suite is not None:
        problems.append("give either a config or suite=, not both")
    if suite is not None and suite not in SUITES:
        problems.append(f"suite: {suite!r} is not a suite; choose from {', '.join(SUITES)}")
    if steps is not None and duration_s is not None:
        problems.append("steps and duration_s both given; choose one")
    for label, value, minimum in (("steps", steps, 1), ("warmup", warmup, 0),
                                  ("repeats", repeats, 1)):
        _at_least(label, value, minimum, problems)
    _at_least("duration_s", duration_s, 0.001, problems, whole=False)
    flags = Overrides(
        models=_names("models", models, MODELS.names(), problems),
        batch_sizes=_ints("batch_sizes", batch_sizes, 10_000_000, problems),
        precisions=_names("precisions", precisions, PRECISIONS, problems),
        modes=_names("modes", modes, MODES, problems),
        seq_lens=_ints("seq_lens", seq_lens, MAX_SEQUENCE, problems),
        gen_tokens=_ints("gen_tokens", gen_tokens, MAX_SEQUENCE, problems),
        compile=compile, channels_last=channels_last, steps=steps, duration_s=duration_s,
        warmup=warmup, repeats=repeats, energy_min_window=energy_min_window)
    if problems:
        raise ConfigError(*problems)
    return flags


def bench(config_or_path: ConfigSource | None = None, *, suite: str | None = None,
          device: str = "auto", models: Sequence[str] | None = None,
          batch_sizes: Sequence[int] | None = None, precisions: Sequence[str] | None = None,
          modes: Sequence[str] | None = None, seq_lens: Sequence[int] | None = None,
          gen_tokens: Sequence[int] | None = None, steps: int | None = None,
          duration_s: float | None = None, warmup: int | None = None,
          repeats: int | None = None, compile: bool | None = None,  # noqa: A002 - the CLI's name
          channels_last: bool | None = None, isolate: bool | None = None,
          find_max_batch: bool = False, energy_min_window: bool | None = None,
          overrides: OverridesLike = None, out: str | os.PathLike[str] | None = None,
          progress: bool = False) -> BenchResult:
    """Benchmark a matrix of models, batch sizes, precisions and modes (``bigbench bench``).

    Give a config (its model and ``bench:`` section) or a ``suite`` (``smoke``, ``standard``,
    ``lm``; default ``standard``); the keyword arguments override the matrix like the CLI's
    flags (``models=["rnn"]`` is ``--models rnn``). Each point is warmed up, then measured
    ``repeats`` times (median and IQR). Writes bench.json and bench.csv.

    Returns:
        The benchmark: its directory, typed bench.json document and warnings. Failed points
        are results (``result.failed``), not exceptions.

    Raises:
        ConfigError: invalid arguments or config (every problem in ``.problems``).
        DeviceError: the device does not exist. OutputError: ``out`` is unusable.
    """
    from bigbench import devices
    from bigbench.benchmark.matrix import expand
    from bigbench.benchmark.run import BenchSession, bench_environment
    from bigbench.benchmark.session import resolve_matrix
    from bigbench.config.schema import MeasureConfig
    from bigbench.results import check_out_dir, create_run_dir

    flags = _bench_flags(config_or_path is not None, suite, device, models, batch_sizes,
                         precisions, modes, seq_lens, gen_tokens, steps, duration_s, warmup,
                         repeats, compile, channels_last, energy_min_window)
    out_dir = _optional_path(out)
    if out_dir is not None:
        check_out_dir(out_dir)
    cfg = load_experiment(config_or_path, overrides) if config_or_path is not None else None
    torch_device = devices.resolve(device)
    matrix, plan, label = resolve_matrix(cfg, suite, torch_device.type, flags)
    if find_max_batch and torch_device.type != "cuda":
        raise ConfigError("find_max_batch needs a CUDA device: on the CPU an allocation that "
                          "does not fit ends the process instead of raising an error")
    measure = cfg.measure if cfg else MeasureConfig()
    session = BenchSession(
        points=expand(matrix), plan=plan, device=torch_device,
        isolated=torch_device.type == "cuda" if isolate is None else isolate,
        find_max=find_max_batch,
        out_dir=create_run_dir(Path(cfg.output.dir if cfg else "runs"), f"bench-{label}",
                               out_dir),
        label=label, measure=measure, env=bench_environment(torch_device, measure))
    return _run_bench(session, progress)


def _run_bench(session: Any, progress: bool) -> BenchResult:
    from bigbench.benchmark.run import run_bench
    from bigbench.interrupt import graceful_stop
    from bigbench.records import BenchDocument, validate

    def show(run: Any) -> None:
        point = run.results[-1]
        if progress:
            _say(f"[{len(run.results)}/{len(session.points)}] {point['id']}: {point['status']}")

    with graceful_stop() as stop:
        run = run_bench(session, lambda: stop.requested, show)
    document = validate(run.document, BenchDocument, run.out_dir / "bench.json")
    return BenchResult(run.out_dir, document, list(run.warnings), run.document)


def _result_path(result: ResultLike, label: str) -> Path:
    if isinstance(result, RunResult):
        if result.run_dir is None:
            raise ConfigError(f"{label}: this run wrote no run directory")
        return result.run_dir
    if isinstance(result, BenchResult):
        return result.out_dir
    if isinstance(result, (str, os.PathLike)):
        return Path(result)
    run_dir = getattr(result, "run_dir", None)  # a RunRecord from load_run knows its directory
    if type(result).__name__ == "RunRecord" and run_dir:
        return Path(run_dir)
    hint = " (a loaded bench.json does not know where it lives: pass its path)" \
        if type(result).__name__ == "BenchDocument" else ""
    raise ConfigError(f"{label}: expected a path, a RunResult, a BenchResult or a loaded "
                      f"run, got {type(result).__name__}{hint}")


def compare(base: ResultLike, new: ResultLike,
            metrics: Sequence[str] | str = ("samples_per_s", "j_per_sample"),
            fail_above_pct: float = 5.0) -> Comparison:
    """Compare two results point by point (``bigbench compare``).

    Args:
        base: The baseline: bench.json, a bench or run directory, or a result of this API.
        new: The new result, in any of the same forms.
        metrics: Metric names (see ``bigbench.comparison.METRICS``), e.g. ``["samples_per_s"]``.
        fail_above_pct: A metric worse by more than this percentage, beyond both sides'
            noise (median ± IQR/2), is a regression.

    Returns:
        The comparison: ``rows``, ``regressions``, ``passed``, ``only_base``, ``only_new``,
        ``env_warnings``, ``to_dict()``. A regression is a result, not an exception.

    Raises:
        CompareError: an unknown metric, a negative threshold, an unreadable input, or no
            point in common.
    """
    from bigbench.api.comparison import Comparison
    from bigbench.comparison import METRICS, CompareError, load_side
    from bigbench.comparison import compare as run_compare
    from bigbench.errors import did_you_mean, one_of

    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) \
        else list(metrics)
    problems = [f"metrics: unknown metric {m!r}{did_you_mean(m, METRICS)}; choose from "
                f"{one_of(list(METRICS))}" for m in names if m not in METRICS]
    if not names:
        problems.append("metrics: give at least one metric")
    if not fail_above_pct >= 0:
        problems.append(f"fail_above_pct: {fail_above_pct!r} is negative")
    if problems:
        raise CompareError(*problems)
    result = run_compare(load_side(_result_path(base, "base")),
                         load_side(_result_path(new, "new")), names, float(fail_above_pct))
    return Comparison.of(result)


def report(results: ResultLike | Sequence[ResultLike],
           out: str | os.PathLike[str] | None = None) -> Report:
    """Draw the figures of runs and benchmarks and write report.html (``bigbench report``).

    Args:
        results: One result or a list: run directories, bench directories, bench.json files
            or results of this API, in any mix.
        out: The report folder; None: ``<run>/report`` for one run, else
            ``runs/<UTC time>-report``.

    Returns:
        The :class:`bigbench.reporting.build.Report`: ``out_dir``, ``html`` (report.html's
        path), ``markdown`` (the summary) and ``figures`` (each drawn, or ``missing`` with
        why).

    Raises:
        ReportError: a result cannot be read (each is named). OutputError: ``out`` is unusable.
    """
    from bigbench.reporting.build import build_report

    single = isinstance(results, (str, os.PathLike, RunResult, BenchResult)) or \
        type(results).__name__ in ("RunRecord", "BenchDocument")  # models iterate their fields
    items = [results] if single else list(results)
    return build_report([_result_path(r, "results") for r in items], _optional_path(out))


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """run.json of a run directory (or the file itself), as a typed RunRecord.

    Raises:
        RecordError: missing, unreadable, not JSON, another schema, or damaged.
    """
    from bigbench.records import load_run as load

    return load(Path(path))


def load_bench(path: str | os.PathLike[str]) -> BenchDocument:
    """bench.json (or a folder holding one), as a typed BenchDocument.

    Raises:
        RecordError: missing, unreadable, not JSON, another schema, or damaged.
    """
    from bigbench.records import load_bench as load

    return load(Path(path))
