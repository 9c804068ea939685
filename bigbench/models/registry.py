"""The model registry (torch-free: builders are imported only when a model is built)."""

from bigbench.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register
