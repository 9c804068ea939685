"""What a model family offers, as typed facts instead of string comparisons (torch-free).

A family is declared once, next to its registered models; workloads, tasks and FLOP accounting
ask it questions (``family.sequence_input``, ``family.supports_channels_last(args)``) instead of
comparing family names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _never(args: Mapping[str, Any]) -> bool:
    return False


def _unknown(args: Mapping[str, Any], batch: int, window: int, value_bytes: int,
             training: bool = True) -> int:
    return 0


def transformer_activation_bytes(args: Mapping[str, Any], batch: int, window: int,
                                 value_bytes: int, training: bool = True) -> int:
    """Activations a decoder-only transformer keeps for the backward pass, bytes (an estimate).

    Per layer and token about 17·d_model values (Korthikanti et al. 2022, "Reducing Activation
    Recomputation in Large Transformer Models": 34·s·b·h bytes in 16-bit, with fused attention
    so no s² score matrix is kept); with activation checkpointing only each block's input.
    With checkpointing the block being recomputed holds its full activations once more.
    The logits and their softmax gradient add about 3 fp32 values per token and vocabulary
    entry. Inference (``training=False``) keeps about two layers' activations and the logits.
    """
    tokens = batch * window
    d_model, layers, vocab = args["d_model"], args["n_layer"], args["vocab_size"]
    full_layer = 17 * d_model * value_bytes
    if not training:
        return tokens * (2 * full_layer + vocab * 4)
    if args.get("checkpoint_activations"):
        return tokens * (layers * d_model * value_bytes + full_layer + 3 * vocab * 4)
    return tokens * (layers * full_layer + 3 * vocab * 4)


@dataclass(frozen=True)
class ModelFamily:
    """The capabilities shared by every model of one family.

    Attributes:
        name: Family name recorded in run.json (``cnn``, ``recurrent``, ``transformer``).
        sequence_input: Inputs are sequences whose first sample dimension is time: a sample
            holds that many items (tokens or time steps), so throughput is also reported per
            item (tokens/s).
        channels_last_when: Given a model's resolved arguments, whether its inputs are 2-D
            convolution inputs that can run in the channels_last memory format.
        cudnn_layers: Its layers run as cuDNN kernels on CUDA (recurrent layers), so their
            fp32 math follows cuDNN's TF32 switch rather than the matmul precision.
        kv_cache: Its language models decode with a KV cache (``make_cache``), so inference is
            benchmarked as prefill and decode.
        activation_bytes: Given resolved args, batch size, window length, bytes per value and
            ``training``, the activation memory of a step (0: not estimated; the family's
            models are small beside their data).
    """

    name: str
    sequence_input: bool = False
    cudnn_layers: bool = False
    kv_cache: bool = False
    channels_last_when: Callable[[Mapping[str, Any]], bool] = _never
    activation_bytes: Callable[..., int] = _unknown

    def supports_channels_last(self, args: Mapping[str, Any]) -> bool:
        """Whether a model of this family with resolved ``args`` can run channels_last."""
        return self.channels_last_when(args)


#: Convolutional classifiers: channels_last applies to their 2-D convolutions.
CNN = ModelFamily("cnn", channels_last_when=lambda args: args.get("conv_dims") == 2)
#: Recurrent sequence models (RNN, LSTM, GRU).
RECURRENT = ModelFamily("recurrent", sequence_input=True, cudnn_layers=True)
#: Transformer language models (gpt): token sequences, no cuDNN recurrent kernels.
TRANSFORMER = ModelFamily("transformer", sequence_input=True, kv_cache=True,
                          activation_bytes=transformer_activation_bytes)
