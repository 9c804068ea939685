"""Quantization recipes on torchao, PyTorch's maintained quantization library.

- ``int8_dynamic``: int8 weights; activations quantized per batch at run time (``quantize_``
  with ``Int8DynamicActivationInt8WeightConfig``). torchao swaps the weights of ``nn.Linear``
  layers; convolutions and recurrent layers stay in float (torchao has no int8 kernel for them
  in this mode), and the variant reports which layers were quantized.
- ``int8_static``: int8 weights *and* activations, with activation ranges calibrated on
  training batches beforehand — torchao's PT2E flow (``torch.export`` → ``prepare_pt2e`` with
  the x86 inductor quantizer → calibration → ``convert_pt2e``). The converted graph holds
  quantize/dequantize pairs that only become int8 kernels when inductor compiles it, so the
  variant runs under ``torch.compile`` (x86 CPUs).
- ``int8_weight_only`` / ``int4_weight_only``: weight-only (``Int8WeightOnlyConfig`` /
  ``Int4WeightOnlyConfig``); int4 needs CUDA.

``unsupported_reason`` says up front what a device cannot run, so that variant is ``skipped``
with the reason instead of failing halfway.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Methods that swap weights in place through ``quantize_`` (the module stays eager).
IN_PLACE = ("int8_dynamic", "int8_weight_only", "int4_weight_only")


@dataclass
class Quantized:
    """A quantized module and what was (and was not) quantized.

    Attributes:
        module: The module to run (``int8_static``: the converted graph, to be compiled).
        quantized_layers: Qualified names of the layers holding int8/int4 weights.
        float_layers: Layers with weights left in float, each with why.
        needs_compile: The module only runs as int8 under ``torch.compile``.
    """

    module: nn.Module
    quantized_layers: list[str]
    float_layers: dict[str, str] = field(default_factory=dict)
    needs_compile: bool = False


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute torchao's import chatter and torch's pytree deprecation notices meanwhile.

    On import torchao tries to load its CUDA-only kernel libraries and logs a warning for each
    that a CPU machine cannot load, and its registrations and traced graphs trip torch's pytree
    deprecation warnings; none of it says anything about the run.
    """
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@functools.cache
def load_torchao() -> None:
    """Import torchao and the modules used here once, quietly.

    Raises:
        ImportError: torchao is not installed.
    """
    with quiet():
        import torchao.quantization  # noqa: F401
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


def unsupported_reason(method: str, device: torch.device) -> str | None:
    """Why ``method`` cannot run on ``device`` with the installed torchao, or None."""
    try:
        load_torchao()
    except ImportError as exc:  # a dependency; reported rather than crashed on
        return f"torchao is not installed ({exc}); pip install torchao"
    if method == "int4_weight_only" and device.type != "cuda":
        return "int4 weight-only kernels (tinygemm) need a CUDA GPU"
    if method == "int8_static" and device.type != "cpu":
        return ("int8_static lowers through the x86 inductor quantizer, which targets CPUs; "
                "use int8_dynamic or int8_weight_only on CUDA")
    return None


def _config(method: str) -> Any:
    from torchao.quantization import (
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
    )

    return {"int8_dynamic": Int8DynamicActivationInt8WeightConfig,
            "int8_weight_only": Int8WeightOnlyConfig,
            "int4_weight_only": Int4WeightOnlyConfig}[method]()


def _float_layers(module: nn.Module) -> dict[str, str]:
    """Layers with weights that ``quantize_`` leaves in float, and why."""
    why = {nn.Conv1d: "convolution: torchao quantizes Linear layers in this mode",
           nn.Conv2d: "convolution: torchao quantizes Linear layers in this mode",
           nn.RNNBase: "recurrent layer: torchao has no int8 recurrent kernel",
           nn.Embedding: "embedding: a lookup, not a matmul"}
    out = {}
    for name, layer in module.named_modules():
        for kind, reason in why.items():
            if isinstance(layer, kind):
                out[name] = reason
    return out


def quantize_in_place(module: nn.Module, method: str) -> Quantized:
    """Apply an ``IN_PLACE`` recipe to a copy of ``module`` (eval mode).

    A linear layer torchao leaves alone (int4 needs ``in_features`` divisible by its group
    size, say) is reported as float with that reason, not as quantized.
    """
    load_torchao()
    from torchao.quantization import quantize_

    quantized = copy.deepcopy(module).eval()
    with quiet():
        quantize_(quantized, _config(method))
    linears = {name: layer for name, layer in quantized.named_modules()
               if isinstance(layer, nn.Linear)}
    done = [name for name, layer in linears.items() if _is_quantized(layer.weight)]
    skipped = {name: f"torchao left it in float: {method} does not apply to its shape "
                     f"{tuple(layer.weight.shape)}"
               for name, layer in linears.items() if name not in done}
    return Quantized(quantized, done, {**_float_layers(quantized), **skipped})


def _is_quantized(weight: torch.Tensor) -> bool:
    """torchao swaps a quantized weight for one of its tensor subclasses."""
    return type(weight) not in (torch.Tensor, nn.Parameter)


def _exported(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """``module`` captured by ``torch.export`` with a dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: batch},))
    return program.module()


def _prepared(module: nn.Module, example: torch.Tensor) -> nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    return prepare_pt2e(_exported(copy.deepcopy(module), example), quantizer)


def _converted(prepared: nn.Module) -> nn.Module:
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    converted = convert_pt2e(prepared)
    _drop_unused_attributes(converted)
    # It was traced in eval mode; let the usual .eval() calls through (a no-op for it).
    allow_exported_model_train_eval(converted)
    return converted


def _drop_unused_attributes(graph_module: Any) -> None:
    """Delete parameters and buffers the converted graph no longer reads (the float weights
    its int8 copies replaced), so they are neither saved nor counted."""
    used = {node.target for node in graph_module.graph.nodes if node.op == "get_attr"}
    for name in [n for n, _ in graph_module.named_parameters()] + \
            [n for n, _ in graph_module.named_buffers()]:
        if name not in used:
            owner, _, attribute = name.rpartition(".")
            delattr(graph_module.get_submodule(owner) if owner else graph_module, attribute)


def observer_ranges(prepared: nn.Module) -> dict[str, torch.Tensor]:
    """The calibrated state of every observer of a prepared graph (its ranges), by name."""
    return {name: value.detach().clone() for name, value in prepared.state_dict().items()
            if name.startswith("activation_post_process")}


def quantize_static(module: nn.Module, calibration: Iterable[torch.Tensor]) -> tuple[
        Quantized, dict[str, torch.Tensor]]:
    """int8 weights and activations, ranges calibrated on ``calibration`` batches (CPU).

    Returns:
        The converted module and the observers' calibrated ranges (saved with the weights,
        so loading rebuilds the same graph without the calibration data).
    """
    load_torchao()
    batches = list(calibration)
    with quiet():
        prepared = _prepared(module, batches[0])
        with torch.no_grad():
            for inputs in batches:
                prepared(inputs)
        ranges = observer_ranges(prepared)
        converted = _converted(prepared)
    layers = [name for name, layer in module.named_modules()
              if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    return Quantized(converted, layers, _float_layers_static(module), needs_compile=True), ranges


def _float_layers_static(module: nn.Module) -> dict[str, str]:
    return {name: "recurrent layer: the x86 inductor quantizer has no int8 recurrent pattern"
            for name, layer in module.named_modules() if isinstance(layer, nn.RNNBase)}


def rebuild_static(float_module: nn.Module, example: torch.Tensor,
                   ranges: dict[str, torch.Tensor],
                   state: dict[str, torch.Tensor]) -> nn.Module:
    """The converted graph of :func:`quantize_static` from saved ranges and int8 state.

    ``float_module`` supplies only the structure (its weights are replaced by ``state``).
    """
    load_torchao()
    with quiet():
        prepared = _prepared(float_module, example)
        prepared.load_state_dict(ranges, strict=False)
        converted = _converted(prepared)
    converted.load_state_dict(state, strict=True)
    return converted


def quantized_state(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Plain tensors and safetensors metadata for a quantized module's state.

    torchao's tensor subclasses (``Int8Tensor`` …) are flattened into their int8 data and scales
    with torchao's safetensors support, which rebuilds only allow-listed classes on load — no
    pickle, no code executed.
    """
    load_torchao()
    with quiet():
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

        tensors, metadata = flatten_tensor_state_dict(module.state_dict())
    return {k: v.detach().contiguous() for k, v in tensors.items()}, metadata


def load_quantized_state(module: nn.Module, tensors: dict[str, torch.Tensor],
                         metadata: dict[str, str]) -> None:
    """Load what :func:`quantized_state` produced into a float module of the same structure."""
    load_torchao()
    with quiet():
        from torchao.prototype.safetensors.safetensors_support import (
            unflatten_tensor_state_dict,
        )

        state = unflatten_tensor_state_dict(tensors, metadata)
    if isinstance(state, tuple):  # (state, leftover keys) in newer torchao
        state = state[0]
    module.load_state_dict(state, assign=True)


def compiled(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """``torch.compile(module)``, run once on ``example`` so compilation happens now.

    Raises:
        RuntimeError: inductor cannot compile here (most often: no C++ compiler), with that
            said first.
    """
    runnable = torch.compile(module)
    try:
        with quiet(), torch.no_grad():
            runnable(example)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RuntimeError(f"torch.compile (inductor) failed, which int8_static needs to run "
                           f"as int8 — is a C++ compiler installed? ({first})") from exc
    return runnable
