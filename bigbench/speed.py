"""How a training run is made fast, and the record of what was chosen.

Each setting that changes how the model runs is a config key (``train.channels_last``,
``precision``, ``compile``, ``threads``, ``cudnn_benchmark``) and lands in run.json's
``performance`` section with the value actually used. The wins that need no setting are always
on: batches are sliced from tensors already on the device (no DataLoader, no host-to-device
copy), gradients are released with ``zero_grad(set_to_none=True)``, and the loss is read back
once per log interval, not per step.
"""

from __future__ import annotations

from typing import Any

import torch

from bigbench.config.schema import TrainConfig


def use_channels_last(train: TrainConfig, family: str, model_args: dict[str, Any]) -> bool:
    """Whether to run in channels_last: explicit, or 'auto' for 2-D CNNs."""
    if train.channels_last == "auto":
        return family == "cnn" and model_args.get("conv_dims") == 2
    return bool(train.channels_last)


def apply_runtime_settings(train: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Set threads and cuDNN autotuning; returns what is now in force."""
    if train.threads is not None:
        torch.set_num_threads(train.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = train.cudnn_benchmark
    return {"threads": torch.get_num_threads(),
            "cudnn_benchmark": train.cudnn_benchmark if device.type == "cuda" else None,
            "input_pipeline": "device-side batches (index_select on device tensors)",
            "zero_grad_set_to_none": True, "loss_readback": "once per log interval"}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for fp32 (no autocast)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
