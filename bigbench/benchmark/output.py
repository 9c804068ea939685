"""bench.json, bench.csv, the Markdown table and the live console table.

The tables and the CSV read points through the typed :class:`~bigbench.records.BenchPoint`;
callers may pass the dicts of a bench document (they are validated — a mismatch between the
writer and the schema is a bug and keeps its traceback).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bigbench.records import BENCH_SCHEMA, BenchDocument, BenchPoint, PointEnergy
from bigbench.results import atomic_write_text, write_json

__all__ = ["BENCH_SCHEMA", "CSV_COLUMNS", "HEADERS", "TOKEN_HEADERS", "as_point",
           "console_table", "csv_row", "display_row", "footnotes", "headers",
           "j_per_sample_cell", "markdown", "quality_notes", "token_cells", "write_outputs"]

CSV_COLUMNS = [
    "id", "model", "mode", "precision", "batch_size", "compile", "channels_last", "status",
    "samples_per_s", "samples_per_s_iqr", "noisy", "latency_p50_s", "latency_p90_s",
    "latency_p99_s", "host_peak_rss_bytes", "device_peak_allocated_bytes", "energy_status",
    "j_per_sample", "j_per_sample_iqr", "j_per_sample_uncertainty", "energy_quality",
    "energy_methods", "flops_per_sample", "achieved_flops_per_s", "mfu", "compile_s",
    "seq_len", "gen_tokens", "tokens_per_s", "j_per_token", "power_limit_w",
    "power_limit_in_effect_w", "sm_clock_mhz", "reason", "error",
]
HEADERS = ["point", "status", "samples/s ± IQR", "step p50", "peak mem", "J/sample", "MFU"]
#: Added to the tables when a language-model point is among the points.
TOKEN_HEADERS = ["tokens/s", "J/token"]
#: Energy qualities marked beside a J/sample figure.
_MARKED = ("low", "invalid")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

PointLike = BenchPoint | Mapping[str, Any]


def as_point(point: PointLike) -> BenchPoint:
    """``point`` as a typed :class:`BenchPoint` (a dict is validated)."""
    return point if isinstance(point, BenchPoint) else BenchPoint.model_validate(dict(point))


def csv_row(point: PointLike) -> dict[str, Any]:
    """One flat CSV row (empty cells for what was not measured)."""
    p = as_point(point)
    s, rate, lat, mem, energy, flops = (p.settings, p.samples_per_s, p.latency_s, p.memory,
                                        p.energy, p.flops)
    j = energy.j_per_sample if energy else None
    return {
        "id": p.id, "model": s.model, "mode": s.mode, "precision": s.precision,
        "batch_size": s.batch_size, "compile": s.compile, "channels_last": s.channels_last,
        "status": p.status,
        "samples_per_s": rate.median if rate else None,
        "samples_per_s_iqr": rate.iqr if rate else None,
        "noisy": rate.noisy if rate else None,
        "latency_p50_s": lat.p50 if lat else None,
        "latency_p90_s": lat.p90 if lat else None,
        "latency_p99_s": lat.p99 if lat else None,
        "host_peak_rss_bytes": mem.host_peak_rss_bytes if mem else None,
        "device_peak_allocated_bytes": mem.device_peak_allocated_bytes if mem else None,
        "energy_status": energy.status if energy else None,
        "j_per_sample": j.median if j else None,
        "j_per_sample_iqr": j.iqr if j else None,
        "j_per_sample_uncertainty": j.uncertainty if j else None,
        "energy_quality": energy.quality if energy else None,
        "energy_methods": ";".join(sorted({d.method for d in energy.devices if d.method}))
        if energy else "",
        "flops_per_sample": flops.per_sample if flops else None,
        "achieved_flops_per_s": flops.achieved_flops_per_s if flops else None,
        "mfu": flops.mfu if flops else None,
        "compile_s": p.compile.time_s if p.compile else None,
        "seq_len": s.seq_len,
        "gen_tokens": s.gen_tokens,
        "tokens_per_s": p.tokens_per_s.median if p.tokens_per_s else None,
        "j_per_token": energy.j_per_token.median if energy and energy.j_per_token else None,
        "power_limit_w": s.power_limit_w,
        "power_limit_in_effect_w": p.gpu_settings.in_effect_w if p.gpu_settings else None,
        "sm_clock_mhz": s.sm_clock_mhz,
        "reason": p.reason,
        "error": p.error,
    }


def write_outputs(out_dir: Path, document: dict[str, Any]) -> None:
    """Write bench.json and bench.csv atomically into ``out_dir``."""
    write_json(out_dir / "bench.json", document)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for point in document["points"]:
        writer.writerow({k: "" if v is None else v for k, v in csv_row(point).items()})
    atomic_write_text(out_dir / "bench.csv", buffer.getvalue())


def _fmt(value: float | None, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    return "" if value is None else f"{value * scale:{spec}}{suffix}"


def _percent(fraction: float) -> str:
    pct = abs(fraction) * 100
    return f"{pct:.1f}%" if pct < 1 else f"{pct:.0f}%"


def j_per_sample_cell(energy: PointEnergy | None) -> str:
    """``0.512 mJ ± 3% (low)``: the median, its error bound, and a quality mark when not ok."""
    j = energy.j_per_sample if energy else None
    if energy is None or j is None or j.median is None:
        return "n/a"
    text = f"{j.median * 1000:.3f} mJ"
    if j.uncertainty is not None and j.median > 0:
        text += f" ± {_percent(j.uncertainty / j.median)}"
    if energy.quality in _MARKED:
        text += f" ({energy.quality})"
    return text


def headers(points: Sequence[PointLike]) -> list[str]:
    """Table headers: tokens/s and J/token join when a language-model point is present."""
    tokens = any(as_point(p).tokens_per_s is not None or as_point(p).settings.mode in
                 ("prefill", "decode") for p in points)
    return HEADERS + TOKEN_HEADERS if tokens else list(HEADERS)


def token_cells(point: PointLike) -> list[str]:
    """tokens/s ± IQR and J/token of a language-model point ("" for other points)."""
    p = as_point(point)
    rate = p.tokens_per_s
    if rate is None or rate.median is None:
        return ["", ""]
    j = p.energy.j_per_token if p.energy else None
    energy = "n/a" if j is None or j.median is None else f"{j.median * 1e6:,.2f} µJ"
    if energy != "n/a" and p.energy is not None and p.energy.quality in _MARKED:
        energy += f" ({p.energy.quality})"
    return [f"{rate.median:,.0f} ± {rate.iqr or 0:,.0f}", energy]


def display_row(point: PointLike, tokens: bool = False) -> list[str]:
    """Cells of one point in the console and Markdown tables ("n/a": see :func:`footnotes`).

    Args:
        tokens: Add the tokens/s and J/token cells (see :func:`headers`).
    """
    p = as_point(point)
    extra = token_cells(p) if tokens else []
    if p.status != "ok" or p.samples_per_s is None or p.samples_per_s.median is None:
        why = p.reason or p.error or ""
        return [p.id, p.status, why[:60], "", "", "", "", *(["", ""] if tokens else [])]
    rate = p.samples_per_s
    noisy = " noisy" if rate.noisy else ""
    memory = p.memory.device_peak_allocated_bytes if p.memory else None
    mfu = p.flops.mfu if p.flops else None
    return [
        p.id, "ok",
        f"{rate.median:,.0f} ± {rate.iqr or 0:,.0f}{noisy}",
        _fmt(p.latency_s.p50 if p.latency_s else None, ".2f", 1000, " ms"),
        _fmt(memory, ".1f", 1 / 2**20, " MiB") if memory is not None else "n/a",
        j_per_sample_cell(p.energy),
        _fmt(mfu, ".1%") if mfu is not None else "n/a",
        *extra,
    ]


def _why(section: Any, key: str) -> str:
    """The reason a section gives for its null ``key``."""
    if section is None:
        return "not measured"
    return section.reasons.get(key) or getattr(section, "reason", None) or "not measured"


def footnotes(points: Sequence[PointLike]) -> list[str]:
    """Why the "n/a" cells are empty and why J/sample is marked, once per distinct reason."""
    notes: dict[str, None] = {}
    typed = [as_point(p) for p in points]
    ok = [p for p in typed if p.status == "ok"]
    for p in ok:
        if p.memory is None or p.memory.device_peak_allocated_bytes is None:
            notes[f"peak mem n/a: {_why(p.memory, 'device_peak_allocated_bytes')}"] = None
        if p.energy is None or p.energy.j_per_sample.median is None:
            notes[f"energy n/a: {_why(p.energy, 'j_per_sample')}"] = None
        if p.flops is None or p.flops.mfu is None:
            notes[f"MFU n/a: {_why(p.flops, 'mfu')}"] = None
    return list(notes) + quality_notes(ok)


def quality_notes(points: Sequence[BenchPoint]) -> list[str]:
    """A note per distinct reason a J/sample is marked (low)/(invalid), and how to reach ok.

    Reasons that differ only in their numbers (each repeat's length) are shown once, with how
    many similar ones there were.
    """
    shapes: dict[str, list[str]] = {}
    marked = [p for p in points if p.energy is not None and p.energy.quality in _MARKED
              and p.energy.j_per_sample.median is not None]
    for p in marked:
        energy = p.energy
        if energy is None:  # filtered above; narrows the type
            continue
        reasons = energy.quality_reasons or sorted(
            {r for repeat in energy.repeats for r in repeat.quality_reasons})
        for reason in reasons or ["no reason recorded"]:
            texts = shapes.setdefault(f"{energy.quality}:{_NUMBER.sub('#', reason)}", [])
            if reason not in texts:
                texts.append(reason)
    notes = []
    for key, texts in shapes.items():
        similar = f" (and {len(texts) - 1} similar)" if len(texts) > 1 else ""
        notes.append(f"J/sample ({key.split(':', 1)[0]}): {texts[0]}{similar}")
    if any(p.energy is not None and p.energy.quality == "low" for p in marked):
        notes.append("J/sample (low): " + _longer_repeats_hint(marked))
    return notes


def _longer_repeats_hint(points: Sequence[BenchPoint]) -> str:
    lengths = [p.steps.min_repeat_s for p in points if p.steps and p.steps.min_repeat_s]
    if lengths:
        return (f"repeats of {max(lengths):g} s still fell short (e.g. missed power samples): "
                f"measure longer ones, e.g. --duration {2 * max(lengths):g}")
    return ("for quality ok, measure longer repeats: leave --energy-min-window on (the "
            "default lengthens each repeat to the shortest window that can reach ok) or raise "
            "--duration past the window named above")


def markdown(document: BenchDocument | Mapping[str, Any]) -> str:
    """The result as a Markdown table (for CI step summaries)."""
    doc = document if isinstance(document, BenchDocument) else \
        BenchDocument.model_validate(dict(document))
    points = doc.points
    columns = headers(points)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for point in points:
        cells = [c.replace("|", "\\|") for c in display_row(point, len(columns) > len(HEADERS))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{len(points)} points on {doc.env.device.name}, "
                  f"{doc.plan.repeats} repeats each."]
    lines += [f"- {note}" for note in footnotes(points)]
    return "\n".join(lines) + "\n"


def console_table(points: Sequence[PointLike], title: str) -> Any:
    """A rich table of the points so far."""
    from rich.markup import escape
    from rich.table import Table

    typed = [as_point(p) for p in points]
    table = Table(title=title, caption=escape("\n".join(footnotes(typed))) or None,
                  caption_justify="left")
    columns = headers(typed)
    for header in columns:
        table.add_column(header, justify="left" if header in ("point", "status") else "right",
                         no_wrap=header == "point")
    for point in typed:
        table.add_row(*(escape(cell) for cell in display_row(point, len(columns) > len(HEADERS))))
    return table
