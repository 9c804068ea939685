"""``bigbench optimize``."""

from __future__ import annotations

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
def optimize(
    config: Path = typer.Argument(..., help="Experiment config (YAML) with an optimize: "
                                  "section.", show_default=False),
    from_: Path | None = typer.Option(
        None, "--from", metavar="RUN_DIR", help="Start from this training run's weights (or an "
        "earlier optimize's variant folder) instead of training the config's model first."),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu, cuda or cuda:N (overrides the config's device).",
        autocompletion=complete_device),
    set_: list[str] = SET_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="Use this (new or empty) directory instead of "
        "output.dir/<UTC time>-<name>-optimize."),
    json_: bool = typer.Option(False, "--json", help="Print optimize.json to stdout."),
    markdown_: bool = typer.Option(False, "--markdown", help="Print a Markdown table to stdout."),
) -> None:
    """Prune, quantize and distill a model, and measure each variant beside the original.

    The base model is trained from CONFIG (into <out>/base) or taken from --from RUN_DIR. Each
    variant of the config's optimize: section is built from a copy of it and saved under
    <out>/variants/<name>/ (model.safetensors and variant.json; bigbench bench --from loads
    one). Then every variant is evaluated on the test split and measured on the same device at
    batch 1 and at the bench batch size, in rounds whose order rotates so drift favours none.
    The table marks variants that another beats on quality, latency, size and J/sample
    (Pareto-dominated). Writes optimize.json. A variant the device cannot run is skipped with
    the reason; one that fails is recorded and the others still run (exit 1).

    Examples:

      bigbench optimize configs/optimize-cnn.yaml
      bigbench optimize configs/optimize-cnn.yaml --from runs/my-cnn-run
      bigbench optimize configs/optimize-cnn.yaml --markdown > table.md
    """
    from bigbench.config import load_config
    from bigbench.errors import ConfigError
    from bigbench.results import check_out_dir

    if json_ and markdown_:
        raise ConfigError("--json and --markdown both given; choose one")
    overrides = [*set_, *([f"device={device}"] if device else [])]
    cfg = load_config(config, overrides)
    if out is not None:
        check_out_dir(out)
    from bigbench.interrupt import graceful_stop
    from bigbench.optimize.run import run_optimize

    console = err_console()
    with graceful_stop() as stop, stage_progress(console, "optimize") as progress:
        announced = []

        def should_stop() -> bool:
            if stop.requested and not announced:
                announced.append(True)
                console.print("stopping after the current step; Ctrl-C again stops at once")
            return stop.requested

        run = run_optimize(cfg, from_dir=from_, out=out, should_stop=should_stop,
                           progress=progress)
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    _print(run, json_, markdown_)
    document = run.document
    failed = [v["name"] for v in document["variants"] if v["status"] == "failed"]
    finish_document_command(console, document, run.out_dir, stop.exit_code, failed, "variants")


def _print(run: Any, json_: bool, markdown_: bool) -> None:
    from bigbench.optimize import output

    settings = run.document.get("settings") or {}
    title = f"bigbench optimize — {run.document['name']} on {settings.get('device', '?')}"
    print_document_result(run, output, title, json_, markdown_)
