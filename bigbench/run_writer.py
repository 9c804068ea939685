"""The run directory: the one owner of every file in it.

config.yaml, run.json, metrics.jsonl, model.safetensors, checkpoint/ and power.csv are written
here and nowhere else, each atomically (see :mod:`bigbench.results`). A writer knows whether
this process is the one that writes (rank 0); every other rank gets a writer whose methods do
nothing, so callers never ask which rank they are on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bigbench.rank import SINGLE, Rank
from bigbench.results import MetricsLog, atomic_write_text, create_run_dir, write_json

if TYPE_CHECKING:
    import torch

    from bigbench.checkpoint import TrainingPosition
    from bigbench.config.schema import ExperimentConfig

RUN_RECORD = "run.json"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
WEIGHTS = "model.safetensors"
POWER = "power.csv"


class RunWriter:
    """Writes one run directory (or, on ranks other than 0, nothing).

    Args:
        run_dir: The directory (None on ranks that do not write).
    """

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self._metrics = MetricsLog(run_dir / METRICS) if run_dir is not None else None

    @property
    def writes(self) -> bool:
        """True when this process writes the run's files."""
        return self.run_dir is not None

    @classmethod
    def create(cls, config: ExperimentConfig, out: Path | None, rank: Rank = SINGLE
               ) -> RunWriter:
        """A new run directory (exclusive: two runs never share one) with its config.yaml."""
        if not rank.writes:
            return cls(None)
        writer = cls(create_run_dir(Path(config.output.dir), config.name, out))
        writer.write_config(config)
        return writer

    @classmethod
    def reopen(cls, run_dir: Path, rank: Rank = SINGLE) -> RunWriter:
        """The writer of an existing run directory (a resumed run)."""
        return cls(run_dir if rank.writes else None)

    def write_config(self, config: ExperimentConfig) -> None:
        """The resolved config as YAML, every default spelled out."""
        if self.run_dir is not None:
            from bigbench.config.render import config_yaml

            atomic_write_text(self.run_dir / CONFIG, config_yaml(config))

    def write_record(self, record: Mapping[str, Any]) -> None:
        """run.json, replaced atomically."""
        if self.run_dir is not None:
            write_json(self.run_dir / RUN_RECORD, record)

    def log(self, entry: Mapping[str, Any]) -> None:
        """Append one line to metrics.jsonl."""
        if self._metrics is not None:
            self._metrics.append(dict(entry))

    def save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        schedule: Any, position: TrainingPosition, extra: dict[str, Any]
                        ) -> None:
        """A complete checkpoint, swapped in atomically (see :mod:`bigbench.checkpoint`)."""
        if self.run_dir is not None:
            from bigbench.checkpoint import save_checkpoint

            save_checkpoint(self.run_dir, model, optimizer, schedule, position, extra)

    def has_checkpoint(self) -> bool:
        """Whether a complete checkpoint exists in the run directory."""
        from bigbench.checkpoint import find_checkpoint

        return self.run_dir is not None and find_checkpoint(self.run_dir) is not None

    def save_weights(self, model: torch.nn.Module) -> str | None:
        """The final weights as safetensors; returns the file name (None when not written)."""
        if self.run_dir is None:
            return None
        from bigbench.checkpoint import save_weights

        save_weights(model, self.run_dir / WEIGHTS)
        return WEIGHTS

    def write_power_csv(self, rows: Sequence[tuple[float, str, float]],
                        origin: float | None = None) -> str | None:
        """``t_s,device,power_w`` rows; None when there are none.

        Args:
            origin: The clock reading t_s counts from (the run's command start, which the
                windows' ``spans_s`` in run.json count from too); None: the first sample.
        """
        if self.run_dir is None or not rows:
            return None
        ordered = sorted(rows)
        origin = ordered[0][0] if origin is None else origin
        lines = ["t_s,device,power_w"] + [f"{t - origin:.6f},{key},{w:.3f}"
                                          for t, key, w in ordered]
        atomic_write_text(self.run_dir / POWER, "\n".join(lines) + "\n")
        return POWER
