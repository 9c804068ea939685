"""In-memory datasets held on the device, and their batching.

Batches are slices of device tensors taken through a seeded permutation, so a training step does
no per-sample Python work and no host-to-device copy. The permutation of epoch ``e`` depends only
on ``(seed, e)``: the data order is reproducible and a run can be resumed at any step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from bigbench.data.info import DataInfo


@dataclass
class Split:
    """Inputs ``x`` (N, *sample_shape) and integer labels ``y`` (N,), on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> Split:
        """Move both tensors to ``device``."""
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    """A train split, an optional test split and their shape facts."""

    train: Split
    test: Split | None
    info: DataInfo


def make_info(train: Split, test: Split | None, num_classes: int,
              vocab_size: int | None) -> DataInfo:
    """Describe two splits."""
    return DataInfo(
        sample_shape=tuple(train.x.shape[1:]),
        num_classes=num_classes,
        vocab_size=vocab_size,
        train_size=len(train),
        test_size=len(test) if test is not None else 0,
    )


class Batcher:
    """Shuffled fixed-size training batches of one split, or of one rank's shard of it.

    Every rank draws the same seeded permutation of the whole split each epoch and takes every
    ``world_size``-th sample of it from position ``rank``, cut to the same length on every
    rank, so the shards are disjoint and every rank runs the same number of steps. With one
    rank the shard is the whole permutation.

    Args:
        split: The training split (already on the device).
        batch_size: Samples per batch (per rank).
        drop_last: Skip the final incomplete batch of each epoch.
        seed: Seed of the per-epoch permutations.
        rank: This process's rank; world_size: the number of ranks.
    """

    def __init__(self, split: Split, batch_size: int, drop_last: bool, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.split = split
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shard_size = len(split) // world_size
        n = self.shard_size
        self.steps_per_epoch = n // batch_size if drop_last else -(-n // batch_size)

    def permutation(self, epoch: int) -> torch.Tensor:
        """This rank's sample order in ``epoch``; drawn on the CPU so every device agrees."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.split), generator=generator)
        if self.world_size > 1:
            order = order[self.rank::self.world_size][:self.shard_size]
        return order.to(self.split.x.device)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches of ``epoch``, beginning at ``start_step``."""
        order = self.permutation(epoch)
        x, y, size = self.split.x, self.split.y, self.batch_size
        for step in range(start_step, self.steps_per_epoch):
            index = order[step * size:(step + 1) * size]
            yield x.index_select(0, index), y.index_select(0, index)


def sequential_batches(split: Split, batch_size: int
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every sample once, in order (for evaluation)."""
    for start in range(0, len(split), batch_size):
        yield split.x[start:start + batch_size], split.y[start:start + batch_size]
