"""Variant folders: the weights of a model variant and the recipe that rebuilds it.

``variants/<name>/`` holds ``variant.json`` (schema ``bigbench.variant/1``: the registry model
and its arguments, the data shape it was built for, the recipe) and ``model.safetensors``.
Every format loads without executing code:

- ``safetensors``: plain float weights (pruned, structurally pruned, distilled, the base).
- ``safetensors+torchao``: torchao's quantized tensors flattened into int8/int4 data and scales
  by torchao's safetensors support; loading rebuilds only allow-listed tensor classes.
- ``safetensors+pt2e``: the int8 weights, scales and biases of a statically quantized graph plus
  its calibrated activation ranges; loading re-traces the registry model, applies the ranges
  and loads the int8 state (no calibration data needed, bit-identical outputs).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bigbench.checkpoint import CheckpointError
from bigbench.data.info import DataInfo
from bigbench.models import BuiltModel, build_model
from bigbench.models.build import config_from_args
from bigbench.results import atomic_write_text

VARIANT_SCHEMA = "bigbench.variant/1"
VARIANT_FILE = "variant.json"
WEIGHTS_FILE = "model.safetensors"
#: Prefix of the activation ranges stored beside a pt2e graph's state.
RANGES_PREFIX = "calibration."


@dataclass
class LoadedVariant:
    """A model rebuilt from a variant folder (or a training run).

    Attributes:
        built: The model (its module quantized where the recipe says so).
        info: The data shape it was built for.
        recipe: How it was made (``{"kind": "base"}`` for a training run's weights).
        needs_compile: The module runs as int8 only under ``torch.compile`` (pt2e).
        float_twin: A quantized model's float structure (FLOPs are counted on it: the same
            multiply-adds); None for float models.
    """

    built: BuiltModel
    info: DataInfo
    recipe: dict[str, Any]
    needs_compile: bool = False
    float_twin: BuiltModel | None = None


def example_input(info: DataInfo, batch: int = 2) -> torch.Tensor:
    """A small input of the data's shape (tokens or floats), for tracing."""
    shape = (batch, *info.sample_shape)
    if info.is_tokens:
        return torch.zeros(shape, dtype=torch.long)
    return torch.zeros(shape)


def save_variant(folder: Path, name: str, built: BuiltModel, info: DataInfo,
                 recipe: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None,
                 metadata: dict[str, str] | None = None, weights_format: str = "safetensors"
                 ) -> int:
    """Write ``folder`` (created) and return the size of its weights file in bytes.

    ``tensors``/``metadata`` override the module's own state dict (quantized formats).
    """
    from bigbench.checkpoint import save_weights

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_FILE
    if tensors is None:
        save_weights(built.module, path)
    else:
        _save_tensors(path, tensors, metadata or {})
    document = {"schema": VARIANT_SCHEMA, "name": name, "model": built.args,
                "data": _info_dict(info), "recipe": recipe, "weights": WEIGHTS_FILE,
                "format": weights_format}
    atomic_write_text(folder / VARIANT_FILE, json.dumps(document, indent=2) + "\n")
    return path.stat().st_size


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    import os
    import tempfile

    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
                  metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _info_dict(info: DataInfo) -> dict[str, Any]:
    out = asdict(info)
    out["sample_shape"] = list(info.sample_shape)
    return out


def info_from(data: dict[str, Any]) -> DataInfo:
    fields = {k: v for k, v in data.items() if k in DataInfo.__dataclass_fields__}
    fields["sample_shape"] = tuple(fields.get("sample_shape", ()))
    return DataInfo(**fields)


def is_variant(folder: Path) -> bool:
    """Whether ``folder`` is a variant folder (it holds variant.json)."""
    return (folder / VARIANT_FILE).is_file()


def read_variant_document(folder: Path) -> dict[str, Any]:
    """variant.json of a folder, checked to hold what loading needs.

    Raises:
        CheckpointError: missing, unreadable, of another schema, or lacking a key.
    """
    try:
        document = json.loads((folder / VARIANT_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: cannot read {VARIANT_FILE} ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != VARIANT_SCHEMA:
        raise CheckpointError(f"{folder / VARIANT_FILE}: not a {VARIANT_SCHEMA} document")
    missing = [k for k in ("model", "data", "recipe") if not isinstance(document.get(k), dict)]
    if not missing and "name" not in document["model"]:
        missing = ["model.name"]
    if missing:
        raise CheckpointError(f"{folder / VARIANT_FILE}: damaged (no {', '.join(missing)}); "
                              "rebuild it with bigbench optimize")
    return document


def load_variant(folder: Path) -> LoadedVariant:
    """Rebuild the model saved in a variant folder (on the CPU).

    Raises:
        CheckpointError: a missing or unreadable variant.json or weights file.
    """
    document = read_variant_document(folder)
    weights = folder / document.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise CheckpointError(f"{folder}: the weights file {weights.name} is missing")
    info = info_from(document["data"])
    built = build_model(config_from_args(document["model"]), info)
    recipe, kind = document["recipe"], document.get("format", "safetensors")
    tensors, metadata = _read_tensors(weights)
    if kind == "safetensors":
        from bigbench.checkpoint import load_weights

        load_weights(built.module, weights)
    elif kind == "safetensors+torchao":
        from bigbench.optimize.quantize import load_quantized_state

        twin = build_model(config_from_args(document["model"]), info)
        load_quantized_state(built.module, tensors, metadata)
        return LoadedVariant(built, info, recipe, float_twin=twin)
    elif kind == "safetensors+pt2e":
        from bigbench.optimize.quantize import rebuild_static

        ranges = {k[len(RANGES_PREFIX):]: v for k, v in tensors.items()
                  if k.startswith(RANGES_PREFIX)}
        state = {k: v for k, v in tensors.items() if not k.startswith(RANGES_PREFIX)}
        twin = build_model(config_from_args(document["model"]), info)
        quantized = rebuild_static(twin.module, example_input(info), ranges, state)
        return LoadedVariant(dataclasses.replace(built, module=quantized), info, recipe,
                             needs_compile=True, float_twin=twin)
    else:
        raise CheckpointError(f"{folder / VARIANT_FILE}: unknown weights format '{kind}'")
    built.module.eval()
    return LoadedVariant(built, info, recipe)


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_source(folder: Path) -> LoadedVariant:
    """The model saved in a variant folder or in a training run's directory (on the CPU).

    A run directory supplies its config.yaml (the model and the data it was built for) and
    model.safetensors.

    Raises:
        CheckpointError: neither a variant folder nor a run directory with weights.
    """
    if is_variant(folder):
        return load_variant(folder)
    if not (folder / "config.yaml").is_file():
        raise CheckpointError(f"{folder}: not a run directory (no config.yaml) and not a "
                              f"variant folder (no {VARIANT_FILE})")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder}: the run has no model.safetensors (it was "
                              "interrupted early or ran with output.save_weights: false)")
    from bigbench.checkpoint import load_weights
    from bigbench.config import load_config
    from bigbench.data import build_data

    config = load_config(folder / "config.yaml")
    info = build_data(config.data, torch.device("cpu")).info
    built = build_model(config.model, info)
    load_weights(built.module, weights)
    built.module.eval()
    return LoadedVariant(built, info, {"kind": "base", "run": str(folder)})
