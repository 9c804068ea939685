"""``bigbench optimize``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from bigbench.cli.common import err_console, out_console, print_json, user_errors
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
    from bigbench.results import check_out_dir

    overrides = [*set_, *([f"device={device}"] if device else [])]
    cfg = load_config(config, overrides)
    if out is not None:
        check_out_dir(out)
    from bigbench.interrupt import graceful_stop
    from bigbench.optimize.run import run_optimize

    console = err_console()
    started = time.perf_counter()
    with graceful_stop() as stop, console.status("optimize: starting") as status:
        def progress(line: str) -> None:
            status.update(f"optimize: {line}")
            console.print(f"{time.perf_counter() - started:7.1f} s  {line}", highlight=False,
                          markup=False)

        run = run_optimize(cfg, from_dir=from_, out=out, should_stop=lambda: stop.requested,
                           progress=progress)
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    _print(run, json_, markdown_)
    document = run.document
    if document["status"] != "completed":
        console.print(f"{document['status']}: {document.get('reason') or 'stopped early'}; "
                      f"results kept in {run.out_dir}")
        raise typer.Exit((stop.exit_code or 130) if document["status"] == "interrupted" else 1)
    failed = [v["name"] for v in document["variants"] if v["status"] == "failed"]
    if failed:
        console.print(f"[red]failed variants:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def _print(run: object, json_: bool, markdown_: bool) -> None:
    from bigbench.optimize.output import console_table, footnotes, markdown

    document = run.document  # type: ignore[attr-defined]
    if json_:
        print_json(document)
        return
    if markdown_:
        sys.stdout.write(markdown(document))
        return
    console = out_console()
    settings = document.get("settings") or {}
    title = f"bigbench optimize — {document['name']} on {settings.get('device', '?')}"
    table = console_table(document, title)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # A file or pipe has no width to fit: give the table the width it needs, unwrapped.
        from rich.measure import Measurement

        wide = console.options.update_width(10_000)
        console.width = max(console.width, Measurement.get(console, wide, table).maximum)
    console.print(table)
    for note in footnotes(document):
        console.print(f"  {note}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"results: {run.out_dir / 'optimize.json'}",  # type: ignore[attr-defined]
                  soft_wrap=True, highlight=False, markup=False)
