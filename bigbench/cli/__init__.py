"""The ``bigbench`` command line: one module per command group, composed into one app.

Owns: parsing options, printing tables and errors (one ``error:`` line and exit code 2 for a
user mistake), progress bars. Commands call the library (train, bench.run, compare, records)
and own no hot loop and no file format. Commands import their heavy modules (torch) inside
themselves so ``bigbench --help`` and ``bigbench config validate`` start fast.
"""

from __future__ import annotations

import typer

import bigbench
from bigbench.cli import (
    bench_cmd,
    compare_cmd,
    config_cmd,
    energy_cmd,
    info_cmd,
    report_cmd,
    schema_cmd,
    train_cmd,
)

app = typer.Typer(
    name="bigbench",
    help="Train and benchmark neural networks and report what each run cost: throughput, "
    "latency, memory and energy.\n\n"
    "Examples:\n\n"
    "  bigbench train configs/cnn.yaml\n\n"
    "  bigbench report runs/<run directory>\n\n"
    "  bigbench config validate configs/rnn.yaml\n\n"
    "  bigbench models",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bigbench {bigbench.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """bigbench: what training and running a model really costs."""


app.command("train")(train_cmd.train)
app.command("bench")(bench_cmd.bench)
app.command("compare")(compare_cmd.compare)
app.command("report")(report_cmd.report)
app.command("_bench-point", hidden=True)(bench_cmd.bench_point_worker)
app.command("schema")(schema_cmd.schema)
app.add_typer(config_cmd.app, name="config")
app.add_typer(energy_cmd.app, name="energy")
app.command("models")(info_cmd.models)
app.command("data")(info_cmd.data)
app.command("devices")(info_cmd.devices)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:
        # The reader went away (e.g. `bigbench config schema | head`): stop quietly, as
        # Unix tools do, without a traceback from flushing stdout at exit.
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
