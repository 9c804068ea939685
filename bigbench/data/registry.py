"""The dataset registry (torch-free: builders are imported only when data is built)."""

from bigbench.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register
