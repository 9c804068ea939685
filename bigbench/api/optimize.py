"""``bigbench optimize`` as a library call: pruned, quantized and distilled variants, measured.

Named ``optimize_model`` in the package namespace: ``bigbench.optimize`` is the package that
implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bigbench.api.checks import Arguments
from bigbench.api.results import OptimizeResult

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
    import sys

    from bigbench.api.commands import load_experiment
    from bigbench.interrupt import graceful_stop
    from bigbench.optimize.run import run_optimize
    from bigbench.records import OptimizeDocument, validate
    from bigbench.results import check_out_dir

    args = Arguments()
    sets = args.overrides(overrides)
    args.device("device", device, optional=True)
    source, out_dir = args.path("from_run", from_run), args.path("out", out)
    args.flag("progress", progress)
    args.check()
    cfg = load_experiment(config_or_path, [*sets, *([f"device={device}"] if device else [])])
    if out_dir is not None:
        check_out_dir(out_dir)

    def say(line: str) -> None:
        if progress:
            sys.stderr.write(f"optimize: {line}\n")

    with graceful_stop() as stop:
        run = run_optimize(cfg, from_dir=source, out=out_dir,
                           should_stop=lambda: stop.requested, progress=say)
    document = validate(run.document, OptimizeDocument, run.out_dir / "optimize.json")
    return OptimizeResult(run.out_dir, document, list(run.warnings), run.document)
