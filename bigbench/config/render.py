"""Render a validated config back to YAML (``config show`` and the run directory's copy)."""

from __future__ import annotations

import yaml

from bigbench.config.schema import ExperimentConfig


def config_yaml(config: ExperimentConfig) -> str:
    """The resolved config as YAML, keys in schema order, every default spelled out."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False,
                          default_flow_style=None, width=100)
