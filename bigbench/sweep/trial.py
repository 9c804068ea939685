"""A trial's figures, read from the run.json its training run wrote.

Nothing is measured here: throughput, J/sample and average power come from the run's measured
window, time and energy to the target from its ``target`` section (present only when the
config sets a quality target). A figure the run could not measure stays None, and the trial's
``reasons`` say why with the run's own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The figures every trial entry carries (None when not measured; see ``reasons``).
FIGURES = ("samples_per_s", "s_per_sample", "j_per_sample", "avg_power_w",
           "limit_in_effect_w", "max_power_limit_w")
#: The figures of a trial of a sweep with a quality target.
TARGET_FIGURES = ("time_to_target_s", "energy_to_target_j")


def _section(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _why(section: Mapping[str, Any], key: str, fallback: str) -> str:
    reasons = section.get("reasons")
    reasons = reasons if isinstance(reasons, Mapping) else {}
    return str(reasons.get(key) or section.get("reason") or fallback)


def _gpu_device(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for device in _section(record, "energy").get("devices") or []:
        if isinstance(device, Mapping) and device.get("kind") == "gpu":
            return device
    return None


def _gpu_meter(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for meter in _section(record, "env").get("energy_meters") or []:
        if isinstance(meter, Mapping) and meter.get("kind") == "gpu":
            return meter
    return None


def figures(record: Mapping[str, Any], gpu: bool) -> dict[str, Any]:
    """The trial's figures from its run.json.

    Args:
        record: The run's run.json.
        gpu: Whether the sweep runs on a GPU (else power limits do not apply).

    Returns:
        ``FIGURES`` (and ``TARGET_FIGURES`` plus ``target_reached`` when the run has a
        ``target`` section), ``energy_status``, ``energy_quality``, ``eval`` and ``reasons``
        (figure → why it is None).
    """
    status = record.get("status")
    throughput, energy = _section(record, "throughput"), _section(record, "energy")
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {}
    rate = _number(throughput.get("samples_per_s"))
    out["samples_per_s"] = rate if rate and rate > 0 else None
    out["s_per_sample"] = 1.0 / rate if rate and rate > 0 else None
    if out["samples_per_s"] is None:
        fallback = ("not measured" if throughput else
                    f"the run ended {status} before its measured window")
        reasons["samples_per_s"] = reasons["s_per_sample"] = \
            _why(throughput, "samples_per_s", fallback)
    for key in ("j_per_sample", "avg_power_w"):
        out[key] = _number(energy.get(key))
        if out[key] is None:
            fallback = ("energy not measured" if energy else
                        f"the run ended {status} without an energy section")
            reasons[key] = _why(energy, key, fallback)
    out["energy_status"] = energy.get("status")
    out["energy_quality"] = energy.get("quality")
    out.update(_limits(record, gpu, reasons))
    evaluation = _section(record, "eval")
    out["eval"] = {k: _number(evaluation.get(k)) for k in ("accuracy", "loss", "perplexity")
                   if k in evaluation}
    target = record.get("target")
    if isinstance(target, Mapping):
        out["target_reached"] = bool(target.get("reached"))
        for key in TARGET_FIGURES:
            out[key] = _number(target.get(key))
            if out[key] is None:
                reasons[key] = _why(target, key, "the target was not reached"
                                    if not target.get("reached") else "not measured")
    out["reasons"] = reasons
    return out


def _limits(record: Mapping[str, Any], gpu: bool, reasons: dict[str, str]) -> dict[str, Any]:
    """The power limit in effect at the end of the measured window and the GPU's maximum
    limit, as the run recorded them."""
    if not gpu:
        reasons["limit_in_effect_w"] = reasons["max_power_limit_w"] = \
            "a CPU run: no GPU power limit"
        return {"limit_in_effect_w": None, "max_power_limit_w": None}
    device, meter = _gpu_device(record) or {}, _gpu_meter(record) or {}
    telemetry = device.get("telemetry_end") or device.get("telemetry_start") or {}
    in_effect = _number(telemetry.get("power_limit_w")) if isinstance(telemetry, Mapping) \
        else None
    in_effect = in_effect if in_effect is not None else _number(meter.get("power_limit_w"))
    if in_effect is None:
        reasons["limit_in_effect_w"] = "the run recorded no GPU power limit (no NVML meter)"
    most = _number(meter.get("max_power_limit_w"))
    if most is None:
        reasons["max_power_limit_w"] = "the run recorded no maximum power limit"
    return {"limit_in_effect_w": in_effect, "max_power_limit_w": most}


def target_goal(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's quality target (metric, goal, direction), or None when it has none."""
    target = record.get("target")
    if not isinstance(target, Mapping):
        return None
    return {k: target.get(k) for k in ("metric", "goal", "direction")}
