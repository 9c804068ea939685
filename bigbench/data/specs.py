"""Arguments of every registered dataset, with their documented defaults (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bigbench.data.registry import register_dataset
from bigbench.strict import StrictModel

_MAX_SAMPLES = 100_000_000
#: Longest language-modelling window, in tokens.
_MAX_CONTEXT = 65_536
#: Largest Markov source: k-gram contexts, and entries of its sparse transition table.
MAX_CORPUS_CONTEXTS = 2**20
MAX_CORPUS_TABLE = 2**22


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
    summary="Arrays x, y (and optionally x_test, y_test), or a 1-D token stream x, from a "
            "NumPy .npz file",
)
class NpzArgs(StrictModel):
    """A user-supplied dataset; see docs/data.md for the shape conventions."""

    path: str = Field(description="Path of the .npz file.", min_length=1)
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0,
        description="Fraction held out as the test split when the file has no x_test: random "
                    "samples, or for a token stream the last part by position.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the train/test split.")
    context: int | None = Field(
        None, ge=2, le=_MAX_CONTEXT,
        description="Tokens per window when x is a 1-D integer token stream without y "
                    "(language modelling; required then, refused otherwise). The last "
                    "test_fraction of the stream by position is the test split.",
    )


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


@register_dataset(
    "corpus",
    builder="bigbench.data.corpus:build_corpus",
    summary="Token windows from a seeded order-k Markov source whose exact entropy is known",
)
class CorpusArgs(StrictModel):
    """Language modelling on text from a random order-k Markov chain over ``vocab_size`` tokens.

    Each k-token context continues with one of ``branching`` tokens, weighted by a Dirichlet
    draw: learnable, not trivial, and its lowest reachable loss (``entropy_floor``) is exact.
    """

    vocab_size: int = Field(32, ge=2, le=4096, description="Vocabulary size V.")
    order: int = Field(
        2, ge=1, le=4,
        description="Markov order k: tokens of context that determine the next token's "
                    "distribution (V**k contexts, at most 1048576).",
    )
    branching: int = Field(
        4, ge=2, le=4096,
        description="Tokens each context can be followed by (a random subset, at most "
                    "vocab_size).",
    )
    alpha: float = Field(
        1.0, ge=0.05, le=1000.0,
        description="Dirichlet concentration of each context's next-token weights: small "
                    "makes them peaked (lower entropy), large makes them even.",
    )
    context: int = Field(64, ge=2, le=_MAX_CONTEXT, description="Tokens per window T.")
    size: int = Field(20_000, ge=1, le=10_000_000, description="Number of training windows.")
    test_size: int = Field(2_000, ge=0, le=10_000_000, description="Number of test windows.")
    seed: int = Field(0, ge=0, le=2**32 - 1,
                      description="Seed of the source's transition table and of the windows.")

    @model_validator(mode="after")
    def _sizes(self) -> CorpusArgs:
        if self.branching > self.vocab_size:
            raise ValueError(f"branching ({self.branching}) must be at most vocab_size "
                             f"({self.vocab_size})")
        contexts = self.vocab_size ** self.order
        if contexts > MAX_CORPUS_CONTEXTS:
            raise ValueError(f"vocab_size**order = {self.vocab_size}**{self.order} = "
                             f"{contexts:,} contexts exceeds the limit of "
                             f"{MAX_CORPUS_CONTEXTS:,}; lower vocab_size or order")
        if contexts * self.branching > MAX_CORPUS_TABLE:
            raise ValueError(f"the transition table (vocab_size**order × branching = "
                             f"{contexts * self.branching:,} entries) exceeds the limit of "
                             f"{MAX_CORPUS_TABLE:,}; lower branching, vocab_size or order")
        return self


@register_dataset(
    "text",
    builder="bigbench.data.text:build_text",
    summary="Language modelling on local UTF-8 text files, as bytes or characters",
)
class TextArgs(StrictModel):
    """The user's text: one file, or every matching file in a folder, read in path order."""

    path: str = Field(
        min_length=1,
        description="A UTF-8 text file, or a folder: every regular file in it (recursively) "
                    "whose name matches pattern, hidden files and folders skipped, "
                    "concatenated in sorted path order.",
    )
    pattern: str = Field("*.txt", min_length=1,
                         description="File-name pattern used when path is a folder.")
    tokenizer: Literal["byte", "char"] = Field(
        "byte",
        description="byte: the UTF-8 bytes, vocabulary 256. char: Unicode characters, "
                    "vocabulary the sorted set of characters in the text.",
    )
    context: int = Field(128, ge=2, le=_MAX_CONTEXT, description="Tokens per window T.")
    val_fraction: float = Field(
        0.1, ge=0.0, le=0.9,
        description="Last fraction of the token stream, by position, held out as the test "
                    "split (0: no test split).",
    )
    max_bytes: int | None = Field(
        None, ge=1, le=2**40,
        description="Read at most this many bytes in all (files in order, the last one cut "
                    "at a character boundary); unset reads everything.",
    )
