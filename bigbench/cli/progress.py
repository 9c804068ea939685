"""The live progress bar of ``bigbench train`` (on stderr, so stdout stays machine-readable)."""

from __future__ import annotations

import time
from typing import Any

from bigbench.engine import LogEvent
from bigbench.training_loop import TrainCallbacks


class TrainProgress:
    """A rich progress bar fed by the training callbacks; use as a context manager.

    ``enabled=False`` (ranks other than 0 of a distributed job) shows nothing.
    """

    def __init__(self, console: Any, description: str, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
            disable=not enabled,
        )
        self._enabled = enabled
        self._description = description
        self._task: Any = None
        self._last_update = 0.0
        self._latest = 0

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._latest)
        self._progress.__exit__(*exc)

    def callbacks(self) -> TrainCallbacks:
        """The callbacks to hand to ``run_training`` (none when disabled)."""
        if not self._enabled:
            return TrainCallbacks()
        return TrainCallbacks(on_start=self._start, on_step=self._step, on_log=self._log,
                              on_eval=self._eval)

    def _start(self, total_steps: int) -> None:
        self._task = self._progress.add_task(self._description, total=total_steps,
                                             loss="–", rate="")

    def _step(self, step: int) -> None:
        # Called after every training step: touch rich (a lock and a task update) only ten
        # times a second, so the bar costs nothing measurable even for millisecond steps.
        now = time.perf_counter()
        if now - self._last_update >= 0.1:
            self._last_update = now
            self._progress.update(self._task, completed=step)
        self._latest = step

    def _log(self, event: LogEvent) -> None:
        rate = f"{event.samples_per_s:,.0f} samples/s" if event.samples_per_s else ""
        self._progress.update(self._task, loss=f"{event.loss:.4f}", rate=rate)

    def _eval(self, result: dict[str, Any]) -> None:
        accuracy, loss = result.get("accuracy"), result.get("loss")
        loss_text = 'n/a (not finite)' if loss is None else f'{loss:.4f}'
        # Evaluations every train.eval_every steps fall inside epochs: name the step too.
        where = f"step {result['step']:,} (epoch {result['epoch'] + 1})"
        if "perplexity" in result:  # a language model: the loss is per token
            perplexity = result["perplexity"]
            self._progress.console.print(
                f"{where}: test loss {loss_text} nats/token, perplexity "
                f"{'n/a' if perplexity is None else f'{perplexity:.3f}'}")
            return
        self._progress.console.print(
            f"{where}: test accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy:.2%}'}, test loss {loss_text}")
