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
                     state_copies: int = 4) -> int:
    """Count the parameters on the meta device (no memory) and refuse a model that cannot fit.

    ``state_copies`` covers weights, gradients and up to two optimizer buffers per parameter.

    Returns:
        The parameter count.
    """
    import torch

    from bigbench.memory_budget import check_fits

    with torch.device("meta"):
        params = build_model(config, data).params
    check_fits(f"model '{config.name}' with {params:,} parameters", params * 4 * state_copies,  # type: ignore[attr-defined]
               device, "use smaller model.channels / hidden sizes")
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
