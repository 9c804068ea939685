"""report.html: one self-contained page — every figure embedded, styles inline, no script.

The page works offline and makes no network request: figures are ``data:`` URLs of the PNGs
written beside it, the stylesheet is in the page. The tables reuse the terminal's views of the
same results (the run summary, the bench table and its footnotes), so every "n/a" carries the
same reason in both places.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime, timezone

from bigbench.benchmark.output import HEADERS, display_row, footnotes, headers
from bigbench.records import Environment, RunRecord
from bigbench.reporting.figures import ReportFigure
from bigbench.reporting.inputs import BenchInput, ReportInputs, RunInput, SweepInput
from bigbench.run_summary import summary_rows

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: 0.4rem; }
.meta { color: #555; font-size: 0.9rem; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9rem; color: #333; margin-top: 0.3rem; }
.missing { border: 1px dashed #999; background: #f6f6f6; padding: 0.8rem 1rem; margin: 1.2rem 0;
           font-size: 0.95rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
ul.notes { font-size: 0.85rem; color: #333; }
"""


def render_html(inputs: ReportInputs, figures: Sequence[ReportFigure]) -> str:
    """The whole page: figures first (what is read in a second), then the results and their
    provenance."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(_title(inputs))}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        f"<h1>{_e(_title(inputs))}</h1>",
        f'<p class="meta">bigbench report, {_e(_now())}. Every figure below is also a PNG and an '
        "SVG file beside this page.</p>",
        "<h2>Figures</h2>", *(_figure(f) for f in figures),
    ]
    if inputs.runs:
        parts += ["<h2>Training runs</h2>", *(_run_section(run) for run in inputs.runs)]
    if inputs.benches:
        parts += ["<h2>Benchmarks</h2>", *(_bench_section(bench) for bench in inputs.benches)]
    if inputs.sweeps:
        parts += ["<h2>Sweeps</h2>", *(_sweep_section(sweep) for sweep in inputs.sweeps)]
    parts += ["<h2>Provenance</h2>", _provenance(inputs), "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _title(inputs: ReportInputs) -> str:
    labels = [r.label for r in inputs.runs] + [b.label for b in inputs.benches] + \
        [f"sweep {s.label}" for s in inputs.sweeps]
    shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
    return f"bigbench report — {shown}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _figure(figure: ReportFigure) -> str:
    """An embedded figure, or a box saying why it could not be drawn."""
    if figure.missing is not None or figure.png is None:
        return (f'<div class="missing" id="{_e(figure.key)}"><strong>{_e(figure.title)}</strong>'
                f" — n/a: {_e(figure.missing or 'not drawn')}</div>")
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    return (f'<figure id="{_e(figure.key)}"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(figure.title)}"><figcaption><strong>{_e(figure.title)}.</strong> '
            f"{_e(figure.caption)}</figcaption></figure>")


def _table(head: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            numeric = i > 0 and cell[:1].isdigit()
            cells.append(f'<td class="num">{_e(cell)}</td>' if numeric else f"<td>{_e(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def _run_section(run: RunInput) -> str:
    """The run's summary table (as `bigbench train` prints it), or why there is none."""
    title = f"<h3>{_e(run.label)}</h3><p class=\"meta\">{_e(run.path)}</p>"
    try:
        rows = summary_rows(run.record)
    except ValueError as exc:  # a run that never reached its measured sections
        return title + f'<div class="missing">No figures: {_e(exc)}</div>'
    return title + _table(None, rows)


def _bench_section(bench: BenchInput) -> str:
    """The bench table (as `bigbench bench` prints it) with its footnotes."""
    document = bench.document
    points = document.points
    columns = headers(points)
    rows = [display_row(point, len(columns) > len(HEADERS)) for point in points]
    plan = document.plan
    meta = (f"{_e(bench.path)} — {len(points)} of {len(document.matrix)} points, status "
            f"{_e(document.status)}; {plan.repeats} repeats of "
            + (f"{plan.duration_s:g} s" if plan.duration_s else f"{plan.steps} steps")
            + f" after {plan.warmup} warm-up steps")
    notes = "".join(f"<li>{_e(note)}</li>" for note in footnotes(points))
    return (f"<h3>{_e(bench.label)}</h3><p class=\"meta\">{meta}</p>"
            + _table(columns, rows) + (f'<ul class="notes">{notes}</ul>' if notes else ""))


def _sweep_section(sweep: SweepInput) -> str:
    """The sweep table (as `bigbench sweep` prints it) with its footnotes."""
    from bigbench.sweep import output

    document = sweep.document.model_dump(mode="json", by_alias=True)
    meta = (f"{_e(sweep.path)} — {len(document['trials'])} of {len(document['planned'])} "
            f"trials, status {_e(document['status'])}; eta {document['settings']['eta']:g}")
    notes = "".join(f"<li>{_e(note)}</li>" for note in output.footnotes(document))
    return (f"<h3>{_e(sweep.label)}</h3><p class=\"meta\">{meta}</p>"
            + _table(output.headers(document), output.rows(document))
            + (f'<ul class="notes">{notes}</ul>' if notes else ""))


def _provenance(inputs: ReportInputs) -> str:
    """Where each result was measured and with what: device, versions, energy methods."""
    rows = []
    for run in inputs.runs:
        rows.append([run.label, "run", *_env_cells(run.record.env), _run_energy(run.record)])
    for bench in inputs.benches:
        methods = sorted({d.method for p in bench.document.points if p.energy
                          for d in p.energy.devices if d.method})
        qualities = sorted({p.energy.quality for p in bench.document.points
                            if p.energy and p.energy.quality})
        energy = (", ".join(methods) + f"; quality {', '.join(qualities) or 'n/a'}") if methods \
            else _bench_energy_reason(bench)
        rows.append([bench.label, "bench", *_env_cells(bench.document.env), energy])
    for sweep in inputs.sweeps:
        device = sweep.document.settings.device
        rows.append([sweep.label, "sweep", device.name, "see each trial's run.json", "", "",
                     "", "per trial (run.json of each trial)"])
    return _table(["result", "kind", "device", "host", "bigbench", "torch", "CUDA", "energy"],
                  rows)


def _env_cells(env: Environment) -> list[str]:
    commit = f" ({env.git_commit})" if env.git_commit else ""
    return [env.device.name, env.hostname, env.bigbench + commit, env.torch,
            env.cuda or "n/a (CPU-only torch)"]


def _run_energy(record: RunRecord) -> str:
    energy = record.energy
    if energy is None:
        return f"n/a (the run is {record.status})"
    if energy.total_j is None:
        return f"n/a ({energy.reason or 'not measured'})"
    methods = sorted({d.method for d in energy.devices if d.measured and d.method})
    return f"{', '.join(methods)}; quality {energy.quality}"


def _bench_energy_reason(bench: BenchInput) -> str:
    for point in bench.document.points:
        if point.energy is not None and point.energy.reason:
            return f"n/a ({point.energy.reason})"
    return "n/a (no point measured energy)"
