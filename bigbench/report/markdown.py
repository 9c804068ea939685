"""The compact Markdown summary of a report (for a CI job summary): key figures per result.

Every "n/a" keeps its reason, as in the terminal and the HTML page.
"""

from __future__ import annotations

from collections.abc import Sequence

from bigbench.bench.output import markdown as bench_markdown
from bigbench.records import RunRecord
from bigbench.report.figures import ReportFigure
from bigbench.report.inputs import ReportInputs

_RUN_HEADERS = ["run", "status", "model", "device", "samples/s", "tokens/s", "test",
                "J/sample", "MFU"]


def render_markdown(inputs: ReportInputs, figures: Sequence[ReportFigure],
                    html_name: str = "report.html") -> str:
    """A runs table, each benchmark's table with its footnotes, and the figures' status."""
    lines = [f"## bigbench report ({len(inputs.runs)} runs, {len(inputs.benches)} benchmarks)",
             ""]
    if inputs.runs:
        lines += ["| " + " | ".join(_RUN_HEADERS) + " |", "|" + "---|" * len(_RUN_HEADERS)]
        notes: dict[str, None] = {}
        for run in inputs.runs:
            cells, reasons = _run_cells(run.label, run.record)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            notes.update(dict.fromkeys(reasons))
        lines += ["", *(f"- {note}" for note in notes), ""]
    for bench in inputs.benches:
        lines += [f"### {bench.label}", "", bench_markdown(bench.document).rstrip("\n"), ""]
    drawn = [f for f in figures if f.missing is None]
    lines.append(f"Figures in {html_name}: {len(drawn)} of {len(figures)} drawn.")
    lines += [f"- {f.title}: n/a ({f.missing})" for f in figures if f.missing is not None]
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

    test = na(ev, "loss")
    if ev is not None and ev.loss is not None:
        test = f"loss {ev.loss:.4f}" + (f", acc {ev.accuracy:.2%}" if ev.accuracy is not None
                                        and ev.perplexity is None else "")
        if ev.perplexity is not None:
            test += f", ppl {ev.perplexity:.3f}"
    cells = [
        label, run.status, f"{run.model.name} ({run.model.params:,})", run.env.device.name,
        f"{tp.samples_per_s:,.1f}" if tp and tp.samples_per_s else na(tp, "samples_per_s"),
        f"{tp.tokens_per_s:,.0f}" if tp and tp.tokens_per_s else "—",
        test,
        f"{energy.j_per_sample * 1e3:.3f} mJ ({energy.quality})"
        if energy and energy.j_per_sample is not None else na(energy, "j_per_sample"),
        f"{flops.mfu:.1%}" if flops and flops.mfu is not None else na(flops, "mfu"),
    ]
    return cells, reasons
