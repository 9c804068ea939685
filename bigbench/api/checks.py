"""The Python API's argument checks: a wrong type is one line naming the argument, never a
``TypeError`` from deep inside the library.

Typer checks the CLI's option types before a command runs; nothing checks a Python caller's,
so every API function passes its arguments through an :class:`Arguments` first and raises
its problems together. Cheap to import (``import bigbench`` loads it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from bigbench.errors import BigbenchError, ConfigError


def _kind(value: object) -> str:
    """``int 5``: the type and value of a wrong argument, for a message."""
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"


class Arguments:
    """The problems found in one call's arguments; :meth:`check` raises them together.

    Args:
        error: The error class the function documents (ConfigError for most).
    """

    def __init__(self, error: type[BigbenchError] = ConfigError) -> None:
        self.error = error
        self.problems: list[str] = []

    def check(self) -> None:
        """Raise every problem found as one ``error`` (nothing when there is none)."""
        if self.problems:
            raise self.error(*self.problems)

    def path(self, label: str, value: object, optional: bool = True) -> Path | None:
        """A file or folder: a ``str`` or ``os.PathLike`` (None allowed when ``optional``)."""
        if value is None and optional:
            return None
        if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)):
            return Path(value)
        self.problems.append(f"{label}: give a path (a str or pathlib.Path), not {_kind(value)}")
        return None

    def flag(self, label: str, value: object, optional: bool = False) -> None:
        """``True`` or ``False`` (or None when ``optional``): a truthy string is a mistake."""
        if not (isinstance(value, bool) or (optional and value is None)):
            allowed = "True, False or None" if optional else "True or False"
            self.problems.append(f"{label}: give {allowed}, not {_kind(value)}")

    def text(self, label: str, value: object, optional: bool = True) -> None:
        """A string (or None when ``optional``)."""
        if not (isinstance(value, str) or (optional and value is None)):
            self.problems.append(f"{label}: give a string, not {_kind(value)}")

    def number(self, label: str, value: object, minimum: float | None = None,
               maximum: float | None = None, whole: bool = False,
               positive: bool = False) -> None:
        """A number (an int when ``whole``; above 0 when ``positive``) within the bounds;
        None is allowed (the default)."""
        if value is None:
            return
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "a whole number" if whole else "a number"
            self.problems.append(f"{label}: give {kind}, not {_kind(value)}")
        elif positive and not value > 0:
            self.problems.append(f"{label}: {value!r} is not positive")
        elif minimum is not None and not value >= minimum:
            self.problems.append(f"{label}: {value!r} is below the minimum {minimum:g}")
        elif maximum is not None and not value <= maximum:
            self.problems.append(f"{label}: {value!r} is above the maximum {maximum:g}")

    def device(self, label: str, value: object, optional: bool = False) -> None:
        """A device string (``auto``, ``cpu``, ``cuda``, ``cuda:N``), or None when
        ``optional``."""
        if value is None and optional:
            return
        from bigbench.config.loader import device_problems

        self.problems.extend(device_problems(label, value))

    def names(self, label: str, value: object) -> list[str] | None:
        """``"a,b"`` or a list/tuple of strings (None: not given)."""
        if value is None:
            return None
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        self.problems.append(f"{label}: give a list of strings or one comma-separated string, "
                             f"not {_kind(value)}")
        return None

    def overrides(self, value: object) -> list[str]:
        """``--set``-style overrides: a list of ``key.path=value`` strings, or a mapping of
        key paths to values (each value written as JSON, which YAML parses back as it was)."""
        if value is None:
            return []
        if isinstance(value, Mapping):
            return self._mapping_overrides(value)
        if isinstance(value, str):
            self.problems.append(f"overrides: give a list of key.path=value strings, not the "
                                 f"string {value!r}; e.g. [{value!r}]")
        elif not isinstance(value, (list, tuple)):
            self.problems.append(f"overrides: give a list of key.path=value strings or a dict, "
                                 f"not {_kind(value)}")
        elif not all(isinstance(item, str) for item in value):
            wrong = next(item for item in value if not isinstance(item, str))
            self.problems.append(f"overrides: each item is a key.path=value string; "
                                 f"{_kind(wrong)} is not")
        else:
            return list(value)
        return []

    def _mapping_overrides(self, value: Mapping[object, object]) -> list[str]:
        sets = []
        for key, item in value.items():
            if not isinstance(key, str):
                self.problems.append(f"overrides: each key is a key.path string; {_kind(key)} "
                                     "is not")
                continue
            try:
                sets.append(f"{key}={json.dumps(item, allow_nan=False)}")
            except (TypeError, ValueError):
                self.problems.append(f"overrides: {key}: {_kind(item)} is not a config value "
                                     "(give numbers, strings, booleans, lists or dicts)")
        return sets
