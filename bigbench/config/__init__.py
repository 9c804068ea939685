"""Experiment configs: schema, YAML loading with line numbers, ``--set`` overrides.

Owns the validated, immutable :class:`ExperimentConfig`. Imports the model and dataset specs
(which sit below it); nothing under ``models/``, ``data/`` or ``measuring/`` imports this package.
"""

from __future__ import annotations

from bigbench.config.loader import load_config, parse_override
from bigbench.config.schema import ExperimentConfig, check_device_string

__all__ = ["ExperimentConfig", "check_device_string", "load_config", "parse_override"]
