"""What this installation offers: registered models, datasets, and this machine's devices.

The rows ``bigbench models``, ``bigbench data`` and ``bigbench devices`` print (as tables, or
as these very dicts with ``--json``) and :func:`bigbench.list_models` and friends return. Plain
JSON-ready data, so the command and the API cannot differ.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


def model_catalog() -> list[dict[str, Any]]:
    """Each registered model: ``name``, ``family``, ``params`` (on its reference input),
    ``reference_input``, ``summary`` and ``defaults``; gpt also has ``sizes`` (every size
    preset with its geometry and parameter count at GPT-2's vocabulary)."""
    import torch

    from bigbench.models import MODELS, build_model

    rows = []
    for spec in MODELS:
        reference = spec.extras["reference_data"]
        # gpt is counted on the meta device, which allocates nothing (its 1.3b preset would
        # take 5 GB). The small models are built for real: initialising an nn.Embedding on
        # meta imports torch._dynamo, a second this listing need not spend.
        with torch.device("meta") if spec.name == "gpt" else contextlib.nullcontext():
            built = build_model(spec.config_class(name=spec.name), reference)
            row = {"name": spec.name, "family": built.family.name, "params": built.params,
                   "reference_input": list(reference.sample_shape),
                   "summary": spec.summary, "defaults": spec.defaults()}
            if spec.name == "gpt":
                row["sizes"] = _gpt_sizes(spec, reference)
        rows.append(row)
    return rows


def _gpt_sizes(spec: Any, reference: Any) -> list[dict[str, Any]]:
    """Each gpt size preset with its parameter count on the reference vocabulary."""
    from dataclasses import replace

    from bigbench.models import build_model
    from bigbench.models.specs import GPT_SIZES

    sizes = []
    for size, (n_layer, n_head, d_model, context) in GPT_SIZES.items():
        # The reference window fits the smallest preset; each preset is counted at its own.
        data = replace(reference, sample_shape=(context,))
        built = build_model(spec.config_class(name=spec.name, size=size), data)
        sizes.append({"name": spec.name, "size": size, "n_layer": n_layer, "n_head": n_head,
                      "d_model": d_model, "context": context, "params": built.params})
    return sizes


def dataset_catalog() -> list[dict[str, Any]]:
    """Each registered dataset: ``name``, ``summary`` and ``arguments`` (per argument its
    ``default``, whether it is ``required``, and its ``description``)."""
    from bigbench.data import DATASETS

    rows = []
    for spec in DATASETS:
        fields = spec.config_class.model_fields
        arguments = {k: {"default": None if f.is_required() else f.default,
                         "required": f.is_required(), "description": f.description}
                     for k, f in fields.items() if k != "name"}
        rows.append({"name": spec.name, "summary": spec.summary, "arguments": arguments})
    return rows


def device_report() -> dict[str, Any]:
    """This machine: ``cpu`` (name, logical CPUs, torch's threads), the ``torch`` version,
    ``cuda_available``, ``cuda_build``, ``cuda_devices`` and whether ``nvml`` answers (with
    the reason when it does not)."""
    import torch

    from bigbench.devices import cpu_model_name, cuda_devices
    from bigbench.measuring.energy.nvml import probe

    return {
        "cpu": {"name": cpu_model_name(), "logical_cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_build": torch.version.cuda,
        "cuda_devices": [d.as_dict() for d in cuda_devices()],
        "nvml": probe(),
    }
