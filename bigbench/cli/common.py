"""What every command shares: consoles, error handling, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from bigbench.errors import USAGE_EXIT_CODE, BigbenchError

F = TypeVar("F", bound=Callable[..., Any])


def err_console():  # noqa: ANN201 - rich is imported lazily
    """A rich console on stderr (progress, warnings)."""
    from rich.console import Console

    return Console(stderr=True)


def out_console():  # noqa: ANN201
    """A rich console on stdout (tables)."""
    from rich.console import Console

    return Console()


def print_error_lines(lines: list[str]) -> None:
    """One ``error: …`` line per problem on stderr (plain text, safe to grep)."""
    for line in lines:
        sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def user_errors(func: F) -> F:
    """Turn a BigbenchError raised by a command into its lines on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BigbenchError as exc:
            print_error_lines(exc.lines())
            raise typer.Exit(USAGE_EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]


def print_json(value: Any) -> None:
    """Write ``value`` as JSON to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, allow_nan=False) + "\n")
