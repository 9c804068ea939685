"""Numeric precision: the autocast dtype and the loss-scaling rule, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """How a step's forward and loss run.

    Attributes:
        name: ``fp32``, ``bf16`` or ``fp16``.
    """

    name: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for fp32 (autocast off)."""
        import torch

        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    def needs_grad_scaler(self, device: torch.device) -> bool:
        """fp16 gradients underflow without loss scaling on CUDA; bf16 has fp32's range."""
        return self.name == "fp16" and device.type == "cuda"

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """A GradScaler where :meth:`needs_grad_scaler`, else None."""
        if not self.needs_grad_scaler(device):
            return None
        import torch

        return torch.amp.GradScaler(device.type)
