"""Datasets: a torch-free registry of argument specs, built on demand on the target device.

Owns: dataset specs, the generated and file-backed datasets, in-memory splits and the seeded,
shard-aware batcher (``tensors``). Must never import: config, measure, workloads, bench, CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bigbench.data.specs  # noqa: F401  (registers the built-in datasets)
from bigbench.data.info import DataInfo
from bigbench.data.registry import DATASETS, register_dataset

if TYPE_CHECKING:
    import torch

    from bigbench.data.tensors import Dataset
    from bigbench.strict import StrictModel

__all__ = ["DATASETS", "DataInfo", "build_data", "register_dataset"]


def build_data(config: StrictModel, device: torch.device) -> Dataset:
    """Build the dataset named by ``config.name`` with its splits on ``device``.

    Raises:
        DataError: when a file is missing or its arrays are unusable.
    """
    spec = DATASETS.get(config.name)  # type: ignore[attr-defined]
    _check_generated_size(config, device)
    return spec.load_builder()(config, device)


def _check_generated_size(config: StrictModel, device: torch.device) -> None:
    """Generated datasets are sized by the config: refuse one that cannot fit in memory."""
    import math

    from bigbench.memory_budget import check_fits

    name = config.name  # type: ignore[attr-defined]
    if name == "corpus":
        samples = config.size + config.test_size  # type: ignore[attr-defined]
        # int64 windows of T + 1 tokens while generating, then x and y of T tokens each.
        length = config.context  # type: ignore[attr-defined]
        check_fits(f"data: {samples:,} corpus windows of {length} tokens",
                   samples * (3 * length + 1) * 8, device,
                   "lower data.size, data.test_size or data.context")
        return
    values = {"synthetic": lambda c: math.prod(c.shape), "digits": lambda c: 28 * 28,
              "tokens": lambda c: c.seq_len}
    if name not in values:
        return
    samples = config.size + config.test_size  # type: ignore[attr-defined]
    # float32 inputs or int64 tokens, plus int64 labels; generation briefly holds a copy.
    per_value = 8 if name == "tokens" or getattr(config, "vocab_size", None) else 4
    needed = 2 * samples * (values[name](config) * per_value + 8)
    check_fits(f"data: {samples:,} {name} samples", needed, device,
               "lower data.size or data.test_size")
