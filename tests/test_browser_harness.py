"""The headless-Chromium harness of tests/browser.py, on small handmade pages."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import browser
import pytest
from browser import distinct_colours, find_chromium, inspect_page

if find_chromium() is None:
    pytest.skip("no Chromium found (chromium, chromium-browser, google-chrome or "
                "$BIGBENCH_CHROMIUM): the browser harness tests need one",
                allow_module_level=True)

UNROUTABLE = "http://192.0.2.1/x.png"  # TEST-NET-1: never answers


def _png_figure() -> tuple[bytes, int, int]:
    """A colourful matplotlib figure as PNG bytes (Agg, without touching pyplot's backend)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(np.linspace(0, 1, 64 * 64).reshape(64, 64), cmap="viridis")
    ax.plot([0, 63], [0, 63], color="red")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue(), 300, 200


def _page(tmp_path: Path, body: str, title: str = "t") -> Path:
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
                    f"</head><body style='margin:0;background:#fff'>{body}</body></html>")
    return path


def test_embedded_image_loads_without_requests(tmp_path: Path) -> None:
    png, width, height = _png_figure()
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    page = _page(tmp_path, f"<h1>Report</h1><img alt='fig' src='{src}'>", title="My report")

    report = inspect_page(page, timeout_s=20)

    assert report.title == "My report"
    assert report.url == page.resolve().as_uri()
    assert len(report.images) == 1
    image = report.images[0]
    assert image.src == src[:40]
    assert image.complete and image.loaded
    assert (image.natural_width, image.natural_height) == (width, height)
    assert report.external_requests() == []
    assert all(u == report.url or u.startswith("data:") for u in report.requests)
    assert report.url in report.requests
    assert report.console_errors == []
    # The screenshot shows the figure: far more colours than a blank page.
    assert report.screenshot.startswith(b"\x89PNG\r\n\x1a\n")
    assert distinct_colours(report.screenshot) > 100


def test_console_error_and_exception_are_reported(tmp_path: Path) -> None:
    page = _page(tmp_path, "<script>console.error('x'); throw new Error('boom');</script>")

    report = inspect_page(page, timeout_s=20)

    assert "console.error: x" in report.console_errors
    assert any(e.startswith("exception:") and "boom" in e for e in report.console_errors)
    assert report.external_requests() == []


def test_http_image_is_reported_blocked_and_fast(tmp_path: Path) -> None:
    page = _page(tmp_path, f"<p>remote</p><img src='{UNROUTABLE}'>")

    start = time.monotonic()
    report = inspect_page(page, timeout_s=15)
    elapsed = time.monotonic() - start

    assert report.external_requests() == [UNROUTABLE]
    assert [(i.src, i.natural_width) for i in report.images] == [(UNROUTABLE, 0)]
    assert not report.images[0].loaded
    assert elapsed < 12, f"an unroutable image held the page for {elapsed:.1f} s"


def test_blank_and_busy_screenshots(tmp_path: Path) -> None:
    blank = inspect_page(_page(tmp_path, ""), width=400, height=300, timeout_s=20)
    assert distinct_colours(blank.screenshot) <= 2

    busy = _page(tmp_path, "<div style='height:900px;width:400px;"
                           "background:linear-gradient(90deg,red,blue)'></div>"
                           "<p style='color:green'>below the viewport</p>")
    report = inspect_page(busy, width=400, height=300, timeout_s=20)
    assert distinct_colours(report.screenshot) > 50

    import matplotlib.image as mpimg
    shape = mpimg.imread(io.BytesIO(report.screenshot), format="png").shape
    assert shape[1] == 400 and shape[0] > 900  # the full page, beyond the 300 px viewport


def test_timeout_kills_chromium_and_removes_its_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_mkdtemp = browser.tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(browser.tempfile, "mkdtemp", mkdtemp)
    page = _page(tmp_path, "<script>for (;;) {}</script>")  # the load event never fires

    start = time.monotonic()
    with pytest.raises(TimeoutError):
        inspect_page(page, timeout_s=3)
    assert time.monotonic() - start < 15

    (workdir,) = made
    assert not os.path.exists(workdir)
    stray = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if workdir.encode() in cmdline:
            stray.append(pid)
    assert stray == []


def test_missing_file_and_chromium_override(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError):
        inspect_page(tmp_path / "absent.html")
    found = find_chromium()
    monkeypatch.setenv("BIGBENCH_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert find_chromium() is None
    monkeypatch.setenv("BIGBENCH_CHROMIUM", found)
    assert find_chromium() == found
