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
    gpu_cmd,
    info_cmd,
    optimize_cmd,
    report_cmd,
    schema_cmd,
    sweep_cmd,
    train_cmd,
)
from bigbench.cli.help import MAX_HELP_COLUMNS, BigbenchCommand, BigbenchGroup

app = typer.Typer(
    name="bigbench",
    help="Train and benchmark neural networks and report what each run cost: throughput, "
    "latency, memory and energy.\n\n"
    "Each command explains itself: bigbench COMMAND --help.\n\n"
    "Examples:\n\n"
    "  bigbench train configs/cnn.yaml\n"
    "  bigbench report runs/<run directory>\n"
    "  bigbench config validate configs/rnn.yaml\n"
    "  bigbench models",
    cls=BigbenchGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"],
                      "max_content_width": MAX_HELP_COLUMNS},
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


# Every command gets BigbenchCommand: help paragraphs that reflow at any terminal width and
# flags without a value placeholder (bigbench.cli.help).
app.command("train", cls=BigbenchCommand)(train_cmd.train)
app.command("bench", cls=BigbenchCommand)(bench_cmd.bench)
app.command("compare", cls=BigbenchCommand)(compare_cmd.compare)
app.command("report", cls=BigbenchCommand)(report_cmd.report)
app.command("optimize", cls=BigbenchCommand)(optimize_cmd.optimize)
app.command("sweep", cls=BigbenchCommand)(sweep_cmd.sweep)
app.command("_bench-point", cls=BigbenchCommand, hidden=True)(bench_cmd.bench_point_worker)
app.command("schema", cls=BigbenchCommand)(schema_cmd.schema)
app.add_typer(config_cmd.app, name="config")
app.add_typer(energy_cmd.app, name="energy")
app.add_typer(gpu_cmd.app, name="gpu")
app.command("models", cls=BigbenchCommand)(info_cmd.models)
app.command("data", cls=BigbenchCommand)(info_cmd.data)
app.command("devices", cls=BigbenchCommand)(info_cmd.devices)


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
