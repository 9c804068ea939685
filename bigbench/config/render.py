"""Render a validated config back to YAML (``config show`` and the run directory's copy)."""

from __future__ import annotations

from typing import Any

import yaml

from bigbench.config.schema import ExperimentConfig


def config_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain data, keys in schema order, every default spelled out
    (what ``bigbench config show`` prints as YAML and :func:`bigbench.show_config` returns)."""
    return config.model_dump(mode="json")


def config_yaml(config: ExperimentConfig) -> str:
    """:func:`config_dict` as YAML."""
    return yaml.safe_dump(config_dict(config), sort_keys=False, default_flow_style=None,
                          width=100)
