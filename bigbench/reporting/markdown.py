"""The compact Markdown summary of a report (for a CI job summary): key figures per result.

Every "n/a" keeps its reason, as in the terminal and the HTML page.
"""

from __future__ import annotations

from collections.abc import Sequence

from bigbench.benchmark.output import markdown as bench_markdown
from bigbench.records import RunRecord
from bigbench.reporting.figures import ReportFigure
from bigbench.reporting.inputs import ReportInputs

_RUN_HEADERS = ["run", "status", "model", "device", "samples/s", "tokens/s", "test",
                "energy", "MFU"]


def render_markdown(inputs: ReportInputs, figures: Sequence[ReportFigure],
                    html_name: str = "report.html") -> str:
    """A runs table, each benchmark's table with its footnotes, and the figures' status."""
    sweeps = f", {len(inputs.sweeps)} sweeps" if inputs.sweeps else ""
    lines = [f"## bigbench report ({len(inputs.runs)} runs, {len(inputs.benches)} benchmarks"
             f"{sweeps})", ""]
    if inputs.runs:
        lines += ["| " + " | ".join(_RUN_HEADERS) + " |", "|" + "---|" * len(_RUN_HEADERS)]
        notes: dict[str, None] = {}
        for run in inputs.runs:
            cells, reasons = _run_cells(run.label, run.record)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            notes.update(dict.fromkeys(reasons))
        lines += ["", *(f"- {_html_safe(note)}" for note in notes), ""]
    for bench in inputs.benches:
        document = bench.document
        state = "" if document.status == "completed" else \
            f" — {document.status}: {len(document.points)} of {len(document.matrix)} points"
        lines += [f"### {_html_safe(bench.label)}{state}", "",
                  _html_safe(bench_markdown(document).rstrip("\n")), ""]
    for sweep in inputs.sweeps:
        from bigbench.sweep import output

        document = sweep.document.model_dump(mode="json", by_alias=True)
        state = "" if document["status"] == "completed" else \
            f" — {document['status']}: {len(document['trials'])} of " \
            f"{len(document['planned'])} trials"
        lines += [f"### sweep {_html_safe(sweep.label)}{state}", "",
                  _html_safe(output.markdown(document).rstrip("\n")), ""]
    drawn = [f for f in figures if f.missing is None]
    lines.append(f"Figures in {html_name}: {len(drawn)} of {len(figures)} drawn.")
    lines += [f"- {_html_safe(f'{f.title}: n/a ({f.missing})')}" for f in figures
              if f.missing is not None]
    return "\n".join(lines) + "\n"


def _run_cells(label: str, run: RunRecord) -> tuple[list[str], list[str]]:
    """One run's cells, and the reasons of its "n/a" cells (footnotes, once each)."""
    tp, ev, energy, flops = run.throughput, run.eval, run.energy, run.flops
    reasons: list[str] = []

    def na(section: object, key: str) -> str:
        why = getattr(section, "reasons", {}).get(key) if section is not None else None
        why = why or getattr(section, "reason", None) or f"the run is {run.status}"
        reasons.append(f"{key} n/a ({label}): {why}")
        return "n/a"

    if ev is None or ev.loss is None:
        test = na(ev, "loss")
    else:
        test = f"loss {ev.loss:.4f}" + (f", acc {ev.accuracy:.2%}" if ev.accuracy is not None
                                        and ev.perplexity is None else "")
        if ev.perplexity is not None:
            test += f", ppl {ev.perplexity:.3f}"
    cells = [
        label, run.status, f"{run.model.name} ({run.model.params:,})", run.env.device.name,
        f"{tp.samples_per_s:,.1f}" if tp and tp.samples_per_s else na(tp, "samples_per_s"),
        f"{tp.tokens_per_s:,.0f}" if tp and tp.tokens_per_s else "—",
        test,
        _energy_cell(energy.j_per_sample, energy.j_per_token, energy.quality)
        if energy and energy.j_per_sample is not None else na(energy, "j_per_sample"),
        f"{flops.mfu:.1%}" if flops and flops.mfu is not None else na(flops, "mfu"),
    ]
    return cells, reasons


def _energy_cell(j_per_sample: float, j_per_token: float | None, quality: str | None) -> str:
    """J/sample in mJ, with J/token in µJ for sequence models, and the quality."""
    text = f"{j_per_sample * 1e3:.3f} mJ/sample"
    if j_per_token is not None:
        text += f", {j_per_token * 1e6:.2f} µJ/token"
    return f"{text} ({quality})"


def _html_safe(text: str) -> str:
    """HTML in a name or reason would render in a job summary: show it as text."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """A table cell: a "|" would end it."""
    return _html_safe(text.replace("|", "\\|"))
