"""sweep.json as table rows: the console table, the Markdown table and the report share them.

One row per combination (the medians over its completed repeats), marked ``★ optimum``,
``front`` or ``dominated``. Units are humanised only here; sweep.json keeps SI base units. A
figure that was not measured reads "n/a" with its reason in a footnote — never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The optimum's mark in the frontier column (and the report's legend).
OPTIMUM = "★ optimum"
#: Figures of the table whose missing values get a footnote.
SHOWN = ("samples_per_s", "j_per_sample", "time_to_target_s", "energy_to_target_j",
         "avg_power_w")


def _target(document: Mapping[str, Any]) -> bool:
    return ((document.get("frontier") or {}).get("basis")) == "to_target"


def _limited(document: Mapping[str, Any]) -> bool:
    return any(c.get("power_limit") is not None for c in document.get("combinations", []))


def headers(document: Mapping[str, Any]) -> list[str]:
    """Column titles (the power limit only for a sweep that sets one; time and energy to the
    target only for a sweep with a target)."""
    head = ["combination", "batch", "precision"] + (["limit"] if _limited(document) else [])
    head += ["trials", "samples/s", "J/sample"]
    if _target(document):
        head += ["time to target", "energy to target"]
    return head + ["avg power", "cost", "frontier"]


def _median(entry: Mapping[str, Any], key: str) -> float | None:
    return (entry.get(key) or {}).get("median")


def _number(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def _limit(entry: Mapping[str, Any]) -> str:
    limit, watts = entry.get("power_limit"), entry.get("power_limit_w")
    if limit is None:
        return "n/a"
    if isinstance(limit, str):
        return f"{limit} ({watts:g} W)" if watts is not None else limit
    return f"{limit:g} W"


def _mark(entry: Mapping[str, Any]) -> str:
    if entry.get("optimal"):
        return OPTIMUM
    pareto = entry.get("pareto")
    if pareto is None:
        return "n/a"
    return "dominated" if pareto["dominated"] else "front"


def _noisy(entry: Mapping[str, Any], key: str) -> str:
    return " ~" if (entry.get(key) or {}).get("noisy") else ""


def rows(document: Mapping[str, Any]) -> list[list[str]]:
    """One row per combination, in planned order."""
    unit = ((document.get("frontier") or {}).get("optimum") or {}).get("cost_unit", "J")
    out = []
    for entry in document.get("results", []):
        row = [entry["id"], str(entry["batch_size"]), entry["precision"],
               *([_limit(entry)] if _limited(document) else []),
               f"{entry['completed']}/{len(entry['trials'])}",
               _number(_median(entry, "samples_per_s"), ",.1f")
               + _noisy(entry, "samples_per_s"),
               _number(_median(entry, "j_per_sample"), ".4g") + _noisy(entry, "j_per_sample")]
        if _target(document):
            row += [_number(_median(entry, "time_to_target_s"), ".3g", " s"),
                    _number(_median(entry, "energy_to_target_j"), ".4g", " J")]
        row += [_number(_median(entry, "avg_power_w"), ".1f", " W"),
                _number(entry.get("cost"), ".4g", f" {unit}"), _mark(entry)]
        out.append(row)
    return out


def _basis(frontier: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    if frontier.get("basis") == "to_target":
        target = document.get("target") or {}
        sign = "≥" if target.get("direction") == "max" else "≤"
        return (f"time and energy to the target ({target.get('metric')} {sign} "
                f"{target.get('goal')})")
    return "time per sample (1 / throughput) and energy per sample"


def footnotes(document: Mapping[str, Any]) -> list[str]:
    """The optimum and how it was chosen, why figures are n/a, trials that did not complete,
    and which combinations dominate which."""
    notes: list[str] = []
    frontier = document.get("frontier") or {}
    optimum = frontier.get("optimum") or {}
    if frontier:
        notes.append(f"frontier over {_basis(frontier, document)}; ~ marks a median whose "
                     "repeats spread by more than 10%")
    if optimum.get("combination"):
        source = {"gpu_max_power_limit": "the GPU's maximum power limit",
                  "largest_measured_avg_power": "no GPU maximum power limit known: the "
                  "largest average power measured"}.get(optimum.get("max_power_source") or "",
                                                        "")
        power = (f"max power {optimum['max_power_w']:.1f} W ({source})"
                 if optimum.get("max_power_w") is not None else "energy only")
        notes.append(f"{OPTIMUM} at eta {optimum['eta']:g}: {optimum['combination']} — cost "
                     f"eta·energy + (1 − eta)·max_power·time = {optimum['cost']:.4g} "
                     f"{optimum['cost_unit']}, {power}")
    elif optimum:
        notes.append(f"optimum at eta {optimum['eta']:g}: n/a ({optimum.get('reason')})")
    for trial in document.get("trials", []):
        if trial["status"] not in ("completed", "running"):
            notes.append(f"trial {trial['id']}: {trial['status']} — {trial.get('reason')}")
    for entry in document.get("results", []):
        missing: dict[str, list[str]] = {}  # reason → the figures it is the reason for
        for key, why in (entry.get("reasons") or {}).items():
            if key in SHOWN and key not in missing.setdefault(why, []):
                missing[why].append(key)
        notes += [f"{entry['id']}: {', '.join(keys)}: n/a ({why})"
                  for why, keys in missing.items() if keys]
    for entry in document.get("results", []):
        by = (entry.get("pareto") or {}).get("dominated_by")
        if by:
            notes.append(f"{entry['id']} is dominated by {', '.join(by)}")
    return notes


def markdown(document: Mapping[str, Any]) -> str:
    """The table as GitHub Markdown, with its notes."""
    from bigbench.markdown_table import markdown_table

    return markdown_table(headers(document), rows(document), footnotes(document))


def console_table(document: Mapping[str, Any], title: str) -> Any:
    """A rich Table of the combinations (the optimum bold, dominated rows dimmed)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers(document)):
        table.add_column(header, justify="left" if index in (0, 2) else "right",
                         no_wrap=index == 0)
    for entry, row in zip(document.get("results", []), rows(document), strict=True):
        dominated = (entry.get("pareto") or {}).get("dominated")
        style = "bold" if entry.get("optimal") else ("dim" if dominated else None)
        table.add_row(*row, style=style)
    return table
