"""Process-wide runtime settings of a run, and the record of what is in force.

Each setting that changes how the model runs is a config key (``train.threads``,
``cudnn_benchmark``, ``matmul_precision``; channels_last, precision and compile belong to the
workload) and lands in run.json's ``performance`` section with the value actually used. The wins
that need no setting are always on: batches are sliced from tensors already on the device (no
DataLoader, no host-to-device copy), gradients are released with
``zero_grad(set_to_none=True)``, and the loss is read back once per log interval, not per step.
"""

from __future__ import annotations

from typing import Any

import torch

from bigbench.config.schema import TrainConfig


def apply_runtime_settings(train: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Set threads, cuDNN autotuning and fp32 matmul precision; returns what is now in force."""
    if train.threads is not None:
        torch.set_num_threads(train.threads)
    torch.set_float32_matmul_precision(train.matmul_precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = train.cudnn_benchmark
    return {"threads": torch.get_num_threads(),
            "cudnn_benchmark": train.cudnn_benchmark if device.type == "cuda" else None,
            **fp32_math(device),
            "input_pipeline": "device-side batches (index_select on device tensors)",
            "zero_grad_set_to_none": True, "loss_readback": "once per log interval"}


def fp32_math(device: torch.device) -> dict[str, Any]:
    """How fp32 matmuls and convolutions run now: TF32 tensor cores or true fp32.

    ``matmul_tf32`` follows ``torch.get_float32_matmul_precision()`` (``high``/``medium`` allow
    TF32); ``conv_tf32`` is cuDNN's own flag (on by default). Both are None off CUDA, where
    there are no TF32 units.
    """
    cuda = device.type == "cuda"
    return {"matmul_precision": torch.get_float32_matmul_precision(),
            "matmul_tf32": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
            "conv_tf32": torch.backends.cudnn.allow_tf32 if cuda else None}
