"""FLOPs per sample, achieved FLOP/s and model FLOPs utilisation (MFU).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on a copy of the model built
on the *meta* device: no memory, no real compute, and the recurrent layers decompose into the
matrix multiplies the counter knows (on CPU, mkldnn's LSTM kernel is invisible to it, and so is
cuDNN's on CUDA). A matmul of (M×K)·(K×N) counts 2·M·N·K; elementwise ops count 0.
"""

from __future__ import annotations

from typing import Any

import torch

from bigbench.data.info import DataInfo

_BATCH = 2  # FLOPs scale linearly with the batch; two samples catch batch-dependent shapes


class MeasurementError(RuntimeError):
    """A figure came out impossible (e.g. MFU above 1): a bug, never shown to users as data."""


def count_flops(model_config: Any, data: DataInfo) -> dict[str, Any]:
    """Forward and training-step FLOPs per sample of the model ``model_config`` builds.

    The training step is counted as forward + backward (input and weight gradients); the
    optimizer's elementwise update is not a matmul and counts 0.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from bigbench.models import build_model

    with torch.device("meta"):
        module = build_model(model_config, data).module
        if data.is_tokens:
            inputs = torch.randint(0, data.vocab_size or 1, (_BATCH, *data.sample_shape))
        else:
            inputs = torch.randn(_BATCH, *data.sample_shape)
        labels = torch.zeros(_BATCH, dtype=torch.long)
        with FlopCounterMode(display=False) as forward:
            module(inputs)
        with FlopCounterMode(display=False) as step:
            loss = torch.nn.functional.cross_entropy(module(inputs), labels)
            loss.backward()
    return {"forward_per_sample": forward.get_total_flops() // _BATCH,
            "train_step_per_sample": step.get_total_flops() // _BATCH,
            "method": "flop_counter_meta"}


def recurrent_forward_flops(cell: str, input_size: int, hidden: int, layers: int,
                            directions: int, steps: int) -> int:
    """Analytic matmul FLOPs of a recurrent stack per sample (for cross-checking the counter).

    Each step of each layer and direction multiplies the input (width ``input_size`` for the
    first layer, ``hidden * directions`` after) and the previous hidden state by the weights of
    every gate: 2·G·H·(I + H) FLOPs with G = 1 (RNN), 3 (GRU), 4 (LSTM).
    """
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    total = 0
    width = input_size
    for _ in range(layers):
        total += directions * steps * 2 * gates * hidden * (width + hidden)
        width = hidden * directions
    return total
