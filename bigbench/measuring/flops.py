"""FLOPs per sample of a module, counted without memory or compute.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` while a step runs on a
copy of the model whose parameters live on the *meta* device: no memory, no real compute, and
the recurrent layers decompose into the matrix multiplies the counter knows (on CPU, mkldnn's
LSTM kernel is invisible to it, and so is cuDNN's on CUDA). A matmul of (M×K)·(K×N) counts
2·M·N·K; elementwise ops count 0.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers live on the meta device.

    No weight is copied (each tensor is replaced by an empty meta twin through deepcopy's
    memo), so counting a multi-GB model costs no memory, and a module modified in memory
    (pruned, resized) is counted as it is, not as its registry default.
    """
    memo: dict[int, Any] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        twin = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(twin, requires_grad=tensor.requires_grad) \
            if isinstance(tensor, nn.Parameter) else twin
    return copy.deepcopy(module, memo)


def count_flops(run: Callable[[], object], samples: int) -> tuple[int, int]:
    """FLOPs per sample of everything ``run()`` executes (give it meta tensors: free).

    Args:
        run: Executes the work once, e.g. one training step on a meta batch.
        samples: Samples that work processes (the totals are divided by it).

    Returns:
        All FLOPs per sample, and those of convolutions (forward and backward) among them:
        on CUDA, convolutions run in cuDNN, whose TF32 switch is not the matmuls' one.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    by_op = counter.get_flop_counts().get("Global", {})
    convolution = sum(n for op, n in by_op.items() if "convolution" in str(op))
    return counter.get_total_flops() // samples, convolution // samples


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
