"""The one look of every report figure: size, fonts, colours, markers and dashes.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure`, rendered by
the Agg canvas): no pyplot, so no global figure registry to leak into and no GUI backend to
pick. Only the rc settings below are applied, inside :func:`context`, while a figure is built
and saved.

Series must stay apart in a greyscale print and for colour-blind readers, so each series style
combines a colour (Okabe–Ito palette) with a marker and a dash pattern; the three cycles have
co-prime lengths, so the first 84 series all differ in more than colour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Figure width and height, inches.
WIDTH_IN, HEIGHT_IN = 8.0, 4.5
#: Dots per inch of the PNGs (SVGs are vector, with the same inch size).
DPI = 100
#: Pixel size of a PNG of the standard size: (width, height).
PIXELS = (round(WIDTH_IN * DPI), round(HEIGHT_IN * DPI))
#: Height of one horizontal bar row, inches: a bar chart with more rows than fit grows taller
#: (its width stays WIDTH_IN) so that every label keeps a readable size.
BAR_ROW_IN = 0.24
#: Room for the title, axis label and margins of a bar chart, inches.
BAR_MARGIN_IN = 1.3

#: Okabe–Ito colours (safe for the common colour-vision deficiencies), darkest first so the
#: first series also stand apart in greyscale. Yellow is left out: invisible on white in grey.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9")
MARKERS = ("o", "s", "^", "D", "v", "P")
DASHES = ("-", "--", "-.", ":")
#: Colour of de-emphasised marks (dominated points, reference lines).
GREY = "#8c8c8c"

#: Shading of measurement windows on time axes: known windows keep one colour everywhere.
WINDOW_COLORS = {"idle": "#bdbdbd", "warmup": "#E69F00", "measured": "#56B4E9",
                 "eval": "#009E73", "compile": "#CC79A7", "checkpoint": "#D55E00"}
WINDOW_ALPHA = 0.18

#: Hatching of bars whose energy quality is not ok.
QUALITY_HATCH = {"low": "///", "invalid": "xxx"}

RC: dict[str, Any] = {
    # Names and labels come from result files: a "$" must be drawn, never parsed as maths.
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "#d9d9d9",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "errorbar.capsize": 3,
    # Reproducible SVGs: fixed element ids, so the same inputs give the same file.
    "svg.hashsalt": "bigbench-report",
}


@dataclass(frozen=True)
class SeriesStyle:
    """How one series is drawn: colour, marker and line style (dash pattern)."""

    color: str
    marker: str
    linestyle: str

    def line(self) -> dict[str, Any]:
        """Keyword arguments for ``Axes.plot`` / ``Axes.errorbar``."""
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


def series_styles(n: int) -> list[SeriesStyle]:
    """The first ``n`` series styles: colour, marker and dash cycle together."""
    return list(islice((SeriesStyle(c, m, d) for c, m, d in
                        zip(cycle(COLORS), cycle(MARKERS), cycle(DASHES), strict=False)), n))


@contextlib.contextmanager
def context() -> Iterator[None]:
    """Apply the report's rc settings while a figure is built and saved."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(height_in: float = HEIGHT_IN) -> Figure:
    """An empty figure of the report's width and DPI (constrained layout), not in pyplot.

    Call inside :func:`context` so the figure's artists pick up the style.
    """
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attach the Agg canvas explicitly: no backend lookup
    return figure


def bar_height_in(rows: int) -> float:
    """Height of a horizontal bar chart with ``rows`` bars, inches (at least HEIGHT_IN)."""
    return max(HEIGHT_IN, BAR_MARGIN_IN + BAR_ROW_IN * rows)


def save(figure: Figure, out_dir: Path, key: str) -> tuple[Path, Path]:
    """Write ``<key>.png`` and ``<key>.svg`` into ``out_dir`` and release the figure.

    Returns:
        The PNG and SVG paths.
    """
    png, svg = out_dir / f"{key}.png", out_dir / f"{key}.svg"
    try:
        figure.savefig(png, dpi=DPI, format="png", metadata={"Software": None})
        # The layout is settled by the first save: keep it rather than solve it again.
        figure.set_layout_engine("none")
        figure.savefig(svg, format="svg", metadata={"Date": None})
    finally:
        close(figure)
    return png, svg


def close(figure: Figure) -> None:
    """Drop the figure's artists now (the figure never entered pyplot, so nothing else holds
    it; clearing frees its memory without waiting for garbage collection)."""
    figure.clear()
