"""The sweep plan: every combination of the ``sweep:`` section's axes and the interleaved
order of their trials. Pure: no torch, no files."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from bigbench.config.schema import ExperimentConfig
from bigbench.config.sweep import PowerLimitSpec, SweepConfig


@dataclass(frozen=True)
class Combination:
    """One setting the sweep trains at.

    Attributes:
        id: Unique, filesystem-safe name, e.g. ``bs32-fp32`` or ``bs32-fp32-250W``.
        batch_size: Samples per optimizer step (``train.batch_size``).
        precision: ``fp32``, ``bf16`` or ``fp16`` (``train.precision``).
        power_limit: The power limit as configured (watts, ``max`` or ``default``); None when
            the sweep leaves the limit alone.
    """

    id: str
    batch_size: int
    precision: str
    power_limit: PowerLimitSpec | None = None

    def overrides(self) -> list[str]:
        """The ``--set`` overrides that turn the base config into this combination's."""
        return [f"train.batch_size={self.batch_size}", f"train.precision={self.precision}"]


@dataclass(frozen=True)
class PlannedTrial:
    """One training run of the sweep.

    Attributes:
        id: Unique name and folder under ``trials/``: ``<n>-<combination>-r<round>``.
        combination: The setting it trains at.
        round: 0-based repeat round.
        position: 0-based position in the whole sweep.
    """

    id: str
    combination: Combination
    round: int
    position: int


def limit_label(limit: PowerLimitSpec) -> str:
    """``250.0`` → ``250W``, ``287.5`` → ``287.5W``; ``max`` and ``default`` as they are."""
    return limit if isinstance(limit, str) else f"{limit:g}W"


def combinations(section: SweepConfig, config: ExperimentConfig) -> list[Combination]:
    """Every batch size × precision × power limit, in the order listed (null axes: the
    config's own setting, or the limit left alone)."""
    sizes = section.batch_sizes or [config.train.batch_size]
    precisions = section.precisions or [config.train.precision]
    limits: list[PowerLimitSpec | None] = list(section.power_limits or [None])
    out = []
    for size, precision, limit in itertools.product(sizes, precisions, limits):
        name = f"bs{size}-{precision}" + (f"-{limit_label(limit)}" if limit is not None else "")
        out.append(Combination(name, size, precision, limit))
    return out


def interleaved(combos: list[Combination], repeats: int) -> list[PlannedTrial]:
    """Every trial in running order: round r runs every combination once, the list rotated
    left by r, so each combination runs early in some rounds and late in others and a drift
    over the sweep (a GPU warming up) favours none."""
    trials: list[PlannedTrial] = []
    n = len(combos)
    for r in range(repeats):
        shift = r % n if n else 0
        for combo in combos[shift:] + combos[:shift]:
            position = len(trials)
            trials.append(PlannedTrial(f"{position + 1:03d}-{combo.id}-r{r + 1}", combo, r,
                                       position))
    return trials
