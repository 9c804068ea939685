"""``bigbench train``."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from bigbench.cli.common import err_console, out_console, print_json, user_errors
from bigbench.cli.completion import complete_device
from bigbench.cli.config_cmd import SET_OPTION


@user_errors
def train(
    config: Path | None = typer.Argument(None, help="Experiment config (YAML); optional with "
                                         "--resume.", show_default=False),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu, cuda or cuda:N (overrides the config's device).",
        autocompletion=complete_device),
    set_: list[str] = SET_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="Use this (new or empty) directory as the run directory instead of "
        "output.dir/<UTC time>-<name>."),
    seed: int | None = typer.Option(None, "--seed", help="Override train.seed."),
    log_to: str | None = typer.Option(
        None, "--log-to", metavar="LOGGERS", help="Experiment trackers, comma-separated: "
        "tensorboard, mlflow, csv (overrides output.loggers; each tracker's package is an "
        "extra, e.g. pip install 'bigbench\\[mlflow]')."),
    json_: bool = typer.Option(False, "--json", help="Print run.json to stdout instead of the "
                               "summary table."),
    resume: Path | None = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="Continue an interrupted run from its last "
        "checkpoint, to its configured end."),
    force: bool = typer.Option(False, "--force", help="With --resume: accept a config that "
                               "differs from the run's."),
) -> None:
    """Train a model from a YAML config and report what the run cost.

    Writes a run directory with config.yaml, run.json, metrics.jsonl and model.safetensors.
    Ctrl-C (or SIGTERM) stops after the current step, saves a checkpoint and writes run.json
    with status "interrupted" (exit 130 / 143); --resume RUN_DIR continues from it.

    Examples:

      bigbench train configs/cnn.yaml
      bigbench train configs/rnn.yaml --device cpu --set train.epochs=1 --json
      bigbench train --resume runs/20261129T143012Z-cnn-digits
    """
    from bigbench.results import check_out_dir
    from bigbench.train_setup import resolve_training, shorthand_overrides

    cfg, resume_info = resolve_training(config, shorthand_overrides(set_, device, seed, log_to),
                                        resume=resume, force=force, out=out)
    if out is not None:
        check_out_dir(out)  # fail before any expensive work

    from bigbench.cli.progress import TrainProgress
    from bigbench.cli.summary import print_summary
    from bigbench.interrupt import graceful_stop
    from bigbench.trainer import run_training

    console = err_console()
    with graceful_stop() as stop:
        try:
            with TrainProgress(console, f"train {cfg.name}") as progress:
                result = run_training(cfg, out=out, stop=stop, callbacks=progress.callbacks(),
                                      resume=resume_info)
        except KeyboardInterrupt:
            console.print("interrupted twice: stopped at once; files on disk are complete")
            raise typer.Exit(130) from None
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    from pydantic import ValidationError

    try:
        if json_:
            print_json(result.record)
        else:
            print_summary(out_console(), result.record)
    except ValidationError:  # already warned about above; the files are written
        console.print(f"no summary table: run.json does not match its schema; see "
                      f"{result.run_dir}/run.json")
    if result.record["status"] != "completed":
        console.print(f"run {result.record['status']}: {result.record.get('stop_detail') or ''}"
                      f" — results in {result.run_dir}")
    if result.run_dir is not None:
        console.print(f"figures: bigbench report {shlex.quote(str(result.run_dir))}",
                      soft_wrap=True, highlight=False, markup=False)
    raise typer.Exit(result.exit_code)
