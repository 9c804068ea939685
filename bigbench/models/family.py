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


@dataclass(frozen=True)
class ModelFamily:
    """The capabilities shared by every model of one family.

    Attributes:
        name: Family name recorded in run.json (``cnn``, ``recurrent``).
        sequence_input: Inputs are sequences whose first sample dimension is time: a sample
            holds that many items (tokens or time steps), so throughput is also reported per
            item (tokens/s).
        channels_last_when: Given a model's resolved arguments, whether its inputs are 2-D
            convolution inputs that can run in the channels_last memory format.
        cudnn_layers: Its layers run as cuDNN kernels on CUDA (recurrent layers), so their
            fp32 math follows cuDNN's TF32 switch rather than the matmul precision.
    """

    name: str
    sequence_input: bool = False
    cudnn_layers: bool = False
    channels_last_when: Callable[[Mapping[str, Any]], bool] = _never

    def supports_channels_last(self, args: Mapping[str, Any]) -> bool:
        """Whether a model of this family with resolved ``args`` can run channels_last."""
        return self.channels_last_when(args)


#: Convolutional classifiers: channels_last applies to their 2-D convolutions.
CNN = ModelFamily("cnn", channels_last_when=lambda args: args.get("conv_dims") == 2)
#: Recurrent sequence models (RNN, LSTM, GRU).
RECURRENT = ModelFamily("recurrent", sequence_input=True, cudnn_layers=True)
