"""Arguments of every registered dataset, with their documented defaults (torch-free)."""

from __future__ import annotations

from pydantic import Field, model_validator

from bigbench.data.registry import register_dataset
from bigbench.strict import StrictModel

_MAX_SAMPLES = 100_000_000


@register_dataset(
    "synthetic",
    builder="bigbench.data.synthetic:build_synthetic",
    summary="Random inputs and labels generated on the device; for throughput, not accuracy",
)
class SyntheticArgs(StrictModel):
    """Uniform random data of a given shape."""

    shape: list[int] = Field(
        [1, 28, 28], min_length=1, max_length=4,
        description="Shape of one sample, e.g. [1, 28, 28] (image) or [32] (sequence).",
    )
    num_classes: int = Field(10, ge=2, le=1_000_000, description="Number of label classes.")
    vocab_size: int | None = Field(
        None, ge=1, le=10_000_000,
        description="When set, samples are integer tokens in [0, vocab_size) instead of floats.",
    )
    size: int = Field(1024, ge=1, le=_MAX_SAMPLES, description="Number of training samples.")
    test_size: int = Field(256, ge=0, le=_MAX_SAMPLES, description="Number of test samples.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Generator seed.")

    @model_validator(mode="after")
    def _positive_shape(self) -> SyntheticArgs:
        if any(d < 1 or d > 1_000_000 for d in self.shape):
            raise ValueError(
                f"every dimension of shape must be between 1 and 1000000, got {self.shape}")
        return self


@register_dataset(
    "digits",
    builder="bigbench.data.procedural:build_digits",
    summary="28x28 handwriting-like digit images in 10 classes, generated from a seed",
)
class DigitsArgs(StrictModel):
    """Ten digit glyphs, each sample randomly scaled, rotated, shifted, thickened and noised."""

    size: int = Field(10_000, ge=10, le=1_000_000, description="Number of training samples.")
    test_size: int = Field(2_000, ge=0, le=1_000_000, description="Number of test samples.")
    noise: float = Field(0.25, ge=0.0, le=2.0, description="Std of the added Gaussian pixel noise.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Generator seed.")


@register_dataset(
    "tokens",
    builder="bigbench.data.procedural:build_tokens",
    summary="Token sequences labelled 1 when token 1 occurs more often than token 2",
)
class TokensArgs(StrictModel):
    """Sequences of uniform random tokens with a counting rule as the label."""

    size: int = Field(10_000, ge=10, le=10_000_000, description="Number of training samples.")
    test_size: int = Field(2_000, ge=0, le=10_000_000, description="Number of test samples.")
    seq_len: int = Field(20, ge=2, le=100_000, description="Tokens per sequence.")
    vocab_size: int = Field(10, ge=3, le=10_000_000, description="Vocabulary size (>= 3).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Generator seed.")


@register_dataset(
    "npz",
    builder="bigbench.data.files:build_npz",
    summary="Arrays x, y (and optionally x_test, y_test) from a NumPy .npz file",
)
class NpzArgs(StrictModel):
    """A user-supplied dataset; see the README for the shape conventions."""

    path: str = Field(description="Path of the .npz file.", min_length=1)
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0,
        description="Fraction held out as the test split when the file has no x_test/y_test.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the train/test split.")


@register_dataset(
    "mnist",
    builder="bigbench.data.files:build_mnist",
    summary="The standard MNIST IDX files (gzipped or not) from a local folder",
)
class MnistArgs(StrictModel):
    """MNIST in its original IDX format; nothing is downloaded."""

    root: str = Field(description="Folder holding train-images-idx3-ubyte[.gz] and friends.",
                      min_length=1)
    limit: int | None = Field(
        None, ge=1, le=_MAX_SAMPLES, description="Use only the first N training samples."
    )
