"""Models: a torch-free registry of argument specs, built on demand.

Owns: model argument specs (``specs``), what each family offers (``family``), building a
registered model for a dataset's shape (``build``) and the modules themselves (``cnn``,
``recurrent``). Must never import: config, measure, workloads, bench, CLI.
"""

import bigbench.models.specs  # noqa: F401  (registers the built-in models)
from bigbench.models.build import BuiltModel, build_model
from bigbench.models.registry import MODELS, register_model

__all__ = ["MODELS", "BuiltModel", "build_model", "register_model"]
