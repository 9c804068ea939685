"""Build a registered model for a dataset (torch is imported by the builder, not here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bigbench.data.info import DataInfo
from bigbench.models.family import ModelFamily
from bigbench.models.registry import MODELS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from bigbench.strict import StrictModel


@dataclass
class BuiltModel:
    """A model and the facts a run records about it.

    Attributes:
        module: The ``nn.Module``.
        name: Registry name.
        family: What the model's family offers (see :class:`ModelFamily`).
        args: Resolved arguments, with the values taken from the data filled in.
    """

    module: nn.Module
    name: str
    family: ModelFamily
    args: dict[str, Any]

    @property
    def params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.module.parameters())

    @property
    def trainable_params(self) -> int:
        """Number of parameters that receive gradients."""
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


def build_model(config: StrictModel, data: DataInfo) -> BuiltModel:
    """Build the model named by ``config.name`` for inputs described by ``data``.

    Raises:
        ConfigError: when the arguments do not fit the data (shape too small, class mismatch).
    """
    spec = MODELS.get(config.name)  # type: ignore[attr-defined]
    module, resolved = spec.load_builder()(config, data)
    return BuiltModel(module=module, name=spec.name, family=spec.extras["family"],
                      args={"name": spec.name, **resolved})


def check_model_fits(config: StrictModel, data: DataInfo, device: torch.device,
                     state_copies: int = 4, batch_size: int = 1, value_bytes: int = 4,
                     training: bool = True) -> int:
    """Count the parameters on the meta device (no memory) and refuse a model that cannot fit.

    The estimate is the parameters times ``state_copies`` (weights, gradients and up to two
    optimizer buffers per parameter) plus the activations of a training step where the family
    estimates them (transformers: see ``ModelFamily.activation_bytes``).

    Args:
        batch_size: Samples per step; value_bytes: bytes per activation value (4 for fp32, 2
            under bf16/fp16 autocast); training: a training step (else inference: no gradients
            or saved activations; pass ``state_copies=1``).

    Returns:
        The parameter count.
    """
    import torch

    from bigbench.memory_budget import check_fits

    with torch.device("meta"):
        built = build_model(config, data)
    params = built.params
    window = data.sample_shape[0] if data.sample_shape else 1
    activations = built.family.activation_bytes(built.args, batch_size, window, value_bytes,
                                                training)
    what = f"model '{config.name}' with {params:,} parameters"  # type: ignore[attr-defined]
    if activations:
        state = "weights, gradients and optimizer state" if training else "weights"
        what += (f" ({params * 4 * state_copies / 2**30:.1f} GiB of {state}, "
                 f"{activations / 2**30:.1f} GiB of activations at batch "
                 f"{batch_size} × {window} tokens)")
    check_fits(what, params * 4 * state_copies + activations, device,
               "use a smaller model or batch, model.checkpoint_activations: true, or bf16"
               if activations else "use smaller model.channels / hidden sizes")
    return params


def resolve_num_classes(requested: int | None, data: DataInfo) -> int:
    """Classes from the config, or from the data when null; they must cover the labels."""
    from bigbench.errors import ConfigError

    if requested is None:
        return data.num_classes
    if requested < data.num_classes:
        raise ConfigError(
            f"model.num_classes is {requested} but the data has labels up to "
            f"{data.num_classes - 1}; set it to at least {data.num_classes} or null"
        )
    return requested


def config_from_args(args: dict[str, Any]) -> StrictModel:
    """The registry config of a built model's resolved arguments (``{"name": ..., **args}``;
    resolved values the config does not declare are dropped): rebuilds the same model."""
    spec = MODELS.get(args["name"])
    declared = {k: v for k, v in args.items()
                if k in spec.config_class.model_fields and k != "name"}
    return spec.config_class(name=args["name"], **declared)
