"""``output.loggers: [tensorboard]``: event files in ``<run>/tensorboard/``.

Scalars, each at its training step: ``train/loss``, ``train/lr``, ``train/samples_per_s``,
``eval/<metric>`` (accuracy, loss …) and ``power_w/<device>`` (the device's latest power sample
at each event). The resolved config is stored as text (``config``). The SummaryWriter writes
on its own thread, so an event costs the loop only a queue put.

    tensorboard --logdir runs/
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig

FOLDER = "tensorboard"
TRAIN_SCALARS = ("loss", "lr", "samples_per_s")


class TensorBoardLogger:
    """Writes scalars with ``torch.utils.tensorboard.SummaryWriter``."""

    name = "tensorboard"

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self._writer: Any = None

    def start(self, config: ExperimentConfig, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from bigbench.config.render import config_yaml

        # Flushed every 10 s (torch's default is 120 s), so a live TensorBoard keeps up.
        self._writer = SummaryWriter(log_dir=str(run_dir / FOLDER), flush_secs=10)
        # Markdown: indent four spaces so TensorBoard shows the YAML as a code block.
        self._writer.add_text("config", "\n".join("    " + line for line in
                                                  config_yaml(config).splitlines()))

    def log_train(self, event: Mapping[str, Any]) -> None:
        step = event["step"]
        for key in TRAIN_SCALARS:
            self._scalar(f"train/{key}", event.get(key), step)
        self._power(event, step)

    def log_eval(self, event: Mapping[str, Any]) -> None:
        step = event["step"]
        skip = {"event", "time_s", "step", "epoch", "samples", "reasons", "power_w"}
        for key, value in event.items():
            if key not in skip:
                self._scalar(f"eval/{key}", value, step)
        self._power(event, step)

    def finish(self, record: Mapping[str, Any], run_dir: Path) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _power(self, event: Mapping[str, Any], step: int) -> None:
        for device, watts in (event.get("power_w") or {}).items():
            self._scalar(f"power_w/{device}", watts, step)

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        if self._writer is not None and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            self._writer.add_scalar(tag, value, global_step=step)
