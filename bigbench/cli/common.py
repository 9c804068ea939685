"""What every command shares: consoles, error handling, JSON output."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer

from bigbench.errors import USAGE_EXIT_CODE, BigbenchError

F = TypeVar("F", bound=Callable[..., Any])


def color_allowed() -> bool:
    """False when the user set ``NO_COLOR`` (https://no-color.org): then no style at all.

    Rich alone would keep bold and dim under ``NO_COLOR``; bigbench prints plain text.
    """
    return os.environ.get("NO_COLOR", "") == ""


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` gets terminal output (colours, box drawing), decided as rich does.

    ``TTY_COMPATIBLE=1`` or a non-empty ``FORCE_COLOR`` asks for it in piped output,
    ``TTY_COMPATIBLE=0`` refuses it on a terminal; otherwise the stream must be a TTY.
    Written out here so that deciding costs no rich import.
    """
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _console(stderr: bool):  # noqa: ANN202 - rich is imported lazily
    """A rich console that prints escape codes only to a terminal and only without NO_COLOR.

    Rich decides what a terminal is: a TTY, or ``FORCE_COLOR`` / ``TTY_COMPATIBLE=1`` (the
    way to ask for colours and box drawing in piped output). Tables printed to anything else
    are drawn with ASCII rules (see :func:`_ascii_tables`).
    """
    from rich.console import Console

    console = Console(stderr=stderr, color_system="auto" if color_allowed() else None)
    console.push_render_hook(_ascii_tables(console))
    return console


def _ascii_tables(console: Any) -> Any:
    """A render hook that draws tables with ``+ - |`` when the console is not a terminal."""
    from rich import box
    from rich.console import RenderHook
    from rich.table import Table

    class AsciiTables(RenderHook):
        def process_renderables(self, renderables: list[Any]) -> list[Any]:
            if console.is_terminal:
                return renderables
            return [_with_box(r, box.ASCII) if isinstance(r, Table) and r.box is not None
                    else r for r in renderables]

    return AsciiTables()


def _with_box(table: Any, ascii_box: Any) -> Any:
    plain = copy.copy(table)
    plain.box = ascii_box
    return plain


def err_console():  # noqa: ANN201 - rich is imported lazily
    """A rich console on stderr (progress, warnings)."""
    return _console(stderr=True)


def out_console():  # noqa: ANN201
    """A rich console on stdout (tables)."""
    return _console(stderr=False)


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


def print_table(console: Any, table: Any) -> None:
    """Print a rich table; to a file or pipe (no terminal width to fit, no COLUMNS set) at the
    width it needs, so wide result tables are neither wrapped nor cut."""
    if not console.is_terminal and "COLUMNS" not in os.environ:
        from rich.measure import Measurement

        wide = console.options.update_width(10_000)
        console.width = max(console.width, Measurement.get(console, wide, table).maximum)
    console.print(table)


def finish_document_command(console: Any, document: dict[str, Any], out_dir: Any,
                            exit_code: int | None, failed: list[str], noun: str) -> None:
    """End optimize/sweep the same way: a stopped or failed run says so and exits 130 (or the
    signal's code) / 1; failed items are listed and exit 1; otherwise the command returns."""
    import typer

    if document["status"] != "completed":
        console.print(f"{document['status']}: {document.get('reason') or 'stopped early'}; "
                      f"results kept in {out_dir}")
        raise typer.Exit((exit_code or 130) if document["status"] == "interrupted" else 1)
    if failed:
        console.print(f"[red]failed {noun}:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def print_document_result(run: Any, output: Any, title: str, json_: bool,
                          markdown_: bool) -> None:
    """optimize.json / sweep.json on stdout: as JSON, as Markdown, or as the console table
    with its notes and the file's path. ``output`` is the command's table module (``markdown``,
    ``console_table`` and ``footnotes`` of the document)."""
    import sys

    document = run.document
    if json_:
        print_json(document)
        return
    if markdown_:
        sys.stdout.write(output.markdown(document))
        return
    console = out_console()
    print_table(console, output.console_table(document, title))
    for note in output.footnotes(document):
        console.print(f"  {note}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"results: {run.out_dir / run.file_name}", soft_wrap=True, highlight=False,
                  markup=False)


@contextlib.contextmanager
def stage_progress(console: Any, command: str) -> Iterator[Callable[[str], None]]:
    """A status line on stderr for a long command's stages; yields the function that reports
    one (it also prints the stage with the seconds since the start, so a log keeps them)."""
    import time

    started = time.perf_counter()
    with console.status(f"{command}: starting") as status:
        def progress(line: str) -> None:
            status.update(f"{command}: {line}")
            console.print(f"{time.perf_counter() - started:7.1f} s  {line}", highlight=False,
                          markup=False)

        yield progress
