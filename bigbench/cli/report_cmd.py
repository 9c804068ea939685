"""``bigbench report``: figures and one self-contained HTML page from results."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bigbench.cli.common import err_console, out_console, user_errors


@user_errors
def report(
    results: list[Path] = typer.Argument(..., help="Run directories, bench directories or "
                                         "bench.json files, sweep directories or sweep.json "
                                         "files, in any mix.", show_default=False),
    out: Path | None = typer.Option(None, "--out", help="Report folder \\[default: "
                                    "<run>/report for one run or sweep, else runs/<UTC "
                                    "time>-report]."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the compact Markdown "
                                  "summary to stdout (for a CI job summary)."),
    open_: bool = typer.Option(False, "--open", help="Open report.html in the default browser."),
) -> None:
    """Draw the figures of runs, benchmarks and sweeps and write report.html beside them.

    report.html is one self-contained file that works offline: every figure is embedded and
    nothing is fetched. Each figure is also written as PNG and SVG, and report.md holds the
    Markdown summary. A figure that cannot be drawn says why (e.g. energy was not measured).

    Examples:

      bigbench report runs/20261129T151537Z-cnn-digits
      bigbench report runs/*-bench-smoke runs/*-cnn-digits --out report/
      bigbench report bench.json --markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from bigbench.reporting.build import build_report

    result = build_report(results, out)
    missing = [f for f in result.figures if f.missing is not None]
    drawn = len(result.figures) - len(missing)
    console = err_console()
    for figure in missing:
        console.print(f"n/a: {figure.title}: {figure.missing}", soft_wrap=True, markup=False,
                      highlight=False)
    if markdown:
        sys.stdout.write(result.markdown)
    else:
        out_console().print(f"report: {result.html} ({drawn} of {len(result.figures)} figures; "
                            f"PNG and SVG in {result.out_dir})", soft_wrap=True)
    if open_:
        import webbrowser

        webbrowser.open(result.html.resolve().as_uri())
