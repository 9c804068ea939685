"""Combining what every rank measured into run.json's ``distributed`` section, on rank 0.

Pure Python on plain data (no torch, no process group): each rank sends a :class:`RankSummary`
(picklable, JSON-able) to rank 0, and :func:`combine` turns the list into the section.

Rules (../MEASUREMENT.md, "Several processes"):

- energy is keyed by (host, meter key) and every device counts exactly once, even when several
  ranks report it (two ranks sharing a GPU; CPU packages reported by more than one rank);
- joules are summed in float64 with :func:`math.fsum`, never averaged; error bounds are added
  (the conservative bound of a sum);
- throughput is all ranks' measured samples over the slowest rank's measured window;
- a figure that cannot be given is null with its reason, never 0.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from bigbench.measuring.energy.report import derived_energy_figures, worst_quality
from bigbench.measuring.stats import summarize_durations
from bigbench.rank import Rank


@dataclass(frozen=True)
class RankSummary:
    """What one rank measured, gathered to rank 0 (plain data: picklable, JSON-able).

    Attributes:
        rank: Global rank.
        local_rank: Rank on its host.
        host: Host name the rank ran on (the first half of every energy key).
        device: The torch device it trained on, e.g. "cuda:1" or "cpu".
        samples: Samples it processed in its measured window.
        steps: Steps in its measured window.
        time_s: Duration of its measured window, s.
        step_time_s: p50/p90/p99/mean/min/max of its measured steps, s
            (:func:`bigbench.measuring.stats.summarize_durations`).
        durations_s: Its measured step durations, s (pooled for the overall percentiles).
        peak_memory_bytes: Peak memory of its device (or process), bytes; None: not measured.
        energy_devices: Its per-device energy entries over its measured window, in the shape of
            run.json's ``energy.devices`` (``key``, ``kind``, ``name``, ``energy_j`` in J,
            ``uncertainty_j`` in J, ``method``, ``measured``, ``quality``, ``reason`` …).
        reasons: Why a null figure of this rank is null (e.g. ``peak_memory_bytes``).
        communication_per_step_s: Mean time per measured step with a gradient all-reduce in
            flight, s (:mod:`bigbench.distributed.communication`); None: not measured.
        communication_share: That time over the steps' duration (0-1; it overlaps compute).
        communication_steps: The measured steps those figures cover: this process's (a resumed
            run's earlier processes are not timed again); None: not measured.
        ranks_on_node: Ranks on this rank's node, as its launcher says (None: it does not).
    """

    rank: int
    local_rank: int
    host: str
    device: str
    samples: int
    steps: int
    time_s: float
    step_time_s: dict[str, float | None]
    durations_s: list[float]
    peak_memory_bytes: int | None
    energy_devices: list[dict[str, Any]]
    reasons: dict[str, str] = field(default_factory=dict)
    communication_per_step_s: float | None = None
    communication_share: float | None = None
    communication_steps: int | None = None
    ranks_on_node: int | None = None


def rank_summary(place: Rank, *, host: str, device: str, samples: int, steps: int,
                 time_s: float, durations_s: list[float], peak_memory_bytes: int | None,
                 energy_devices: list[dict[str, Any]],
                 reasons: dict[str, str] | None = None,
                 communication_s: list[float | None] | None = None,
                 ranks_on_node: int | None = None) -> RankSummary:
    """This rank's :class:`RankSummary`, its step-time percentiles computed from
    ``durations_s`` (s) and its energy entries copied (the summary must not change when the
    monitor's own dictionaries do).

    Args:
        communication_s: Each measured step's time with a gradient all-reduce in flight, s,
            for this process's last ``len(communication_s)`` steps of ``durations_s`` (a
            resumed run times its own steps only); None: not measured (the reason is in
            ``reasons["communication_per_step_s"]``).
        ranks_on_node: Ranks on this rank's node, as its launcher says (None: it does not).
    """
    durations = [float(d) for d in durations_s]
    reasons = dict(reasons or {})
    per_step, share = communication_figures(communication_s, durations, reasons)
    return RankSummary(rank=place.rank, local_rank=place.local_rank, host=host, device=device,
                       samples=int(samples), steps=int(steps), time_s=float(time_s),
                       step_time_s=summarize_durations(durations), durations_s=durations,
                       peak_memory_bytes=peak_memory_bytes,
                       energy_devices=copy.deepcopy(energy_devices), reasons=reasons,
                       communication_per_step_s=per_step, communication_share=share,
                       communication_steps=len(communication_s)
                       if per_step is not None and communication_s else None,
                       ranks_on_node=ranks_on_node)


def communication_figures(communication_s: list[float | None] | None,
                          durations_s: list[float], reasons: dict[str, str]
                          ) -> tuple[float | None, float | None]:
    """(mean s per step, share of the steps' time) of the gradient communication; None with
    the reason added to ``reasons`` where there is nothing to compute them from (a step
    timed as None: its buckets never reached the communication hook)."""
    if communication_s is None:
        why = reasons.get("communication_per_step_s", "not measured")
    elif not communication_s:
        why = "no measured step was timed in this process"
    elif None in communication_s:
        why = (f"{communication_s.count(None)} of {len(communication_s)} measured steps never "
               "called DDP's communication hook (a compiled or Python reducer), so it was not "
               "timed")
    else:
        why = None
    if why is not None:
        reasons["communication_per_step_s"] = reasons["communication_share"] = why
        return None, None
    timed = [float(c) for c in communication_s]  # type: ignore[union-attr, arg-type]
    total_s = math.fsum(timed)
    steps = durations_s[-len(timed):]
    step_s = math.fsum(steps)
    if step_s <= 0 or len(steps) != len(timed):
        reasons["communication_share"] = "the steps' durations do not match the timed steps"
        return total_s / len(timed), None
    return total_s / len(timed), total_s / step_s


def device_identity(host: str, entry: dict[str, Any]) -> tuple[str, str]:
    """The (host, device) a reading belongs to: its meter key, or for a meter that did not
    work (no key) its kind and name, so that the same absence on one host counts once."""
    key = entry.get("key") or f"{entry.get('kind')}:{entry.get('name')}"
    return host, key


def _energy(entry: dict[str, Any]) -> float | None:
    """The entry's energy in J, or None when it holds no usable figure."""
    value = entry.get("energy_j")
    if value is None or entry.get("measured") is False:
        return None
    value = float(value)
    # A NaN or infinite reading is no measurement: it would poison the sum and the JSON.
    return value if math.isfinite(value) else None


def _why_missing(entry: dict[str, Any]) -> str:
    value = entry.get("energy_j")
    if value is not None and not math.isfinite(float(value)):
        return f"non-finite energy reading ({value})"
    return entry.get("reason") or "; ".join(entry.get("quality_reasons") or []) or \
        "no reading in the measured window"


def _label(host: str, entry: dict[str, Any]) -> str:
    return f"{host} {entry.get('kind')} {entry.get('name') or entry.get('key')}"


def _dedupe(summaries: list[RankSummary]
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every device's entry once, and a record of each duplicate left out.

    Ranks are read in order, so the lowest rank's entry is kept — except that a reading wins
    over an absence (one rank measuring a shared device is enough to know its energy).
    """
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    dropped: list[dict[str, Any]] = []
    for summary in summaries:
        for raw in summary.energy_devices:
            entry = copy.deepcopy(raw)  # never alter the rank's own data
            energy = _energy(entry)
            entry.update(host=summary.host, rank=summary.rank, energy_j=energy,
                         measured=energy is not None)
            if energy is None and raw.get("energy_j") is not None:
                entry["reason"] = _why_missing(raw)
            identity = device_identity(summary.host, entry)
            first = kept.get(identity)
            if first is None:
                kept[identity] = entry
                continue
            loser, winner = entry, first
            if first["energy_j"] is None and energy is not None:
                loser, winner = first, entry
                kept[identity] = entry  # dict keeps the first one's position: stable order
            dropped.append(_duplicate(identity, loser, winner))
    return list(kept.values()), sorted(dropped, key=lambda d: (d["host"], d["key"], d["rank"]))


def _duplicate(identity: tuple[str, str], dropped: dict[str, Any], kept: dict[str, Any]
               ) -> dict[str, Any]:
    a, b = dropped["energy_j"], kept["energy_j"]
    return {"host": identity[0], "key": identity[1], "rank": dropped["rank"],
            "kept_rank": kept["rank"], "energy_j": a, "kept_energy_j": b,
            "difference_j": a - b if a is not None and b is not None else None,
            "agrees": a == b}


def _energy_section(summaries: list[RankSummary], samples: int, time_s: float
                    ) -> tuple[dict[str, Any], dict[int, list[dict[str, Any]]]]:
    """The combined energy section, and each rank's kept entries (for the per-rank view)."""
    devices, dropped = _dedupe(summaries)
    measured = [d for d in devices if d["measured"]]
    missing = [f"{_label(d['host'], d)}: {_why_missing(d)}" for d in devices
               if not d["measured"]]
    # A host no rank reported any meter for is energy the total does not hold.
    reporting = {d["host"] for d in devices}
    missing += [f"{host}: no rank on this host reported an energy meter"
                for host in _hosts_in_order(summaries) if host not in reporting]
    total = math.fsum(d["energy_j"] for d in measured) if measured else None
    unbounded = [_label(d["host"], d) for d in measured if d.get("uncertainty_j") is None]
    bound = math.fsum(d["uncertainty_j"] for d in measured) \
        if measured and not unbounded else None
    derived = derived_energy_figures(total, bound, samples, time_s)
    reasons: dict[str, str] = derived.pop("reasons")
    if total is None:
        reasons.update(total_j="; ".join(missing) or "no rank reported an energy meter",
                       uncertainty_j="energy was not measured")
    elif unbounded:
        reasons["uncertainty_j"] = "no error bound for " + ", ".join(unbounded)
    status = "unavailable" if total is None else ("partial" if missing else "measured")
    section = {
        "status": status, "reason": "; ".join(missing) if missing else None,
        "total_j": total, "uncertainty_j": bound, **derived,
        "quality": worst_quality([d.get("quality") for d in measured]),
        "devices": devices, "dropped_duplicates": dropped, "reasons": reasons,
    }
    by_rank: dict[int, list[dict[str, Any]]] = {}
    for device in devices:
        by_rank.setdefault(device["rank"], []).append(device)
    return section, by_rank


def _hosts_in_order(summaries: list[RankSummary]) -> list[str]:
    return list(dict.fromkeys(s.host for s in summaries))


def _rank_entry(summary: RankSummary, devices: list[dict[str, Any]],
                kept_elsewhere: list[str]) -> dict[str, Any]:
    """One rank's row: its own figures and the energy of the devices counted under it."""
    reasons = dict(summary.reasons)
    rate = summary.samples / summary.time_s if summary.time_s > 0 else None
    if rate is None:
        reasons["samples_per_s"] = "the rank's measured window has no duration"
    if summary.peak_memory_bytes is None:
        reasons.setdefault("peak_memory_bytes", "the rank reported no peak memory")
    measured = [d for d in devices if d["measured"]]
    energy = math.fsum(d["energy_j"] for d in measured) if measured else None
    bounds = [d.get("uncertainty_j") for d in measured]
    bound = math.fsum(bounds) if measured and None not in bounds else None  # type: ignore[arg-type]
    if energy is None and devices:
        reasons["energy_j"] = "none of the devices counted under this rank was measured"
    elif energy is None and kept_elsewhere:
        # Not 0 J: the rank's devices drew power, but their energy is in another rank's row.
        reasons["energy_j"] = (f"its readings of {', '.join(kept_elsewhere)} were counted "
                               "under another rank (a device counts once)")
    elif energy is None:
        reasons["energy_j"] = "the rank reported no energy meter"
    if bound is None:
        reasons["energy_uncertainty_j"] = reasons.get("energy_j") or \
            "no error bound for some device counted under this rank"
    return {"rank": summary.rank, "local_rank": summary.local_rank, "host": summary.host,
            "device": summary.device, "samples": summary.samples, "steps": summary.steps,
            "time_s": summary.time_s, "samples_per_s": rate,
            # A summary built without rank_summary may carry no percentiles: derive them.
            "step_time_s": dict(summary.step_time_s) or summarize_durations(summary.durations_s),
            "peak_memory_bytes": summary.peak_memory_bytes,
            "energy_j": energy, "energy_uncertainty_j": bound,
            "energy_devices": [device_identity(d["host"], d)[1] for d in devices],
            "communication_per_step_s": summary.communication_per_step_s,
            "communication_share": summary.communication_share,
            "communication_steps": summary.communication_steps,
            "reasons": reasons}


def _every_rank(summaries: list[RankSummary], figure: str, reasons: dict[str, str]
                ) -> list[float]:
    """Every rank's value of ``figure``; empty (with the reason) when any rank lacks it, so a
    mean over the ranks never silently leaves some out."""
    missing = [s for s in summaries if getattr(s, figure) is None]
    if not missing:
        return [getattr(s, figure) for s in summaries]
    first = missing[0]
    reasons[figure] = (f"rank {first.rank}: {first.reasons.get(figure, 'not measured')}"
                       if len(missing) < len(summaries) else
                       first.reasons.get(figure, "no rank measured it"))
    return []


def combine(summaries: list[RankSummary]) -> dict[str, Any]:
    """run.json's ``distributed`` section from every rank's summary.

    Keys: ``world_size``; ``hosts`` (``host``, ``ranks``: how many, ``rank_ids``);
    ``samples`` (all ranks); ``time_s`` (the slowest rank's measured window, s);
    ``slowest_rank``; ``samples_per_s`` (samples / time_s); ``step_time_s`` (percentiles of
    all ranks' pooled step durations, s); ``communication_per_step_s`` and
    ``communication_share`` (the ranks' means: time per step with a gradient all-reduce in
    flight, s, and its share of the step time); ``energy`` (``status``, ``reason``, ``total_j``,
    ``uncertainty_j``, ``j_per_sample``, ``j_per_sample_uncertainty``, ``samples_per_j``,
    ``avg_power_w``, ``quality``, ``devices`` — each entry with its ``host`` and the ``rank``
    it was taken from — ``dropped_duplicates``, ``reasons``); ``ranks`` (one row per rank,
    ascending); ``reasons`` (why a null top-level figure is null).

    Raises:
        ValueError: no summaries, or two summaries with the same rank.
    """
    if not summaries:
        raise ValueError("combine needs at least one rank's summary")
    ordered = sorted(summaries, key=lambda s: s.rank)
    ranks = [s.rank for s in ordered]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"two summaries claim the same rank: {ranks}")
    samples = sum(s.samples for s in ordered)
    slowest = max(ordered, key=lambda s: s.time_s)  # ties: the lowest rank (max keeps first)
    time_s = slowest.time_s
    reasons: dict[str, str] = {}
    rate = samples / time_s if time_s > 0 else None
    if rate is None:
        reasons["samples_per_s"] = "the slowest rank's measured window has no duration"
    energy, by_rank = _energy_section(ordered, samples, time_s)
    hosts = [{"host": host, "ranks": sum(s.host == host for s in ordered),
              "rank_ids": [s.rank for s in ordered if s.host == host]}
             for host in _hosts_in_order(ordered)]
    rows = []
    for summary in ordered:
        elsewhere = [d["key"] for d in energy["dropped_duplicates"]
                     if d["rank"] == summary.rank]
        rows.append(_rank_entry(summary, by_rank.get(summary.rank, []), elsewhere))
    per_step = _every_rank(ordered, "communication_per_step_s", reasons)
    shares = _every_rank(ordered, "communication_share", reasons)
    out: dict[str, Any] = {
        "world_size": len(ordered), "hosts": hosts, "samples": samples, "time_s": time_s,
        "slowest_rank": slowest.rank, "samples_per_s": rate,
        "step_time_s": summarize_durations([d for s in ordered for d in s.durations_s]),
        "communication_per_step_s": math.fsum(per_step) / len(per_step) if per_step else None,
        "communication_share": math.fsum(shares) / len(shares) if shares else None,
        "energy": energy, "ranks": rows,
    }
    if reasons:
        out["reasons"] = reasons
    return out
