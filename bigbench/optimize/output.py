"""optimize.json as table rows: the console table and the Markdown table share them.

Units are humanised only here; the document keeps SI base units. A figure that was not measured
reads "n/a" with its reason in a footnote — never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEADERS = ["variant", "{metric} (Δ)", "params (non-zero)", "size", "p50/p99 @1",
           "samples/s @{batch}", "J/sample @{batch}", "FLOPs/sample", "Pareto"]


def _size(value: int | None) -> str:
    if value is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def _count(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def _latency(times: Mapping[str, float | None]) -> str:
    p50, p99 = times.get("p50"), times.get("p99")
    if p50 is None or p99 is None:
        return "n/a"
    return f"{p50 * 1e3:.3g} / {p99 * 1e3:.3g} ms"


def _metric(entry: Mapping[str, Any], metric: str) -> str:
    value = (entry.get("eval") or {}).get(metric)
    if value is None:
        return "n/a"
    text = f"{value * 100:.2f}%" if metric == "accuracy" else f"{value:.4f}"
    delta = (entry.get("delta") or {}).get(metric)
    if delta is None or entry["name"] == "base":
        return text
    shown = f"{delta * 100:+.2f} pt" if metric == "accuracy" else f"{delta:+.4f}"
    if float(shown.split()[0]) == 0:  # no "-0.00": a rounded zero has no sign
        shown = shown.replace("-", "+", 1)
    return f"{text} ({shown})"


def _pareto(entry: Mapping[str, Any]) -> str:
    mark = entry.get("pareto")
    if mark is None:
        return "n/a"
    return "dominated" if mark["dominated"] else "front"


def headers(document: Mapping[str, Any]) -> list[str]:
    """Column titles, with the metric and the bench batch size filled in."""
    settings = document.get("settings") or {}
    batch = (settings.get("batch_sizes") or ["B"])[-1]
    metric = settings.get("metric", "accuracy")
    return [h.format(metric=metric, batch=batch) for h in HEADERS]


def rows(document: Mapping[str, Any]) -> list[list[str]]:
    """One row per variant; a variant that did not run shows its status in every figure."""
    settings = document.get("settings") or {}
    metric = settings.get("metric", "accuracy")
    bench = f"batch_{(settings.get('batch_sizes') or [0])[-1]}"
    out = []
    for entry in document.get("variants", []):
        name = entry["name"] + (" †" if entry.get("runtime", "eager") != "eager" else "")
        if entry["status"] != "ok":
            out.append([name, entry["status"], *["—"] * (len(HEADERS) - 2)])
            continue
        speed = entry.get("speed") or {}
        one, big = speed.get("batch_1") or {}, speed.get(bench) or {}
        nonzero = entry.get("nonzero_params")
        params = _count(entry.get("params"))
        if nonzero is not None and nonzero != entry.get("params"):
            params += f" ({_count(nonzero)})"
        rate = (big.get("samples_per_s") or {}).get("median")
        joules = (big.get("j_per_sample") or {}).get("median")
        out.append([
            name, _metric(entry, metric), params, _size(entry.get("weights_bytes")),
            _latency(one.get("latency_s") or {}),
            "n/a" if rate is None else f"{rate:,.0f}",
            "n/a" if joules is None else f"{joules:.3g}",
            _count(big.get("flops_per_sample")), _pareto(entry)])
    return out


def footnotes(document: Mapping[str, Any]) -> list[str]:
    """Why figures are missing, what was skipped, and how compiled variants ran."""
    notes = []
    for entry in document.get("variants", []):
        if entry["status"] != "ok":
            notes.append(f"{entry['name']}: {entry['status']} — {entry.get('reason')}")
        if entry.get("runtime", "eager") != "eager":
            notes.append(f"† {entry['name']}: measured under {entry['runtime']} (its int8 "
                         "kernels exist only in the compiled graph)")
        training = entry.get("train") or {}
        if training.get("steps") and entry["kind"] == "prune":
            notes.append(f"{entry['name']}: fine-tuned {training['steps']} steps after pruning "
                         "(steps the base did not train)")
        layers = entry.get("float_layers") or {}
        if layers:
            notes.append(f"{entry['name']}: left in float: " + "; ".join(
                f"{name} ({why})" for name, why in layers.items()))
    missing = set()
    for entry in document.get("variants", []):
        for figures in (entry.get("speed") or {}).values():
            for key, why in (figures.get("reasons") or {}).items():
                missing.add(f"{key}: n/a ({why})")
    notes += sorted(missing)
    for entry in document.get("variants", []):
        by = (entry.get("pareto") or {}).get("dominated_by")
        if by:
            notes.append(f"{entry['name']} is dominated by {', '.join(by)}")
    unused = (document.get("pareto") or {}).get("not_used") or {}
    if unused:
        notes.append("Pareto marks leave out " + ", ".join(
            f"{key} ({why})" for key, why in unused.items()))
    return notes


def markdown(document: Mapping[str, Any]) -> str:
    """The table as GitHub Markdown, with its notes."""
    from bigbench.markdown_table import markdown_table

    return markdown_table(headers(document), rows(document), footnotes(document))


def console_table(document: Mapping[str, Any], title: str) -> Any:
    """A rich Table of the variants (dominated rows dimmed)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers(document)):
        table.add_column(header, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for entry, row in zip(document.get("variants", []), rows(document), strict=True):
        dominated = (entry.get("pareto") or {}).get("dominated")
        table.add_row(*row, style="dim" if dominated or entry["status"] != "ok" else None)
    return table
