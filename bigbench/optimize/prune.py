"""Magnitude pruning: unstructured (zeros in place) and structured (a smaller dense model).

Unstructured pruning uses PyTorch's own ``torch.nn.utils.prune``: one global L1 threshold over
every conv, linear and recurrent weight, so layers lose different fractions and the whole model
loses exactly ``amount``. Masks stay on while fine-tuning (pruned weights stay zero), then
:func:`make_permanent` folds them into the weights that are saved.

Structured pruning removes whole conv channels and hidden neurons, ranked by the L1 norm of
their weights, and rebuilds the model as the *registry model with smaller widths* with the kept
slices copied in. The result is an ordinary dense model: smaller, with fewer FLOPs, saved as
plain safetensors and loadable from its arguments alone. No structural-pruning library is
needed for that, and none would give a model bench can rebuild from its arguments. It is
implemented for the cnn family, whose layer graph is a chain.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models import BuiltModel, build_model
from bigbench.models.build import config_from_args

#: Layers whose weights unstructured pruning considers.
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.RNNBase)


def prunable_weights(module: nn.Module) -> list[tuple[nn.Module, str]]:
    """(layer, parameter name) of every conv/linear/recurrent weight, each tensor once.

    A weight shared by two layers (a tied embedding and output head) is left out: masking it
    through one layer would untie it.
    """
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for layer in module.modules():
        if not isinstance(layer, PRUNABLE):
            continue
        for name, parameter in layer.named_parameters(recurse=False):
            if name.startswith("weight"):
                owners.setdefault(id(parameter), []).append((layer, name))
    shared = {id(p) for m in module.modules() if isinstance(m, nn.Embedding)
              for p in m.parameters(recurse=False)}
    return [pairs[0] for key, pairs in owners.items() if len(pairs) == 1 and key not in shared]


def prune_unstructured(module: nn.Module, amount: float) -> list[tuple[nn.Module, str]]:
    """Zero the ``amount`` fraction of smallest-magnitude weights, globally, in place.

    The masks stay attached (a forward pre-hook applies them) so fine-tuning keeps pruned
    weights at zero; call :func:`make_permanent` before saving.

    Returns:
        The pruned (layer, parameter name) pairs.
    """
    targets = prunable_weights(module)
    if not targets:
        raise ConfigError("this model has no conv, linear or recurrent weight to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    return targets


def make_permanent(targets: list[tuple[nn.Module, str]]) -> None:
    """Fold the masks into the weights (the zeros stay; the hooks and copies go)."""
    for layer, name in targets:
        if prune.is_pruned(layer):
            prune.remove(layer, name)


def sparsity(module: nn.Module) -> dict[str, Any]:
    """Zeros per prunable layer and overall (over those weights and over every parameter).

    The prunable weights are those :func:`prunable_weights` gives pruning (a tied weight,
    which pruning leaves alone, is not counted), so ``prunable_sparsity`` is the amount.
    """
    considered = {id(getattr(layer, name)) for layer, name in prunable_weights(module)}
    layers = []
    for qualified, layer in module.named_modules():
        if not isinstance(layer, PRUNABLE):
            continue
        for name, parameter in layer.named_parameters(recurse=False):
            if name.startswith("weight") and id(parameter) in considered:
                zeros = int((parameter == 0).sum())
                layers.append({"layer": f"{qualified}.{name}" if qualified else name,
                               "params": parameter.numel(), "zeros": zeros,
                               "sparsity": zeros / parameter.numel()})
    weights = sum(entry["params"] for entry in layers)
    weight_zeros = sum(entry["zeros"] for entry in layers)
    total = sum(p.numel() for p in module.parameters())
    total_zeros = sum(int((p == 0).sum()) for p in module.parameters())
    return {"layers": layers,
            "prunable_weights": weights, "prunable_sparsity": weight_zeros / weights
            if weights else None,
            "params": total, "nonzero_params": total - total_zeros,
            "sparsity": total_zeros / total if total else None}


def structured_support(family_name: str, model_name: str) -> str | None:
    """Why structured pruning cannot rebuild this model, or None."""
    if family_name == "cnn":
        return None
    return (f"structured pruning rebuilds the conv channels and hidden neurons of the cnn "
            f"family; model '{model_name}' is {family_name} — use method: unstructured")


def _keep(scores: torch.Tensor, amount: float) -> torch.Tensor:
    """Indices (ascending) of the ``1 − amount`` highest scores, at least one."""
    count = max(1, round(scores.numel() * (1.0 - amount)))
    return torch.topk(scores, count).indices.sort().values


def _l1_rows(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of each output channel / neuron (dim 0) of a conv or linear weight."""
    return weight.detach().abs().reshape(weight.shape[0], -1).sum(dim=1)


def prune_structured(built: BuiltModel, info: DataInfo, amount: float) -> BuiltModel:
    """A smaller cnn keeping the ``1 − amount`` strongest channels and neurons of each layer.

    The output layer keeps every class. Weights are copied from ``built``; the result is the
    registry model with the reduced ``channels`` and ``hidden`` arguments.
    """
    reason = structured_support(built.family.name, built.name)
    if reason is not None:
        raise ConfigError(reason)
    module = built.module
    convs = [m for m in module.features if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    linears = [m for m in module.classifier if isinstance(m, nn.Linear)]
    conv_keep = [_keep(_l1_rows(conv.weight), amount) for conv in convs]
    hidden_keep = [_keep(_l1_rows(linear.weight), amount) for linear in linears[:-1]]
    args = {k: v for k, v in built.args.items() if k != "name"}
    args.update(channels=[len(k) for k in conv_keep], hidden=[len(k) for k in hidden_keep])
    smaller = build_model(config_from_args({**args, "name": built.name}), info)
    _copy_slices(module, smaller.module, conv_keep, hidden_keep)
    return smaller


@torch.no_grad()
def _copy_slices(source: nn.Module, target: nn.Module, conv_keep: list[torch.Tensor],
                 hidden_keep: list[torch.Tensor]) -> None:
    """Copy the kept channels/neurons of ``source`` into the smaller ``target``."""
    source_convs = [m for m in source.features if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    target_convs = [m for m in target.features if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    device = source_convs[0].weight.device  # index tensors live with the weights they slice
    inputs = torch.arange(source_convs[0].in_channels, device=device)
    for old, new, keep in zip(source_convs, target_convs, conv_keep, strict=True):
        new.weight.copy_(old.weight[keep][:, inputs])
        if old.bias is not None:
            new.bias.copy_(old.bias[keep])
        inputs = keep
    source_linears = [m for m in source.classifier if isinstance(m, nn.Linear)]
    target_linears = [m for m in target.classifier if isinstance(m, nn.Linear)]
    # The first linear layer reads the flattened (channel, *position) features: each kept
    # channel brings its block of `positions` columns.
    positions = source_linears[0].in_features // source_convs[-1].out_channels
    columns = (inputs[:, None] * positions + torch.arange(positions, device=device)).reshape(-1)
    keeps = [*hidden_keep, torch.arange(source_linears[-1].out_features, device=device)]
    for old, new, keep in zip(source_linears, target_linears, keeps, strict=True):
        new.weight.copy_(old.weight[keep][:, columns])
        if old.bias is not None:
            new.bias.copy_(old.bias[keep])
        columns = keep


def structured_summary(before: BuiltModel, after: BuiltModel) -> dict[str, Any]:
    """Widths before and after, and the fraction of parameters removed."""
    return {"channels": [before.args.get("channels"), after.args.get("channels")],
            "hidden": [before.args.get("hidden"), after.args.get("hidden")],
            "params_removed": 1.0 - after.params / before.params if before.params else None}
