"""Arguments of every registered model, with their documented defaults.

This module is torch-free; it feeds the config schema and ``bigbench models``. The defaults
reproduce the reference CNN and RNN exactly (with their bugs fixed, see cnn.py / recurrent.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bigbench.data.info import DataInfo
from bigbench.models.family import CNN, RECURRENT
from bigbench.models.registry import register_model
from bigbench.strict import StrictModel

# What `bigbench models` builds each model for when it reports default parameter counts.
MNIST_LIKE = DataInfo(sample_shape=(1, 28, 28), num_classes=10)
REFERENCE_TOKENS = DataInfo(sample_shape=(20,), num_classes=2, vocab_size=10)


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
    """Optional embedding → recurrent layers → linear head on the last time step."""

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
        None, ge=2, le=1_000_000, description="Output classes; null takes them from the data."
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
