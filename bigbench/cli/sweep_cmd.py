"""``bigbench sweep``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from bigbench.cli.common import (
    err_console,
    finish_document_command,
    print_document_result,
    stage_progress,
    user_errors,
)
from bigbench.cli.completion import complete_device
from bigbench.cli.config_cmd import SET_OPTION


@user_errors
def sweep(
    config: Path = typer.Argument(..., help="Experiment config (YAML) with a sweep: section.",
                                  show_default=False),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu, cuda or cuda:N (overrides the config's device).",
        autocompletion=complete_device),
    set_: list[str] = SET_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="Use this (new or empty) directory instead of "
        "output.dir/<UTC time>-<name>-sweep."),
    json_: bool = typer.Option(False, "--json", help="Print sweep.json to stdout."),
    markdown_: bool = typer.Option(False, "--markdown", help="Print a Markdown table to stdout."),
    eta: float | None = typer.Option(
        None, "--eta", metavar="X", help="Weight of energy in the optimum's cost, 0..1 (1: "
        "least energy, 0: least time); overrides sweep.eta."),
) -> None:
    """Train at every setting of a sweep: and find the best time/energy operating point.

    Each combination of the sweep: section's batch sizes × precisions × GPU power limits is a
    real training run of CONFIG, written to <out>/trials/<id>/ as an ordinary run directory,
    repeated sweep.repeats times in interleaved rounds (each round rotated, so thermal drift
    favours no setting). A power limit is set before its trials and the GPU's original
    settings restored at the end, also on an error or Ctrl-C (gpu_state.json keeps them for
    bigbench gpu restore). The table shows each combination's median throughput and J/sample
    (and time and energy to the quality target, when the config sets one), marks the Pareto
    front over (time, energy), and the optimum: the combination minimising
    eta·energy + (1 − eta)·max_power·time (Zeus, NSDI'23). Writes sweep.json after every
    trial. Ctrl-C stops the running trial and keeps the finished ones (exit 130); a failed
    trial is recorded, the others still run (exit 1).

    Examples:

      bigbench sweep configs/sweep-cnn.yaml
      bigbench sweep configs/sweep-cnn.yaml --set sweep.power_limits=[200,max]
      bigbench sweep configs/sweep-cnn.yaml --eta 1 --markdown > sweep.md
    """
    from bigbench.config import load_config
    from bigbench.results import check_out_dir

    overrides = [*set_, *([f"device={device}"] if device else [])]
    cfg = load_config(config, overrides)
    if out is not None:
        check_out_dir(out)
    from bigbench.interrupt import graceful_stop
    from bigbench.sweep.run import run_sweep

    console = err_console()
    with graceful_stop() as stop, stage_progress(console, "sweep") as progress:
        run = run_sweep(cfg, out=out, stop=stop, eta=eta, progress=progress)
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    _print(run, json_, markdown_)
    document = run.document
    console.print(f"figures: bigbench report {shlex.quote(str(run.out_dir))}", soft_wrap=True,
                  highlight=False, markup=False)
    failed = [v["id"] for v in document["trials"] if v["status"] == "failed"]
    finish_document_command(console, document, run.out_dir, stop.exit_code, failed, "trials")


def _print(run: Any, json_: bool, markdown_: bool) -> None:
    from bigbench.sweep import output

    device = (run.document.get("settings") or {}).get("device") or {}
    title = f"bigbench sweep — {run.document['name']} on {device.get('name', '?')}"
    print_document_result(run, output, title, json_, markdown_)
