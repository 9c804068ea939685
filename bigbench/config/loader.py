"""Load an experiment config: YAML file + ``--set`` overrides → validated ExperimentConfig."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from pydantic import ValidationError

from bigbench.config.problems import describe_errors
from bigbench.config.schema import ExperimentConfig, check_device_string
from bigbench.config.yaml_source import KeyPath, parse_yaml, read_config_text
from bigbench.errors import ConfigError

_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: A config as :func:`load_source` takes it: a YAML path, a mapping of keys or a validated
#: config (``bigbench.api`` names the same union without importing pydantic).
ConfigSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | ExperimentConfig


def load_config(path: Path | str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment config.

    Args:
        path: The YAML file.
        overrides: ``key.path=value`` strings; each value is parsed as YAML
            (``train.batch_size=128``, ``model.channels=[16,32]``).

    Returns:
        The validated, immutable config.

    Raises:
        ConfigError: listing every problem found, each with where it came from.
    """
    path = Path(path)
    parsed = parse_yaml(read_config_text(path), source=str(path))
    if parsed.data is None:
        raise ConfigError(f"{path}: config is empty; it needs at least 'model' and 'data'")
    if not isinstance(parsed.data, dict):
        raise ConfigError(
            f"{path}: config must be a mapping of keys (like 'model: ...'), "
            f"got a {type(parsed.data).__name__}"
        )
    where: dict[KeyPath, str] = {k: f"{path}:{line}" for k, line in parsed.lines.items()}
    where[()] = str(path)
    data = apply_overrides(parsed.data, overrides, where)
    return validate(data, where)


def load_source(source: ConfigSource, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """A config from a YAML path, a mapping of its keys or an ExperimentConfig, overridden.

    Raises:
        ConfigError: every problem found (a source of another type is one).
    """
    if isinstance(source, (str, os.PathLike)):
        return load_config(Path(source), overrides)
    if isinstance(source, ExperimentConfig):
        if not overrides:
            return source
        data, where = source.model_dump(mode="json"), {(): "config object"}
    elif isinstance(source, Mapping):
        data, where = dict(source), {(): "config dict"}
    else:
        raise ConfigError(f"config: expected a YAML path, a dict or an ExperimentConfig, got "
                          f"{type(source).__name__}")
    return validate(apply_overrides(data, overrides, where), where)


def device_problems(label: str, value: object) -> list[str]:
    """What is wrong with ``value`` as a device string (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``): nothing, or one line naming ``label``. Existence is checked at run time."""
    if not isinstance(value, str):
        return [f"{label}: give a device string (auto, cpu, cuda or cuda:N), not "
                f"{type(value).__name__} {value!r}"]
    try:
        check_device_string(value)
    except ValueError as exc:
        return [f"{label}: {exc}"]
    return []


def validate(data: Mapping[str, Any], where: Mapping[KeyPath, str]) -> ExperimentConfig:
    """Validate a raw mapping, reporting all problems at once."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(*describe_errors(exc, ExperimentConfig, data, where)) from None


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """Split ``a.b=c`` into ``(("a", "b"), parsed YAML value of c)``."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected key.path=value, e.g. train.batch_size=128")
    parts = tuple(key.split("."))
    bad = [p for p in parts if not _KEY_PART.match(p)]
    if bad:
        raise ConfigError(
            f"--set {text!r}: '{key}' is not a key path; use dotted names like train.batch_size"
        )
    parsed = parse_yaml(value_text, source=f"--set {key}")
    return parts, parsed.data


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], where: dict[KeyPath, str]
) -> dict[str, Any]:
    """Return a copy of ``data`` with each override applied in order; ``where`` is updated."""
    result = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"--set {text!r}: '{prefix}' is {yaml.safe_dump(child).strip()!r}, "
                    "not a mapping, so it has no sub-keys"
                )
            node = child
        node[parts[-1]] = value
        origin = f"--set {text}"
        for key in [k for k in where if k[: len(parts)] == parts]:
            where[key] = origin
        where[parts] = origin
    return result
