"""Datasets: a torch-free registry of argument specs, built on demand on the target device."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bigbench.data.specs  # noqa: F401  (registers the built-in datasets)
from bigbench.data.info import DataInfo
from bigbench.data.registry import DATASETS, register_dataset

if TYPE_CHECKING:
    import torch

    from bigbench.config.base import StrictModel
    from bigbench.data.tensors import Dataset

__all__ = ["DATASETS", "DataInfo", "build_data", "register_dataset"]


def build_data(config: StrictModel, device: torch.device) -> Dataset:
    """Build the dataset named by ``config.name`` with its splits on ``device``.

    Raises:
        DataError: when a file is missing or its arrays are unusable.
    """
    spec = DATASETS.get(config.name)  # type: ignore[attr-defined]
    return spec.load_builder()(config, device)
