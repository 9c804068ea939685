"""bench.json, bench.csv, the Markdown table and the live console table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from bigbench.results import atomic_write_text, write_json

BENCH_SCHEMA = "bigbench.bench/1"

CSV_COLUMNS = [
    "id", "model", "mode", "precision", "batch_size", "compile", "channels_last", "status",
    "samples_per_s", "samples_per_s_iqr", "noisy", "latency_p50_s", "latency_p90_s",
    "latency_p99_s", "host_peak_rss_bytes", "device_peak_allocated_bytes", "energy_status",
    "j_per_sample", "j_per_sample_iqr", "energy_methods", "flops_per_sample",
    "achieved_flops_per_s", "mfu", "compile_s", "reason", "error",
]


def _get(point: dict[str, Any], *path: str) -> Any:
    value: Any = point
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def csv_row(point: dict[str, Any]) -> dict[str, Any]:
    """One flat CSV row (empty cells for what was not measured)."""
    settings = point["settings"]
    devices = _get(point, "energy", "devices") or []
    return {
        "id": point["id"], **{k: settings[k] for k in ("model", "mode", "precision",
                                                       "batch_size", "compile",
                                                       "channels_last")},
        "status": point["status"],
        "samples_per_s": _get(point, "samples_per_s", "median"),
        "samples_per_s_iqr": _get(point, "samples_per_s", "iqr"),
        "noisy": _get(point, "samples_per_s", "noisy"),
        "latency_p50_s": _get(point, "latency_s", "p50"),
        "latency_p90_s": _get(point, "latency_s", "p90"),
        "latency_p99_s": _get(point, "latency_s", "p99"),
        "host_peak_rss_bytes": _get(point, "memory", "host_peak_rss_bytes"),
        "device_peak_allocated_bytes": _get(point, "memory", "device_peak_allocated_bytes"),
        "energy_status": _get(point, "energy", "status"),
        "j_per_sample": _get(point, "energy", "j_per_sample", "median"),
        "j_per_sample_iqr": _get(point, "energy", "j_per_sample", "iqr"),
        "energy_methods": ";".join(sorted({d["method"] for d in devices if d.get("method")})),
        "flops_per_sample": _get(point, "flops", "per_sample"),
        "achieved_flops_per_s": _get(point, "flops", "achieved_flops_per_s"),
        "mfu": _get(point, "flops", "mfu"),
        "compile_s": _get(point, "compile", "time_s"),
        "reason": point.get("reason"),
        "error": point.get("error"),
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


def _fmt(value: Any, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    return "" if value is None else f"{value * scale:{spec}}{suffix}"


def display_row(point: dict[str, Any]) -> list[str]:
    """Cells of one point in the console and Markdown tables ("n/a": see :func:`footnotes`)."""
    rate = point.get("samples_per_s") or {}
    if point["status"] != "ok":
        why = point.get("reason") or point.get("error") or ""
        return [point["id"], point["status"], why[:60], "", "", "", ""]
    noisy = " noisy" if rate.get("noisy") else ""
    j = _get(point, "energy", "j_per_sample", "median")
    memory = _get(point, "memory", "device_peak_allocated_bytes")
    mfu = _get(point, "flops", "mfu")
    return [
        point["id"], "ok",
        f"{rate['median']:,.0f} ± {rate['iqr']:,.0f}{noisy}",
        _fmt(_get(point, "latency_s", "p50"), ".2f", 1000, " ms"),
        _fmt(memory, ".1f", 1 / 2**20, " MiB") if memory is not None else "n/a",
        _fmt(j, ".3f", 1000, " mJ") if j is not None else "n/a",
        _fmt(mfu, ".1%") if mfu is not None else "n/a",
    ]


def footnotes(points: list[dict[str, Any]]) -> list[str]:
    """Why the "n/a" cells are empty, once per distinct reason."""
    notes: dict[str, None] = {}
    for point in points:
        if point["status"] != "ok":
            continue
        if _get(point, "memory", "device_peak_allocated_bytes") is None:
            notes[f"peak mem n/a: {_get(point, 'memory', 'reason')}"] = None
        if _get(point, "energy", "j_per_sample", "median") is None:
            notes[f"energy n/a: {_get(point, 'energy', 'reason')}"] = None
        if _get(point, "flops", "mfu") is None:
            notes[f"MFU n/a: {_get(point, 'flops', 'reason')}"] = None
    return list(notes)


HEADERS = ["point", "status", "samples/s ± IQR", "step p50", "peak mem", "J/sample", "MFU"]


def markdown(document: dict[str, Any]) -> str:
    """The result as a Markdown table (for CI step summaries)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for point in document["points"]:
        cells = [c.replace("|", "\\|") for c in display_row(point)]
        lines.append("| " + " | ".join(cells) + " |")
    device = document["env"]["device"]["name"]
    lines += ["", f"{len(document['points'])} points on {device}, "
                  f"{document['plan']['repeats']} repeats each."]
    lines += [f"- {note}" for note in footnotes(document["points"])]
    return "\n".join(lines) + "\n"


def console_table(points: list[dict[str, Any]], title: str) -> Any:
    """A rich table of the points so far."""
    from rich.table import Table

    table = Table(title=title, caption="\n".join(footnotes(points)) or None,
                  caption_justify="left")
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("point", "status") else "right",
                         no_wrap=header == "point")
    for point in points:
        table.add_row(*display_row(point))
    return table
