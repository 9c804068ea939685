"""The CNN family.

With default arguments this is the reference CNN: conv(1→32, 3×3, pad 1) → ReLU → maxpool 2 →
conv(32→64, 3×3, pad 1) → ReLU → maxpool 2 → linear(→100) → ReLU → linear(→10).
A common version of this network sizes the first linear layer for 64·28·28 inputs, which fails
at the first forward pass: two 2×2 pools shrink a 28×28 image to 7×7, so it takes
64·7·7 = 3136 inputs here (333,526 parameters in all).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models.build import resolve_num_classes
from bigbench.models.specs import CNNArgs


class ConvClassifier(nn.Module):
    """Conv → ReLU → pool blocks, then a fully connected head.

    Inputs are ``(N, C, *spatial)``; a missing channel dimension (``(N, H, W)`` for 2-D,
    ``(N, L)`` for 1-D) is added as a single channel.
    """

    def __init__(self, conv_dims: int, in_channels: int, spatial: tuple[int, ...],
                 channels: list[int], kernel_size: int, stride: int, padding: int, pool: int,
                 pool_type: str, hidden: list[int], dropout: float, num_classes: int) -> None:
        super().__init__()
        conv = nn.Conv1d if conv_dims == 1 else nn.Conv2d
        pooling = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d,
                   ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}[(pool_type, conv_dims)]
        self.conv_dims = conv_dims
        layers: list[nn.Module] = []
        size = spatial
        previous = in_channels
        for block, out_channels in enumerate(channels):
            layers += [conv(previous, out_channels, kernel_size, stride, padding), nn.ReLU()]
            size = tuple((s + 2 * padding - kernel_size) // stride + 1 for s in size)
            if pool > 1:
                layers.append(pooling(pool))
                size = tuple(s // pool for s in size)
            if min(size) < 1:
                raise ConfigError(
                    f"model: the input of spatial size {spatial} shrinks to nothing after conv "
                    f"block {block + 1}; use fewer model.channels, a smaller pool or more padding"
                )
            previous = out_channels
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        width = previous * math.prod(size)
        for units in hidden:
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            head += [nn.Linear(width, units), nn.ReLU()]
            width = units
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        if x.dim() == self.conv_dims + 1:
            x = x.unsqueeze(1)
        return self.classifier(self.features(x))


def build_cnn(args: CNNArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """Build a :class:`ConvClassifier` for ``data``; returns the module and resolved arguments."""
    if data.is_tokens:
        raise ConfigError("model 'cnn' needs real-valued inputs, but the data holds integer "
                          "tokens; use an rnn/lstm/gru model or float data")
    shape = data.sample_shape
    conv_dims = args.conv_dims
    if conv_dims == "auto":
        conv_dims = 1 if len(shape) == 1 else 2
    has_channels = len(shape) == conv_dims + 1
    if len(shape) not in (conv_dims, conv_dims + 1):
        raise ConfigError(
            f"model 'cnn' with conv_dims={conv_dims} needs samples of shape "
            f"{'(L,) or (C, L)' if conv_dims == 1 else '(H, W) or (C, H, W)'}, "
            f"but the data's samples have shape {tuple(shape)}"
        )
    data_channels = shape[0] if has_channels else 1
    in_channels = args.in_channels if args.in_channels is not None else data_channels
    if in_channels != data_channels:
        raise ConfigError(f"model.in_channels is {in_channels} but the data has "
                          f"{data_channels} channel(s); set it to {data_channels} or null")
    padding = args.padding if args.padding is not None else args.kernel_size // 2
    spatial = tuple(shape[1:] if has_channels else shape)
    resolved = {
        "conv_dims": conv_dims, "in_channels": in_channels, "channels": list(args.channels),
        "kernel_size": args.kernel_size, "stride": args.stride, "padding": padding,
        "pool": args.pool, "pool_type": args.pool_type, "hidden": list(args.hidden),
        "dropout": args.dropout, "num_classes": resolve_num_classes(args.num_classes, data),
    }
    return ConvClassifier(spatial=spatial, **resolved), resolved
