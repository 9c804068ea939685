"""The console summary of a finished run (the rows come from :mod:`bigbench.run_summary`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bigbench.records import RunRecord
from bigbench.run_summary import as_record, summary_rows


def print_summary(console: Any, record: RunRecord | Mapping[str, Any]) -> None:
    """Print the summary table."""
    from rich.table import Table

    run = as_record(record)
    table = Table(title=f"bigbench train — {run.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in summary_rows(run):
        table.add_row(label, value)
    console.print(table)
