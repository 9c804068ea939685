"""train, bench, compare, report, the loaders and show_config: the CLI's commands as library
calls.

Each function composes the same library calls as its command in :mod:`bigbench.cli`, but
returns typed results and raises :class:`~bigbench.errors.BigbenchError` subclasses where the
command would print and exit; arguments of the wrong type are refused first, each problem one
line naming the argument (:class:`~bigbench.api.checks.Arguments`). Heavy modules (torch,
pydantic models, matplotlib) are imported inside the functions, so ``import bigbench`` stays
cheap: the type aliases below name pydantic models as forward references.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from bigbench.api.checks import Arguments
from bigbench.api.results import BenchResult, RunResult
from bigbench.errors import ConfigError

if TYPE_CHECKING:
    from bigbench.api.comparison import Comparison
    from bigbench.config import ExperimentConfig
    from bigbench.records import BenchDocument, OptimizeDocument, RunRecord
    from bigbench.reporting.build import Report

# Real aliases, importable at run time. Union[...] because ``X | "Name"`` fails at run time:
# the pydantic models are forward references, so defining these imports nothing.

#: A file or folder path.
StrPath: TypeAlias = str | os.PathLike[str]
#: A config: a YAML file, a mapping of its keys, or a validated ExperimentConfig.
ConfigSource: TypeAlias = Union[str, os.PathLike[str], Mapping[str, Any], "ExperimentConfig"]
#: ``--set``-style overrides: ``["train.max_steps=12"]`` or ``{"train.max_steps": 12}``.
OverridesLike: TypeAlias = Sequence[str] | Mapping[str, Any] | None
#: A result: a path (run directory, bench directory or bench.json), a result the API
#: returned, or a loaded run.json / bench.json (``load_run`` / ``load_bench``).
ResultLike: TypeAlias = Union[str, os.PathLike[str], RunResult, BenchResult, "RunRecord",
                              "BenchDocument"]


def load_experiment(config: ConfigSource, overrides: OverridesLike = None) -> ExperimentConfig:
    """Validate a config from a YAML path, a dict or an :class:`ExperimentConfig`, with overrides
    (``bigbench config validate``).

    Raises:
        ConfigError: every problem at once (``.problems``), each naming its key.
    """
    from bigbench.config.loader import load_source

    args = Arguments()
    sets = args.overrides(overrides)
    args.check()
    return load_source(config, sets)


def show_config(config: ConfigSource, overrides: OverridesLike = None) -> dict[str, Any]:
    """The resolved config as a plain dict, every default spelled out (``bigbench config
    show``, which prints the same as YAML).

    Raises:
        ConfigError: every problem at once (``.problems``), each naming its key.
    """
    from bigbench.config.render import config_dict

    return config_dict(load_experiment(config, overrides))


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


def train(config_or_path: ConfigSource | None = None, overrides: OverridesLike = None,
          device: str | None = None, out: StrPath | None = None, *,
          seed: int | None = None, log_to: str | Sequence[str] | None = None,
          resume: StrPath | None = None, force: bool = False,
          progress: bool = False) -> RunResult:
    """Train a model from a config and measure what it cost (``bigbench train``).

    Args:
        config_or_path: A YAML config path, a dict of config keys, or an ExperimentConfig;
            optional with ``resume`` (the run's own config.yaml is used).
        overrides: ``--set``-style overrides, e.g. ``["train.max_steps=12"]`` or
            ``{"train.max_steps": 12}``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (overrides the config's ``device``).
        out: A new or empty run directory; None: ``output.dir/<UTC time>-<name>``.
        seed: Overrides ``train.seed``.
        log_to: Experiment trackers (``["tensorboard", "mlflow", "csv"]`` or
            ``"tensorboard,csv"``); overrides ``output.loggers``.
        resume: An interrupted run's directory: continue it from its last checkpoint, to its
            configured end, in that directory (``--resume RUN_DIR``).
        force: With ``resume``: accept a config that differs from the run's (``--force``).
        progress: Print one line per log interval to stderr.

    Returns:
        The run: its directory, the typed run.json record, status, exit code and warnings.
        A run that fails or is interrupted (Ctrl-C) after it started still returns, with
        ``status`` saying so; its files are complete.

    Raises:
        ConfigError: an argument of the wrong type, an invalid config or override (every
            problem in ``.problems``), or a resumed config that differs without ``force``.
        ResumeError: ``resume`` is not a run that can be continued (not a run directory,
            completed, or without a checkpoint).
        BigbenchError: any other user mistake (device, data, ``out``), before any file is
            written; OutputError when the disk fills up.
    """
    from bigbench.train_setup import resolve_training, shorthand_overrides

    args = Arguments()
    sets = args.overrides(overrides)
    args.device("device", device, optional=True)
    out_dir, resume_dir = args.path("out", out), args.path("resume", resume)
    args.number("seed", seed, minimum=0, whole=True)
    loggers = args.names("log_to", log_to)
    args.flag("force", force)
    args.flag("progress", progress)
    args.check()
    cfg, resume_info = resolve_training(config_or_path,
                                        shorthand_overrides(sets, device, seed, loggers),
                                        resume=resume_dir, force=force, out=out_dir)
    return _run_training(cfg, out_dir, resume_info, progress)


def _run_training(cfg: ExperimentConfig, out_dir: Path | None, resume_info: Any,
                  progress: bool) -> RunResult:
    """Train ``cfg`` (or continue ``resume_info``) and return the typed result."""
    from bigbench.interrupt import graceful_stop
    from bigbench.records import RunRecord, validate
    from bigbench.results import check_out_dir

    if out_dir is not None:
        check_out_dir(out_dir)  # fail before any expensive work, as the CLI does

    from bigbench.trainer import run_training

    with graceful_stop() as stop:
        result = run_training(cfg, out=out_dir, stop=stop, resume=resume_info,
                              callbacks=_train_progress(cfg.name) if progress else None)
    source = result.run_dir / "run.json" if result.run_dir else "run.json"
    record = validate(result.record, RunRecord, source)
    return RunResult(result.run_dir, record, result.record["status"], result.exit_code,
                     list(result.warnings), result.record)


def bench(config_or_path: ConfigSource | None = None, *, suite: str | None = None,
          device: str = "auto", models: str | Sequence[str] | None = None,
          batch_sizes: str | Sequence[int] | int | None = None,
          precisions: str | Sequence[str] | None = None,
          modes: str | Sequence[str] | None = None,
          seq_lens: str | Sequence[int] | int | None = None,
          gen_tokens: str | Sequence[int] | int | None = None, steps: int | None = None,
          duration_s: float | None = None, warmup: int | None = None,
          repeats: int | None = None, compile: bool | None = None,  # noqa: A002 - the CLI's name
          channels_last: bool | None = None, isolate: bool | None = None,
          find_max_batch: bool = False, energy_min_window: bool | None = None,
          model_from: StrPath | None = None,
          power_limits: str | Sequence[str | float] | float | None = None,
          sm_clocks: str | Sequence[int] | int | None = None,
          nproc_per_node: str | Sequence[int] | int | None = None,
          overrides: OverridesLike = None, out: StrPath | None = None,
          progress: bool = False) -> BenchResult:
    """Benchmark a matrix of models, batch sizes, precisions and modes (``bigbench bench``).

    Give a config (its model and ``bench:`` section) or a ``suite`` (``smoke``, ``standard``,
    ``lm``; default ``standard``); the keyword arguments override the matrix like the CLI's
    flags (``models=["rnn"]`` is ``--models rnn``; a comma-separated string works too). Each
    point is warmed up, then measured ``repeats`` times (median and IQR). Writes bench.json
    and bench.csv. ``model_from`` (``--from``) measures the model saved in a variant folder of
    :func:`optimize` or a training run's directory instead of fresh registry models.
    ``power_limits`` (watts, or ``"min"``, ``"default"``, ``"max"``) and ``sm_clocks`` (MHz)
    run every point at each GPU setting (``--power-limits``, ``--sm-clocks``: CUDA and root
    only), restored before this returns or raises. ``nproc_per_node`` (``--nproc-per-node``,
    e.g. ``[1, 2, 4]``; also the config's ``bench.nproc_per_node``) measures scaling instead:
    the config's training job at each world size with the same per-rank batch, reported in
    ``result.document.scaling`` (speed-up, scaling efficiency, J/sample per size).

    Returns:
        The benchmark: its directory, typed bench.json document and warnings. Failed points
        (and failed world sizes) are results (``result.failed``), not exceptions.

    Raises:
        ConfigError: invalid arguments or config (every problem in ``.problems``).
        DeviceError: the device does not exist. OutputError: ``out`` is unusable.
        PowerControlError: a GPU setting cannot be made (no privilege, out of range) or put
            back.
    """
    from bigbench.benchmark.scaling import build_scaling, requested_sizes
    from bigbench.benchmark.session import BenchArgs, build_session, check_args
    from bigbench.results import check_out_dir

    request = BenchArgs(
        device=device, suite=suite, has_config=config_or_path is not None, models=models,
        batch_sizes=batch_sizes, precisions=precisions, modes=modes, seq_lens=seq_lens,
        gen_tokens=gen_tokens, compile=compile, channels_last=channels_last, steps=steps,
        duration_s=duration_s, warmup=warmup, repeats=repeats,
        energy_min_window=energy_min_window, isolate=isolate, find_max_batch=find_max_batch,
        model_from=model_from if not isinstance(model_from, os.PathLike) else Path(model_from),
        power_limits=power_limits, sm_clocks=sm_clocks, nproc_per_node=nproc_per_node)
    args = Arguments()
    try:
        flags = check_args(request)  # the same checks as the CLI's flags
    except ConfigError as exc:
        args.problems += exc.problems
    sets = args.overrides(overrides)
    out_dir = args.path("out", out)
    args.flag("progress", progress)
    args.check()
    if out_dir is not None:
        check_out_dir(out_dir)
    cfg = load_experiment(config_or_path, sets) if config_or_path is not None else None
    if requested_sizes(cfg, flags):
        return _run_scaling(build_scaling(cfg, request, flags, out_dir), progress)
    return _run_bench(build_session(cfg, request, flags, out_dir), progress)


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


def _run_scaling(session: Any, progress: bool) -> BenchResult:
    from bigbench.benchmark.scaling import run_scaling
    from bigbench.interrupt import graceful_stop
    from bigbench.records import BenchDocument, validate

    def show(run: Any) -> None:
        entry = run.document["scaling"]["sizes"][-1]
        if progress:
            _say(f"[{len(run.document['scaling']['sizes'])}/{len(session.sizes)}] "
                 f"{entry['world_size']} ranks: {entry['status']}")

    with graceful_stop() as stop:
        run = run_scaling(session, lambda: stop.requested, show)
    document = validate(run.document, BenchDocument, run.out_dir / "bench.json")
    return BenchResult(run.out_dir, document, list(run.warnings), run.document)


def _result_source(result: object, label: str, args: Arguments) -> Any:
    """Where a result is: a path, or a loaded document (BenchDocument, RunRecord) as it is.

    A wrong kind is a problem added to ``args`` (and None returned).
    """
    if isinstance(result, RunResult):
        if result.run_dir is None:
            args.problems.append(f"{label}: this run wrote no run directory")
        return result.run_dir
    if isinstance(result, BenchResult):
        return result.out_dir
    if isinstance(result, (str, os.PathLike)):
        return Path(result)
    from bigbench.records import BenchDocument, RunRecord

    if isinstance(result, (BenchDocument, RunRecord)):
        return result
    args.problems.append(f"{label}: expected a path, a RunResult, a BenchResult, or a loaded "
                         f"RunRecord or BenchDocument, not {type(result).__name__}")
    return None


def compare(base: ResultLike, new: ResultLike,
            metrics: str | Sequence[str] = ("samples_per_s", "j_per_sample"),
            fail_above_pct: float = 5.0) -> Comparison:
    """Compare two results point by point (``bigbench compare``).

    Args:
        base: The baseline: bench.json, a bench or run directory, a result of this API, or a
            loaded RunRecord / BenchDocument.
        new: The new result, in any of the same forms.
        metrics: Metric names (see ``bigbench.comparison.METRICS``), e.g. ``["samples_per_s"]``
            or ``"samples_per_s,mfu"``.
        fail_above_pct: A metric worse by more than this percentage, beyond both sides'
            noise (median ± IQR/2), is a regression.

    Returns:
        The comparison: ``rows``, ``regressions``, ``passed``, ``only_base``, ``only_new``,
        ``env_warnings``, ``to_dict()``. A regression is a result, not an exception.

    Raises:
        CompareError: an argument of the wrong type, an unknown metric, a negative threshold,
            an unreadable input, or no point in common.
    """
    from bigbench.api.comparison import Comparison
    from bigbench.comparison import METRICS, CompareError
    from bigbench.comparison import compare as run_compare
    from bigbench.errors import did_you_mean, one_of

    args = Arguments(CompareError)
    sides = [_result_source(base, "base", args), _result_source(new, "new", args)]
    names = args.names("metrics", metrics)
    args.number("fail_above_pct", fail_above_pct, minimum=0)
    if names is not None:
        args.problems += [f"metrics: unknown metric {m!r}{did_you_mean(m, METRICS)}; choose "
                          f"from {one_of(list(METRICS))}" for m in names if m not in METRICS]
        if not names:
            args.problems.append("metrics: give at least one metric")
    args.check()
    return Comparison.of(run_compare(_side(sides[0], "base"), _side(sides[1], "new"),
                                     names or [], float(fail_above_pct)))


def _side(source: Any, label: str) -> Any:
    """A comparison side from a path (read and validated) or a loaded document."""
    from bigbench.comparison import load_side, side_of

    if isinstance(source, Path):
        return load_side(source)
    return side_of(source, f"{label} (a loaded {type(source).__name__})")


def report(results: ResultLike | Sequence[ResultLike],
           out: StrPath | None = None) -> Report:
    """Draw the figures of runs and benchmarks and write report.html (``bigbench report``).

    Args:
        results: One result or a list: run directories, bench directories, bench.json files,
            results of this API, or loaded RunRecords / BenchDocuments, in any mix.
        out: The report folder; None: ``<run>/report`` for one run, else
            ``runs/<UTC time>-report``.

    Returns:
        The :class:`bigbench.reporting.build.Report`: ``out_dir``, ``html`` (report.html's
        path), ``markdown`` (the summary) and ``figures`` (each drawn, or ``missing`` with
        why).

    Raises:
        ReportError: an argument of the wrong type, or a result that cannot be read (each is
            named). OutputError: ``out`` is unusable.
    """
    from bigbench.records import BenchDocument, RunRecord
    from bigbench.reporting.build import build_report
    from bigbench.reporting.inputs import ReportError

    args = Arguments(ReportError)
    # Decided before iterating: pydantic models iterate over their fields.
    if isinstance(results, (str, os.PathLike, RunResult, BenchResult, RunRecord,
                            BenchDocument)):
        items: list[object] = [results]
    elif isinstance(results, (list, tuple)):
        items = list(results)
    else:
        items = []
        args.problems.append(f"results: give a result or a list of them, not "
                             f"{type(results).__name__}")
    sources = [_result_source(item, "results", args) for item in items]
    out_dir = args.path("out", out)
    args.check()
    # A loaded run is reported from its directory: its metrics.jsonl and power.csv hold the
    # curves. A loaded bench.json needs nothing beside it.
    return build_report([Path(s.run_dir) if isinstance(s, RunRecord) else s for s in sources],
                        out_dir)


def load_run(path: StrPath) -> RunRecord:
    """run.json of a run directory (or the file itself), as a typed RunRecord.

    Raises:
        RecordError: an argument of the wrong type; missing, unreadable, not JSON, another
            schema, or damaged.
    """
    from bigbench.records import load_run as load

    return load(_record_path(path))


def load_bench(path: StrPath) -> BenchDocument:
    """bench.json (or a folder holding one), as a typed BenchDocument.

    Raises:
        RecordError: an argument of the wrong type; missing, unreadable, not JSON, another
            schema, or damaged.
    """
    from bigbench.records import load_bench as load

    return load(_record_path(path))


def load_optimize(path: StrPath) -> OptimizeDocument:
    """optimize.json (or a folder holding one), as a typed OptimizeDocument.

    Raises:
        RecordError: an argument of the wrong type; missing, unreadable, not JSON, another
            schema, or damaged.
    """
    from bigbench.records import load_optimize as load

    return load(_record_path(path))


def _record_path(path: StrPath) -> Path:
    """``path`` as a Path; a wrong type is a RecordError naming the argument."""
    from bigbench.records import RecordError

    args = Arguments(RecordError)
    found = args.path("path", path, optional=False)
    args.check()
    assert found is not None
    return found
