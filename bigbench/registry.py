"""A small name → spec registry shared by models and datasets.

Entries are registered with a decorator on their *argument class* (a pydantic model), so the
config schema, ``bigbench models`` and ``bigbench data`` can list and validate everything
without importing torch. The builder is named as ``"module:function"`` and imported only when
something is actually built.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field, create_model

from bigbench.errors import ConfigError, did_you_mean, one_of
from bigbench.strict import StrictModel

ArgsT = TypeVar("ArgsT", bound=type[StrictModel])


@dataclass(frozen=True)
class Spec:
    """One registered entry.

    Attributes:
        name: The registry name users write (``model.name`` / ``data.name``).
        config_class: The config section class: the argument class plus ``name: Literal[name]``.
        builder: ``"module:function"`` that builds the object; imported lazily.
        summary: One line for listings.
        extras: Registry-specific facts (e.g. a model's reference input).
    """

    name: str
    config_class: type[StrictModel]
    builder: str
    summary: str
    extras: dict[str, Any] = field(default_factory=dict)

    def load_builder(self) -> Callable[..., Any]:
        """Import and return the builder function."""
        module_name, _, func_name = self.builder.partition(":")
        return getattr(importlib.import_module(module_name), func_name)

    def defaults(self) -> dict[str, Any]:
        """The documented default arguments (everything but ``name``)."""
        fields = self.config_class.model_fields
        return {k: f.default for k, f in fields.items() if k != "name"}


class Registry(Generic[ArgsT]):
    """Named specs of one kind (``"model"`` or ``"dataset"``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, Spec] = {}

    def register(
        self, name: str, *, builder: str, summary: str, **extras: Any
    ) -> Callable[[ArgsT], ArgsT]:
        """Decorator registering an argument class under ``name``.

        The same argument class may be registered under several names (``rnn``/``lstm``/
        ``gru``); each gets its own config class whose ``name`` field is that literal.
        """

        def decorate(args_class: ArgsT) -> ArgsT:
            if name in self._specs:
                warnings.warn(f"{self.kind} '{name}' registered twice; the last one wins",
                              stacklevel=2)
            config_class = create_model(
                f"{args_class.__name__}_{name}",
                __base__=args_class,
                __doc__=f"{summary} ({self.kind} '{name}').",
                name=(Literal[name], Field(description=f"{self.kind.capitalize()} name.")),
            )
            self._specs[name] = Spec(name, config_class, builder, summary, dict(extras))
            return args_class

        return decorate

    def get(self, name: str) -> Spec:
        """Return the spec for ``name`` or raise a ConfigError with the allowed names."""
        try:
            return self._specs[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._specs)}; "
                f"choose {one_of(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._specs)

    def __iter__(self) -> Iterator[Spec]:
        return iter(self._specs[n] for n in self.names())
