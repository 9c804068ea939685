"""The model as each strategy runs it, and its state as whole tensors for the files.

- ``ddp``: DistributedDataParallel around the model; every rank holds all of it, and its
  state is the model's own.
- ``fsdp``: PyTorch's fully sharded data parallel (``fully_shard``, FSDP2): each top-level
  block with parameters is sharded, then the root, so a rank holds 1/N of the parameters,
  gradients and optimizer state and gathers a block's weights only while it runs. Its state
  lives in shards: the files need whole tensors, gathered by a collective every rank joins
  (:func:`saved_state`), and a resumed run scatters them back (:class:`ShardedLoad`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bigbench.rank import Rank


def wrap(module: nn.Module, device: torch.device, rank: Rank, strategy: str) -> nn.Module:
    """What the training step calls: the module itself (one rank), DDP around it, or the
    module with its blocks sharded in place (FSDP)."""
    if rank.world_size == 1:
        return module
    if strategy == "fsdp":
        from bigbench.errors import ConfigError

        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError:
            raise ConfigError(f"distributed.strategy fsdp needs PyTorch's fully_shard (FSDP2, "
                              f"torch 2.6 or later); this torch is {torch.__version__}: use "
                              "strategy: ddp, or a newer torch") from None
        try:
            for block in shard_units(module):
                fully_shard(block)
            fully_shard(module)
        except (ValueError, NotImplementedError, RuntimeError) as exc:
            raise ConfigError(f"distributed.strategy fsdp: this torch cannot shard the model "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); use "
                              "strategy: ddp") from None
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index]
                                   if device.type == "cuda" else None)


def shard_units(module: nn.Module) -> list[nn.Module]:
    """The blocks FSDP shards one by one before the root: the top-level modules with
    parameters, a list's or sequence's items (a transformer's blocks) instead of the list,
    and never a weight shared by two modules (a tied embedding and output head stay with the
    root, so they stay one tensor)."""
    counts: dict[int, int] = {}
    for child in module.modules():
        for parameter in child.parameters(recurse=False):
            counts[id(parameter)] = counts.get(id(parameter), 0) + 1
    shared = {key for key, count in counts.items() if count > 1}
    units = []
    for child in module.children():
        items = list(child.children()) if isinstance(child, (nn.ModuleList, nn.Sequential)) \
            else [child]
        for item in items:
            own = [id(p) for p in item.parameters()]
            if own and not shared.intersection(own):
                units.append(item)
    return units


def is_sharded(module: nn.Module) -> bool:
    """Whether ``fully_shard`` sharded the module (its class becomes an FSDPModule; its
    parameters can be unsharded views between a forward and the next reshard)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2 shards nothing
        return False
    return isinstance(module, FSDPModule)


_FULL = {"full_state_dict": True, "cpu_offload": True}


class _Frozen:
    """A state already gathered, handed to the writer as if it were the module/optimizer."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        """The gathered state."""
        return self._state


def saved_state(model: nn.Module, optimizer: torch.optim.Optimizer | None
                ) -> tuple[Any, Any]:
    """(model, optimizer) for the writers: as they are, or (FSDP) their whole state gathered.

    With FSDP every rank must call this at the same point (it is a collective), though only
    rank 0 writes what it returns.
    """
    if not is_sharded(model):
        return model, optimizer
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    model.reshard()  # an inference forward can leave the last blocks' weights gathered
    options = StateDictOptions(**_FULL)
    weights = _Frozen(get_model_state_dict(model, options=options))
    state = _Frozen(get_optimizer_state_dict(model, optimizer, options=options)) \
        if optimizer is not None else None
    return weights, state


class ShardedLoad:
    """A sharded model (and its optimizer) that the checkpoint loader fills from whole
    tensors, each rank reading the same files; the same calls as a plain module's."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.optimizer_view = _OptimizerLoad(self)

    def state_dict(self) -> dict[str, Any]:
        """The whole state on every rank (for the loader's name and shape checks; with
        cpu_offload only rank 0 would get it)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True))

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any:
        """Scatter whole tensors into this rank's shards."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        return set_model_state_dict(self.model, state,
                                    options=StateDictOptions(full_state_dict=True,
                                                             strict=strict))


class _OptimizerLoad:
    def __init__(self, owner: ShardedLoad) -> None:
        self._owner = owner

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        set_optimizer_state_dict(self._owner.model, self._owner.optimizer, state,
                                 options=StateDictOptions(full_state_dict=True))
