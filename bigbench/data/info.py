"""What a model needs to know about its data, without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What a dataset's targets are: one class label per sample, or the next token at every position.
TaskName = Literal["classification", "language_modeling"]


@dataclass(frozen=True)
class DataInfo:
    """Shape facts of one dataset.

    Attributes:
        sample_shape: Shape of one input sample, without the batch dimension,
            e.g. ``(1, 28, 28)`` for an image or ``(20,)`` for a token sequence.
        num_classes: Number of target classes; labels lie in ``[0, num_classes)``.
        vocab_size: Token vocabulary size when inputs are integer tokens, else ``None``.
        train_size: Number of training samples.
        test_size: Number of test samples (0 when there is no test split).
        task: ``classification``: labels ``(N,)`` in ``[0, num_classes)``.
            ``language_modeling``: inputs are windows of ``T`` tokens ``(N, T)`` and targets the
            same windows shifted by one token ``(N, T)``; ``num_classes == vocab_size``.
        entropy_floor: Language modelling on a generated corpus only: the lowest mean
            cross-entropy any model can reach on these windows, nats per predicted token
            (exact, from the generating process); ``None`` when unknown.
    """

    sample_shape: tuple[int, ...]
    num_classes: int
    vocab_size: int | None = None
    train_size: int = 0
    test_size: int = 0
    task: TaskName = "classification"
    entropy_floor: float | None = None

    @property
    def is_tokens(self) -> bool:
        """True when inputs are integer token ids."""
        return self.vocab_size is not None
