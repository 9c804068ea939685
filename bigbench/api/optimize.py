"""``bigbench optimize``, ``bigbench sweep`` and ``bigbench gpu restore`` as library calls.

Named ``optimize_model`` and ``sweep_settings`` in the package namespace: ``bigbench.optimize``
and ``bigbench.sweep`` are the packages that implement them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bigbench.api.checks import Arguments
from bigbench.api.results import OptimizeResult, SweepResult

if TYPE_CHECKING:
    from bigbench.api.commands import ConfigSource, OverridesLike, StrPath


def optimize_model(config_or_path: ConfigSource, overrides: OverridesLike = None,
                   device: str | None = None, *, from_run: StrPath | None = None,
                   out: StrPath | None = None, progress: bool = False) -> OptimizeResult:
    """Build and measure the variants of a config's ``optimize:`` section (``bigbench
    optimize``).

    Args:
        config_or_path: A YAML config path, a dict of config keys, or an ExperimentConfig,
            with an ``optimize:`` section.
        overrides: ``--set``-style overrides.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (overrides the config's device).
        from_run: Start from this training run's weights or variant folder (``--from``)
            instead of training the base first.
        out: A new or empty folder; None: ``output.dir/<UTC time>-<name>-optimize``.
        progress: Print one line per stage to stderr.

    Returns:
        The run: its folder, the typed optimize.json and warnings. A variant that failed or
        was skipped is a result (its ``status`` and ``reason``), not an exception.

    Raises:
        ConfigError: an argument of the wrong type, an invalid config, or a mistake in the
            section, the students or ``from_run`` — before anything is trained.
    """
    from bigbench.interrupt import graceful_stop
    from bigbench.optimize.run import run_optimize
    from bigbench.records import OptimizeDocument, validate

    args = Arguments()
    source = args.path("from_run", from_run)
    cfg, out_dir = _config_and_out(args, config_or_path, overrides, device, out, progress)

    with graceful_stop() as stop:
        run = run_optimize(cfg, from_dir=source, out=out_dir,
                           should_stop=lambda: stop.requested,
                           progress=_say("optimize") if progress else lambda line: None)
    document = validate(run.document, OptimizeDocument, run.out_dir / "optimize.json")
    return OptimizeResult(run.out_dir, document, list(run.warnings), run.document)


def sweep_settings(config_or_path: ConfigSource, overrides: OverridesLike = None,
                   device: str | None = None, *, eta: float | None = None,
                   out: StrPath | None = None, progress: bool = False) -> SweepResult:
    """Train at every setting of a config's ``sweep:`` section and find the compute/energy
    frontier (``bigbench sweep``).

    Named ``sweep_settings`` in the package namespace: ``bigbench.sweep`` is the package that
    implements it.

    Args:
        config_or_path: A YAML config path, a dict of config keys, or an ExperimentConfig,
            with a ``sweep:`` section.
        overrides: ``--set``-style overrides.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (overrides the config's device).
        eta: Overrides ``sweep.eta`` (0 minimises time, 1 energy).
        out: A new or empty folder; None: ``output.dir/<UTC time>-<name>-sweep``.
        progress: Print one line per trial to stderr.

    Returns:
        The sweep: its folder, the typed sweep.json and warnings; failed trials are results.

    Raises:
        ConfigError: an argument of the wrong type, an invalid config or sweep section.
        PowerControlError: the GPU refuses the power limits (no privilege, out of range),
            before any trial.
    """
    from bigbench.interrupt import graceful_stop
    from bigbench.records import SweepDocument, validate
    from bigbench.sweep.run import run_sweep

    args = Arguments()
    args.number("eta", eta, minimum=0.0)
    cfg, out_dir = _config_and_out(args, config_or_path, overrides, device, out, progress)
    with graceful_stop() as stop:
        run = run_sweep(cfg, out=out_dir, stop=stop, eta=eta,
                        progress=_say("sweep") if progress else lambda line: None)
    document = validate(run.document, SweepDocument, run.out_dir / run.file_name)
    return SweepResult(run.out_dir, document, list(run.warnings), run.document)


def restore_gpu(path: StrPath) -> dict[str, Any]:
    """Put back the GPU settings a bench or sweep recorded in gpu_state.json, after a hard
    kill left them changed (``bigbench gpu restore``).

    Args:
        path: The run's folder or its gpu_state.json.

    Returns:
        What was done (the GPU, the limit set back, whether clocks were unlocked).

    Raises:
        PowerControlError: no state file, an unreadable one, or no privilege to set limits.
    """
    from bigbench.measuring.energy.power_limits import restore_from_file

    args = Arguments()
    found = args.path("path", path, optional=False)
    args.check()
    assert found is not None
    return restore_from_file(found)


def _config_and_out(args: Arguments, config_or_path: ConfigSource, overrides: OverridesLike,
                    device: str | None, out: StrPath | None, progress: bool) -> tuple[Any, Any]:
    """Check the arguments every command shares (with the ones already in ``args``), then
    load the config with its overrides and check the output folder, before any work."""
    from bigbench.api.commands import load_experiment
    from bigbench.results import check_out_dir

    sets = args.overrides(overrides)
    args.device("device", device, optional=True)
    out_dir = args.path("out", out)
    args.flag("progress", progress)
    args.check()
    cfg = load_experiment(config_or_path, [*sets, *([f"device={device}"] if device else [])])
    if out_dir is not None:
        check_out_dir(out_dir)
    return cfg, out_dir


def _say(command: str) -> Any:
    import sys

    def say(line: str) -> None:
        sys.stderr.write(f"{command}: {line}\n")

    return say
