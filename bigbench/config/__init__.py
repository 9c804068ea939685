"""Experiment configs: schema, YAML loading with line numbers, ``--set`` overrides.

The names below are loaded on first use: the model and dataset specs import
``bigbench.config.base`` while this package is still initialising, and the schema in turn
needs those specs registered.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExperimentConfig", "check_device_string", "load_config", "parse_override"]


def __getattr__(name: str) -> Any:
    if name in ("load_config", "parse_override"):
        from bigbench.config import loader

        return getattr(loader, name)
    if name in ("ExperimentConfig", "check_device_string"):
        from bigbench.config import schema

        return getattr(schema, name)
    raise AttributeError(name)
