"""Random data generated directly on the target device (for throughput, not accuracy)."""

from __future__ import annotations

import torch

from bigbench.data.specs import SyntheticArgs
from bigbench.data.tensors import Dataset, Split, make_info


def _random_split(args: SyntheticArgs, size: int, generator: torch.Generator,
                  device: torch.device) -> Split:
    shape = (size, *args.shape)
    if args.vocab_size is not None:
        x = torch.randint(0, args.vocab_size, shape, generator=generator, device=device)
    else:
        x = torch.rand(shape, generator=generator, device=device)
    y = torch.randint(0, args.num_classes, (size,), generator=generator, device=device)
    return Split(x, y)


def build_synthetic(args: SyntheticArgs, device: torch.device) -> Dataset:
    """Uniform random inputs in [0, 1) (or tokens) and uniform random labels."""
    generator = torch.Generator(device=device).manual_seed(args.seed)
    train = _random_split(args, args.size, generator, device)
    test = _random_split(args, args.test_size, generator, device) if args.test_size else None
    return Dataset(train, test, make_info(train, test, args.num_classes, args.vocab_size))
