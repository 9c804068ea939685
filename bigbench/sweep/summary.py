"""From trials to results: each combination's medians over its repeats, then the frontier.

Only completed trials count (an interrupted or failed run measured less than planned, or
nothing). A combination's figure is the median over its completed repeats when every one of
them has it; when some lack it the figure is None with the reason, rather than a median of
the lucky repeats (a target reached in one repeat of three is not a time to target).

The frontier is computed over the combinations on one basis: to the quality target when the
runs report one (time_to_target_s, energy_to_target_j; s and J), else per sample
(s_per_sample = 1 / throughput, j_per_sample; s/sample and J/sample).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bigbench import frontier
from bigbench.measuring.stats import percentile
from bigbench.sweep.plan import Combination

#: A median whose interquartile range exceeds this fraction of it is flagged noisy.
NOISY_IQR = 0.10
#: The (time, energy) keys of each basis and their units.
BASES = {"per_sample": ("s_per_sample", "j_per_sample", "s/sample", "J/sample"),
         "to_target": ("time_to_target_s", "energy_to_target_j", "s", "J")}
#: Figures summarised per combination.
SPREAD_FIGURES = ("samples_per_s", "j_per_sample", "avg_power_w", "time_to_target_s",
                  "energy_to_target_j")


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, interquartile range (same unit) and the noisy flag of repeated figures."""
    if not values:
        return {"median": None, "iqr": None, "values": [], "noisy": None}
    median = percentile(values, 50)
    iqr = percentile(values, 75) - percentile(values, 25)
    return {"median": median, "iqr": iqr, "values": list(values),
            "noisy": bool(median and iqr > NOISY_IQR * abs(median))}


def basis(trials: Sequence[Mapping[str, Any]]) -> str:
    """``to_target`` when any trial's run reported a quality target, else ``per_sample``."""
    return "to_target" if any("time_to_target_s" in t for t in trials) else "per_sample"


def _figure(done: list[Mapping[str, Any]], key: str, total: int
            ) -> tuple[dict[str, Any] | None, str | None]:
    """The spread of ``key`` over the completed trials, or None and why."""
    if not done:
        return None, (f"no completed trial (of {total})" if total else "not run yet")
    values = [t.get(key) for t in done]
    missing = [t for t, v in zip(done, values, strict=True) if v is None]
    if missing:
        why = (missing[0].get("reasons") or {}).get(key) or "not measured"
        if len(missing) < len(done):
            why = f"n/a in {len(missing)} of {len(done)} completed repeats: {why}"
        return None, why
    return spread([float(v) for v in values]), None  # type: ignore[arg-type]


def combine(combos: Sequence[Combination], watts: Mapping[str, float | None],
            trials: Sequence[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    """One result per combination: its trials and the medians over its completed repeats.

    Args:
        combos: The planned combinations.
        watts: Combination id → the limit it set, W (None: limit left alone).
        trials: Every trial entry so far.
        kind: The basis (see :data:`BASES`).
    """
    time_key, energy_key, _, _ = BASES[kind]
    out = []
    for combo in combos:
        mine = [t for t in trials if t["combination"] == combo.id]
        done = [t for t in mine if t["status"] == "completed"]
        entry: dict[str, Any] = {
            "id": combo.id, "batch_size": combo.batch_size, "precision": combo.precision,
            "power_limit": combo.power_limit, "power_limit_w": watts.get(combo.id),
            "trials": [t["id"] for t in mine], "completed": len(done)}
        reasons: dict[str, str] = {}
        keys = [k for k in SPREAD_FIGURES
                if kind == "to_target" or k not in ("time_to_target_s", "energy_to_target_j")]
        for key in keys:
            entry[key], why = _figure(done, key, len(mine))
            if why:
                reasons[key] = why
        rate = (entry["samples_per_s"] or {}).get("median")
        entry["s_per_sample"] = 1.0 / rate if rate else None
        if rate is None:
            reasons["s_per_sample"] = reasons.get("samples_per_s", "not measured")
        entry["time_s"] = entry["s_per_sample"] if time_key == "s_per_sample" else \
            (entry[time_key] or {}).get("median")
        entry["energy_j"] = (entry[energy_key] or {}).get("median")
        for name, key in (("time_s", time_key), ("energy_j", energy_key)):
            if entry[name] is None:
                reasons[name] = reasons.get(key, "not measured")
        entry["reasons"] = reasons
        out.append(entry)
    return out


def power(trials: Sequence[Mapping[str, Any]]) -> frontier.MaxPower:
    """The maximum power of the cost, from the completed trials' records."""
    done = [t for t in trials if t["status"] == "completed"]
    return frontier.max_power((t.get("max_power_limit_w") for t in done),
                              (t.get("avg_power_w") for t in done))


def mark(results: list[dict[str, Any]], trials: Sequence[Mapping[str, Any]], kind: str,
         eta: float) -> dict[str, Any]:
    """Add each result's Pareto marks and cost; return the ``frontier`` section."""
    points = [frontier.FrontierPoint(r["id"], r["time_s"], r["energy_j"],
                                     r["reasons"].get("energy_j") or r["reasons"].get("time_s"))
              for r in results]
    found = frontier.frontier(points, eta, power(trials))
    optimum = found.optimum
    for r in results:
        by = found.dominated_by.get(r["id"])
        r["pareto"] = None if by is None else {"dominated": bool(by), "dominated_by": by}
        r["cost"] = optimum.costs.get(r["id"])
        r["optimal"] = r["id"] == optimum.key
    time_key, energy_key, time_unit, energy_unit = BASES[kind]
    return {
        "basis": kind, "time_key": time_key, "energy_key": energy_key,
        "time_unit": time_unit, "energy_unit": energy_unit,
        "front": found.front, "excluded": found.excluded, "reason": found.reason,
        "optimum": {
            "eta": eta, "combination": optimum.key, "cost": optimum.cost,
            "cost_unit": "J/sample" if kind == "per_sample" else "J",
            "max_power_w": optimum.max_power.watts,
            "max_power_source": optimum.max_power.source,
            "max_power_reason": optimum.max_power.reason,
            "reason": optimum.reason,
        },
    }


def summarise(combos: Sequence[Combination], watts: Mapping[str, float | None],
              trials: Sequence[Mapping[str, Any]], eta: float
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``results`` (per combination) and ``frontier`` sections of sweep.json."""
    kind = basis(trials)
    results = combine(combos, watts, trials, kind)
    return results, mark(results, trials, kind, eta)
