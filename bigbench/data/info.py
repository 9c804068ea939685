"""What a model needs to know about its data, without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


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
    """

    sample_shape: tuple[int, ...]
    num_classes: int
    vocab_size: int | None = None
    train_size: int = 0
    test_size: int = 0

    @property
    def is_tokens(self) -> bool:
        """True when inputs are integer token ids."""
        return self.vocab_size is not None
