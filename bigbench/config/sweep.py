"""The ``sweep:`` section: which settings ``bigbench sweep`` trains at, and how the trials are
ordered and spaced.

Each combination of batch size × precision × power limit is one real training run of the
config (with ``train.batch_size`` and ``train.precision`` overridden), repeated ``repeats``
times in interleaved rounds. What is done with the results — the Pareto set over (time,
energy) and the eta-optimal point — is in bigbench.frontier.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bigbench.errors import did_you_mean
from bigbench.strict import StrictModel

#: A power limit as written in the config: watts, or the GPU's maximum or default limit.
PowerLimitSpec = float | str
#: The named power limits (as bench's --power-limits names them).
NAMED_LIMITS = ("min", "default", "max")
#: Largest power limit accepted in watts (no GPU comes near it; it catches a typo of mW).
MAX_LIMIT_W = 10_000.0
#: The axes a sweep varies; at least one must be listed.
AXES = ("batch_sizes", "precisions", "power_limits")


def _once(values: list[object]) -> None:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]} is listed more than once; list each value once")


def _limit(value: PowerLimitSpec) -> PowerLimitSpec:
    """A power limit: watts in (0, MAX_LIMIT_W], or 'min' / 'default' / 'max'."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name not in NAMED_LIMITS:
            raise ValueError(f"power limit '{value}' is not watts, 'min', 'default' or 'max'"
                             f"{did_you_mean(name, NAMED_LIMITS)}")
        return name
    if not 0.0 < value <= MAX_LIMIT_W:
        raise ValueError(f"power limit {value:g} W is outside (0, {MAX_LIMIT_W:g}]; give "
                         "watts, e.g. 250")
    return float(value)


class SweepConfig(StrictModel):
    """Settings to train at, each combination a real training run (``bigbench sweep``)."""

    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        None, min_length=1, description="Batch sizes (samples per optimizer step) to train at; "
        "null: the config's train.batch_size only.")
    precisions: list[Literal["fp32", "bf16", "fp16"]] | None = Field(
        None, min_length=1, description="Autocast precisions to train at; null: the config's "
        "train.precision only.")
    power_limits: list[PowerLimitSpec] | None = Field(
        None, min_length=1, description="GPU power limits to train at: watts, 'max' (the "
        "GPU's maximum limit) or 'default' (its default limit). Each is set through NVML "
        "before its trials and the original restored afterwards, also on an error or Ctrl-C "
        "(GPU only; needs the privilege to set limits). Null: the limit is left alone.")
    repeats: int = Field(
        1, ge=1, le=100, description="Trials per combination. Interleaved: round r runs every "
        "combination once, in an order rotated by r, so thermal drift over the sweep favours "
        "no setting; a combination's figures are the median over its repeats.")
    eta: float = Field(
        0.5, ge=0.0, le=1.0, description="Weight of energy in the cost eta·energy + (1 − eta)"
        "·max_power·time (Zeus, NSDI'23) the optimal operating point minimises: 1 minimises "
        "energy, 0 time. bigbench sweep --eta overrides it.")
    cooldown_s: float = Field(
        0.0, ge=0.0, le=3600.0, description="Seconds to wait between trials (0: none), so one "
        "trial's heat does not start the next.")
    cooldown_below_c: float | None = Field(
        None, gt=0.0, le=120.0, description="Before each trial but the first, wait until the "
        "GPU is below this temperature, °C (at most cooldown_timeout_s; GPU only). Null: no "
        "temperature wait.")
    cooldown_timeout_s: float = Field(
        600.0, gt=0.0, le=86_400.0, description="Longest wait for cooldown_below_c, s; a trial "
        "that starts warmer records that the wait timed out.")

    @field_validator("power_limits")
    @classmethod
    def _limits(cls, values: list[PowerLimitSpec] | None) -> list[PowerLimitSpec] | None:
        return None if values is None else [_limit(v) for v in values]

    @field_validator("batch_sizes", "precisions", "power_limits")
    @classmethod
    def _each_once(cls, values: list[object] | None) -> list[object] | None:
        if values is not None:
            _once(values)
        return values

    @model_validator(mode="after")
    def _something_to_sweep(self) -> SweepConfig:
        if all(getattr(self, axis) is None for axis in AXES):
            raise ValueError("the sweep is empty: list at least one of batch_sizes, "
                             "precisions or power_limits")
        return self
