"""API functions that share their name with a bigbench submodule.

``bigbench.train``, ``bigbench.bench``, ``bigbench.compare``, ``bigbench.report`` and
``bigbench.measure`` are both functions of the Python API and submodules of the package. Python
sets a package attribute to a submodule the first time that submodule is imported, which would
replace the function as soon as it imported its own module. So the package keeps the function
(:func:`keep_commands`) and the function forwards attribute reads and writes to the submodule
(:class:`SubmoduleCommand`): ``bigbench.train(...)`` runs a training and
``bigbench.train.run_training`` (or a test's ``monkeypatch.setattr("bigbench.train.x", ...)``)
still reaches the module.

Standard library only: ``import bigbench`` loads this module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_OWN = frozenset({"_function", "_module"})
_COPIED = ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__")


class SubmoduleCommand:
    """A callable API function that also stands for the submodule of the same name.

    Args:
        function: The API function (its name, docstring and signature are shown as its own).
        module: The submodule's full name, e.g. ``"bigbench.train"``.
    """

    def __init__(self, function: Callable[..., Any], module: str) -> None:
        object.__setattr__(self, "_function", function)
        object.__setattr__(self, "_module", module)
        for name in _COPIED:
            object.__setattr__(self, name, getattr(function, name))
        object.__setattr__(self, "__wrapped__", function)  # inspect.signature follows it

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    def _target(self, name: str) -> ModuleType:
        loaded = sys.modules.get(self._module)
        if loaded is not None:
            return loaded
        if name in _OWN or (name.startswith("__") and name.endswith("__")):
            # Introspection (help, inspect, copy) must not import torch behind one's back.
            raise AttributeError(name)
        return importlib.import_module(self._module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(name), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(name), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._target(name), name)

    def __repr__(self) -> str:
        return f"<bigbench API function {self._module}() (attributes: module {self._module})>"


class _Package(ModuleType):
    """The ``bigbench`` package: importing a submodule never replaces an API function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and isinstance(self.__dict__.get(name), SubmoduleCommand):
            return  # the submodule stays reachable in sys.modules and through the function
        super().__setattr__(name, value)


def keep_commands(package: ModuleType) -> None:
    """Make ``package`` keep its :class:`SubmoduleCommand` attributes when submodules load."""
    package.__class__ = _Package
