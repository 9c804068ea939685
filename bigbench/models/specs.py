"""Arguments of every registered model, with their documented defaults.

This module is torch-free; it feeds the config schema and ``bigbench models``. The defaults
reproduce the reference CNN and RNN exactly (with their bugs fixed, see cnn.py / recurrent.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bigbench.data.info import DataInfo
from bigbench.models.family import CNN, RECURRENT, TRANSFORMER
from bigbench.models.registry import register_model
from bigbench.strict import StrictModel

# What `bigbench models` builds each model for when it reports default parameter counts.
MNIST_LIKE = DataInfo(sample_shape=(1, 28, 28), num_classes=10)
REFERENCE_TOKENS = DataInfo(sample_shape=(20,), num_classes=2, vocab_size=10)
#: GPT-2's 50,257-token vocabulary, so listed counts compare with published GPT-2 sizes. The
#: window is the default (tiny) preset's context, so the default model builds on it.
GPT2_TOKENS = DataInfo(sample_shape=(128,), num_classes=50257, vocab_size=50257,
                       task="language_modeling")


@register_model(
    "cnn",
    builder="bigbench.models.cnn:build_cnn",
    summary="Convolutional classifier; default is the reference 2-conv CNN for 28x28 images",
    family=CNN,
    reference_data=MNIST_LIKE,
)
class CNNArgs(StrictModel):
    """Conv → ReLU → pool blocks, then fully connected layers."""

    conv_dims: Literal["auto", 1, 2] = Field(
        "auto",
        description="1 or 2 for 1-D or 2-D convolution. 'auto': 1-D for samples of shape (L,), "
        "2-D for (H, W) or (C, H, W); set 1 for multi-channel 1-D samples (C, L).",
    )
    in_channels: int | None = Field(
        None, ge=1, le=65536, description="Input channels; null takes them from the data."
    )
    channels: list[int] = Field(
        [32, 64], min_length=1, max_length=16,
        description="Output channels of each conv block (one block per entry).",
    )
    kernel_size: int = Field(3, ge=1, le=64, description="Convolution kernel size.")
    stride: int = Field(1, ge=1, le=64, description="Convolution stride.")
    padding: int | None = Field(
        None, ge=0, le=64, description="Convolution padding; null means kernel_size // 2."
    )
    pool: int = Field(2, ge=1, le=64, description="Pooling window and stride; 1 disables pooling.")
    pool_type: Literal["max", "avg"] = Field("max", description="Pooling operation.")
    hidden: list[int] = Field(
        [100], max_length=16, description="Sizes of the hidden fully connected layers."
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before each hidden layer.")
    num_classes: int | None = Field(
        None, ge=2, le=1_000_000, description="Output classes; null takes them from the data."
    )

    @model_validator(mode="after")
    def _positive_sizes(self) -> CNNArgs:
        bad = [c for c in [*self.channels, *self.hidden] if c < 1 or c > 1_000_000]
        if bad:
            raise ValueError(
                f"channel and hidden sizes must be between 1 and 1000000, got {bad[0]}")
        return self


class RecurrentArgs(StrictModel):
    """Optional embedding → recurrent layers → linear head.

    Classification reads the sequence out once (``readout``); language modelling predicts the
    next token at every position.
    """

    input: Literal["auto", "tokens", "features"] = Field(
        "auto",
        description="'tokens': integer ids through an embedding; 'features': real-valued "
        "vectors per step; 'auto' decides from the data (integer → tokens).",
    )
    vocab_size: int | None = Field(
        None, ge=1, le=10_000_000, description="Token vocabulary size; null takes it from the data."
    )
    embedding_dim: int | None = Field(
        None, ge=1, le=65536,
        description="Embedding width; null uses hidden_size (as in the reference RNN).",
    )
    hidden_size: int = Field(50, ge=1, le=65536, description="Hidden state size.")
    num_layers: int = Field(1, ge=1, le=64, description="Stacked recurrent layers.")
    bidirectional: bool = Field(False, description="Run each layer in both directions.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout between recurrent layers (needs num_layers > 1)."
    )
    num_classes: int | None = Field(
        None, ge=2, le=1_000_000,
        description="Output classes; null takes them from the data (the vocabulary size for "
        "language modelling).",
    )
    readout: Literal["last", "mean", "concat"] = Field(
        "last",
        description="Classification only: what the head sees. 'last': the final hidden state of "
        "the last layer (both directions); 'mean': the last layer's outputs averaged over time; "
        "'concat': all time steps' outputs side by side (needs the data's fixed length T).",
    )

    @model_validator(mode="after")
    def _dropout_needs_layers(self) -> RecurrentArgs:
        if self.dropout > 0 and self.num_layers == 1:
            raise ValueError(
                "dropout applies between recurrent layers, so it needs num_layers > 1 "
                f"(got dropout={self.dropout}, num_layers=1)"
            )
        return self


_RECURRENT = {
    "rnn": "Elman RNN (tanh); default is the reference RNN: embedding 10→50, RNN(50), linear 50→2",
    "lstm": "LSTM classifier with the same layout as the reference RNN",
    "gru": "GRU classifier with the same layout as the reference RNN",
}
for _cell, _summary in _RECURRENT.items():
    register_model(
        _cell,
        builder=f"bigbench.models.recurrent:build_{_cell}",
        summary=_summary,
        family=RECURRENT,
        reference_data=REFERENCE_TOKENS,
    )(RecurrentArgs)


#: GPT size presets: (n_layer, n_head, d_model, context). ``small`` is nanoGPT's character model,
#: ``124m`` / ``350m`` GPT-2 small / medium, ``1.3b`` GPT-3 XL's geometry.
GPT_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 2, 64, 128),
    "mini": (4, 4, 128, 256),
    "small": (6, 6, 384, 256),
    "124m": (12, 12, 768, 1024),
    "350m": (24, 16, 1024, 1024),
    "1.3b": (24, 16, 2048, 2048),
}


@register_model(
    "gpt",
    builder="bigbench.models.gpt:build_gpt",
    summary="Decoder-only transformer language model (GPT-2 style); sizes tiny … 1.3b",
    family=TRANSFORMER,
    reference_data=GPT2_TOKENS,
)
class GPTArgs(StrictModel):
    """Token + position embedding → pre-LayerNorm transformer blocks → tied LM head."""

    size: Literal["tiny", "mini", "small", "124m", "350m", "1.3b"] = Field(
        "tiny",
        description="Geometry preset (n_layer, n_head, d_model, context): tiny (2, 2, 64, 128), "
        "mini (4, 4, 128, 256), small (6, 6, 384, 256), 124m (12, 12, 768, 1024) = GPT-2 small, "
        "350m (24, 16, 1024, 1024) = GPT-2 medium, 1.3b (24, 16, 2048, 2048) = GPT-3 XL. "
        "Explicit n_layer / n_head / d_model / context override it.",
    )
    n_layer: int | None = Field(
        None, ge=1, le=1024, description="Transformer blocks; null takes it from size.")
    n_head: int | None = Field(
        None, ge=1, le=1024,
        description="Attention heads per block; d_model must be divisible by it. Null takes it "
        "from size.",
    )
    d_model: int | None = Field(
        None, ge=1, le=65536, description="Residual stream width; null takes it from size.")
    context: int | None = Field(
        None, ge=1, le=1_048_576,
        description="Longest sequence in tokens (learned position table length); the data's "
        "window must not exceed it. Null: the size preset's, or the data's window when that "
        "is longer.",
    )
    vocab_size: int | None = Field(
        None, ge=2, le=10_000_000,
        description="Token vocabulary (embedding rows and logits); null takes it from the data. "
        "It may exceed the data's (e.g. 50304 for GPT-2, a multiple of 64 for speed).",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Dropout on the embeddings, attention weights and each residual branch.",
    )
    bias: bool = Field(
        True, description="Biases in the Linear and LayerNorm layers (GPT-2 has them).")
    rope: bool = Field(
        False,
        description="Rotary position embeddings on queries and keys instead of a learned "
        "position table (head dimension must be even).",
    )
    tie_weights: bool = Field(
        True, description="Share the LM head's weights with the token embedding (as GPT-2).")
    checkpoint_activations: bool = Field(
        False,
        description="Recompute each block's activations in the backward pass instead of "
        "keeping them: less memory, about a third more compute per training step.",
    )
