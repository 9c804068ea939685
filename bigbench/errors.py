"""Errors meant for people.

A :class:`BigbenchError` is a user mistake or an environment problem the user can fix.
The CLI catches it once, prints one line per problem to stderr and exits with code 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

#: Exit code for every user mistake.
USAGE_EXIT_CODE = 2


class BigbenchError(Exception):
    """Base class for errors a user can act on.

    Args:
        problems: One or more human-readable problem descriptions, each a single line.
    """

    def __init__(self, *problems: str) -> None:
        if not problems:
            raise ValueError("BigbenchError needs at least one problem")
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        """The lines to print, one per problem."""
        return list(self.problems)


class ConfigError(BigbenchError):
    """The experiment config or a ``--set`` override is invalid."""


class DataError(BigbenchError):
    """A dataset cannot be built or a data file is unusable."""


class DeviceError(BigbenchError):
    """The requested device does not exist or cannot be used."""


class OutputError(BigbenchError):
    """A result file or run directory cannot be written."""


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def one_of(choices: Sequence[str]) -> str:
    """Format allowed choices as ``'a', 'b' or 'c'``."""
    quoted = [f"'{c}'" for c in choices]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]
