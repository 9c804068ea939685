"""Make a report: read the results, draw the figures, write report.html and report.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bigbench.errors import OutputError
from bigbench.reporting.figures import ReportFigure, draw_figures
from bigbench.reporting.html import render_html
from bigbench.reporting.inputs import ReportInputs, ResultSource, load_inputs
from bigbench.reporting.markdown import render_markdown
from bigbench.results import atomic_write_text, create_run_dir

HTML = "report.html"
MARKDOWN = "report.md"


@dataclass
class Report:
    """What was written.

    Attributes:
        out_dir: The report folder: report.html, report.md and every figure as PNG and SVG.
        html: report.html's path.
        markdown: The Markdown summary (also in report.md).
        figures: Every figure, drawn or missing with its reason.
    """

    out_dir: Path
    html: Path
    markdown: str
    figures: list[ReportFigure]


#: The suffixes of the figure files a report writes (``<key>.png`` and ``<key>.svg``).
FIGURE_SUFFIXES = (".png", ".svg")


def default_out_dir(results: Sequence[ResultSource], inputs: ReportInputs) -> Path:
    """A single run's or sweep's report lives in its folder (``<run>/report``); any other mix
    in a new ``runs/<UTC time>-report`` (created exclusively: two reports never share one)."""
    if len(results) == 1 and len(inputs.runs) == 1:
        return inputs.runs[0].path / "report"
    if len(results) == 1 and len(inputs.sweeps) == 1:
        return inputs.sweeps[0].path / "report"
    return create_run_dir(Path("runs"), "report")


def build_report(results: Sequence[ResultSource], out_dir: Path | None = None) -> Report:
    """Read ``results`` (paths, or loaded bench.json documents) and write the report into
    ``out_dir`` (see :func:`default_out_dir`).

    An existing report folder is refreshed in place: its report files and figures are
    rewritten and figures an earlier report drew that this one does not are removed; nothing
    else in it is touched.

    Raises:
        ReportError: a result that cannot be read (every one is named).
        OutputError: the folder cannot be created or written.
    """
    inputs = load_inputs(results)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: is a file; pass a folder")
    out = out_dir or default_out_dir(results, inputs)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the report folder "
                          f"({exc.strerror or exc})") from None
    try:
        figures = draw_figures(inputs, out)
        _remove_stale_figures(out, figures)
        summary = render_markdown(inputs, figures, HTML)
        atomic_write_text(out / HTML, render_html(inputs, figures))
        atomic_write_text(out / MARKDOWN, summary)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    return Report(out, out / HTML, summary, figures)


def _remove_stale_figures(out: Path, figures: list[ReportFigure]) -> None:
    """Delete the figure files an earlier report left in ``out`` that this one did not draw,
    so no PNG beside report.html contradicts it (other files are left alone)."""
    current = {path for f in figures for path in (f.png, f.svg) if path is not None}
    known = tuple(f.key for f in figures) + ("power-", "loss", "throughput", "latency",
                                              "energy", "tradeoff", "frontier")
    for path in out.iterdir():
        if (path.suffix in FIGURE_SUFFIXES and path not in current and path.is_file()
                and path.stem.startswith(known)):
            path.unlink()
