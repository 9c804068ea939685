"""Shell completion of option values: config keys after ``--set``, model names, devices.

Every function here runs on each Tab press, so it stays cheap: the config schema and the
registries are pydantic models and names (no torch), read once and cached.
"""

from __future__ import annotations

import functools
import os
import types
import typing
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any

#: What ``--device`` accepts besides ``cuda:N`` (see ``check_device_string``).
DEVICES = ("auto", "cpu", "cuda")


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a Union / Optional annotation (itself when it is not one)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_section(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(models: Iterable[Any], prefix: str,
          keys: dict[str, tuple[str, list[Any]]]) -> None:
    """Collect ``key -> (description, annotations)`` for every leaf of these config sections.

    A section typed as a union (``model``, ``data``: one class per registered name) or as an
    optional section (``bench``) contributes the keys of every alternative.
    """
    for model in models:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            members = [m for m in _members(field.annotation) if m is not type(None)]
            sections = [m for m in members if _is_section(m)]
            if sections:
                _walk(sections, f"{key}.", keys)
                continue
            description, annotations = keys.get(key, (field.description or "", []))
            keys[key] = (description, annotations + members)


@functools.cache
def config_keys() -> dict[str, tuple[str, list[Any]]]:
    """Every config key ``--set`` accepts, with its description and value annotations."""
    from bigbench.config.schema import ExperimentConfig

    keys: dict[str, tuple[str, list[Any]]] = {}
    _walk([ExperimentConfig], "", keys)
    return keys


def _short(text: str, limit: int = 70) -> str:
    """The first sentence of a description, cut to ``limit`` characters."""
    text = " ".join(text.split())
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[:limit - 1] + "…"


def _values(key: str) -> list[str]:
    """The values worth offering after ``KEY=``: choices, booleans, devices."""
    if key == "device":
        return device_names()
    entry = config_keys().get(key)
    if entry is None:
        return []
    values: list[str] = []
    for annotation in entry[1]:
        if typing.get_origin(annotation) is typing.Literal:
            values += [str(v) for v in typing.get_args(annotation)]
        elif annotation is bool:
            values += ["true", "false"]
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            values += [str(member.value) for member in annotation]
    return list(dict.fromkeys(values))


def complete_set(incomplete: str) -> list[tuple[str, str]]:
    """``--set``: config keys as ``key=`` (with their meaning), then a key's known values."""
    key, equals, value = incomplete.partition("=")
    if equals:
        return [(f"{key}={v}", "") for v in _values(key) if v.startswith(value)]
    return [(f"{k}=", _short(description)) for k, (description, _) in config_keys().items()
            if k.startswith(incomplete)]


def _complete_list(incomplete: str, names: Iterable[str]) -> list[str]:
    """Complete the last item of a comma-separated list, skipping items already given."""
    head, comma, last = incomplete.rpartition(",")
    given = set(head.split(",")) if comma else set()
    return [f"{head}{comma}{name}" for name in names
            if name.startswith(last) and name not in given]


def model_names() -> list[str]:
    """Registered model names (the registry is torch-free)."""
    import bigbench.models.specs  # noqa: F401  (registers the built-in models)
    from bigbench.models.registry import MODELS

    return list(MODELS.names())


def complete_models(incomplete: str) -> list[str]:
    """``--models``: model names; in ``cnn,g`` the last item is completed (``cnn,gpt``)."""
    return _complete_list(incomplete, model_names())


def complete_precisions(incomplete: str) -> list[str]:
    """``--precision``: fp32, bf16, fp16, comma-separated."""
    from bigbench.benchmark.matrix import PRECISIONS

    return _complete_list(incomplete, PRECISIONS)


def complete_modes(incomplete: str) -> list[str]:
    """``--mode``: train, infer, comma-separated."""
    from bigbench.benchmark.matrix import MODES

    return _complete_list(incomplete, MODES)


def _gpu_count() -> int:
    """GPUs this process may see, without importing torch or loading a driver library."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
    except OSError:
        return 0


def device_names() -> list[str]:
    """auto, cpu, cuda and cuda:N for each visible GPU (cuda:0 at least)."""
    return [*DEVICES, *(f"cuda:{i}" for i in range(max(_gpu_count(), 1)))]


def complete_device(incomplete: str) -> list[str]:
    """``--device``: auto, cpu, cuda, cuda:0…"""
    return [d for d in device_names() if d.startswith(incomplete)]
