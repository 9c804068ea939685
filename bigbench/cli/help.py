"""How ``--help`` reads: paragraphs that reflow at any width, flags without a value placeholder.

Typer's rich help keeps every newline of a docstring, so a docstring hard-wrapped at 96
columns breaks mid-sentence in an 80-column terminal. :func:`reflow` joins the lines of each
paragraph and lets the terminal wrap them; indented lines (examples, commands) stay one per
line. :class:`BigbenchCommand` and :class:`BigbenchGroup` apply it to every command and give
boolean flags an empty metavar, so ``--json`` does not read as if it took a ``<bool>``.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperCommand, TyperGroup


def reflow(text: str | None) -> str | None:
    """A docstring with each paragraph on one line; indented lines are kept verbatim.

    Paragraphs are separated by blank lines. Within one, consecutive unindented lines are
    joined with a space (the terminal wraps them at its width); an indented line (an example
    command) stays a line of its own, indentation included. A line ending in ``:`` ends its
    run, so ``Examples:`` keeps its own line above the commands.
    """
    if text is None:
        return None
    paragraphs = []
    for block in inspect.cleandoc(text).split("\n\n"):
        lines: list[str] = []
        joining = False
        for line in block.splitlines():
            if not line.strip():
                continue
            if line[0].isspace():
                lines.append(line.rstrip())
                joining = False
            elif joining:
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip())
                joining = True
            if line.rstrip().endswith(":"):
                joining = False
        if lines:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _flags_without_metavar(params: list[Any]) -> list[Any]:
    """Give boolean flags (``--json``, ``--compile/--no-compile``, ``--help``) no metavar.

    Typer's rich help shows an option's metavar, or else its type (``<bool>``), beside it; a
    flag takes no value, so an empty metavar shows nothing.
    """
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", "") is None:
            param.metavar = ""
    return params


#: Help never grows wider than this many columns, however wide the terminal (prose past it
#: is hard to read).
MAX_HELP_COLUMNS = 120


def click_layout(command: Any, click_format_help: Any, ctx: Any, formatter: Any) -> None:
    """Write ``command``'s help in Click's plain layout, at any width up to the terminal's.

    Typer's rich help gives the option names a fixed column as wide as the longest flag pair
    (``--energy-min-window / --no-energy-min-window``), cuts what does not fit with "…" and
    draws boxes even when piped. Click's layout puts a long option name on its own line and
    wraps the help under it. Rich's escapes (``\\[default]``) become plain brackets here.
    """
    help_text, command.help = command.help, _plain_help(command.help)
    saved = [(p, getattr(p, "help", None)) for p in command.params]
    for param, text in saved:
        if text:
            param.help = text.replace("\\[", "[")
    try:
        click_format_help(ctx, formatter)
    finally:
        command.help = help_text
        for param, text in saved:
            param.help = text


class BigbenchCommand(TyperCommand):
    """A Typer command whose help reflows and whose flags show no value placeholder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        super().__init__(*args, **kwargs)

    def get_params(self, ctx: Any) -> list[Any]:  # noqa: D102
        return _flags_without_metavar(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:  # noqa: D102
        click_layout(self, super(TyperCommand, self).format_help, ctx, formatter)


def _plain_help(text: str | None) -> str | None:
    """The reflowed help for Click: a paragraph holding indented lines (examples) is marked
    ``\\b`` so Click keeps its lines as they are."""
    if text is None:
        return None
    blocks = text.split("\n\n")
    return "\n\n".join("\b\n" + b if any(line[:1].isspace() for line in b.splitlines())
                       else b for b in blocks)


class BigbenchGroup(TyperGroup):
    """A Typer group like :class:`BigbenchCommand`; as the root it also decides error output.

    Typer prints usage errors (an unknown option, a missing argument) in a rich panel with
    box drawing and styles. On a terminal that stays; when stderr is not one (a log, a pipe)
    the error is Click's plain text, and ``NO_COLOR`` switches styles off everywhere
    (:func:`plain_typer_output`). Help is Click's plain layout (:func:`click_layout`). Bash
    completion is bigbench's (:func:`bigbench.cli.completion.use_bash_completion`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        super().__init__(*args, **kwargs)
        self._help_markup_mode = self.rich_markup_mode

    def get_params(self, ctx: Any) -> list[Any]:  # noqa: D102
        return _flags_without_metavar(super().get_params(ctx))

    def main(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        import sys

        from bigbench.cli.common import is_terminal
        from bigbench.cli.completion import use_bash_completion

        plain_typer_output()
        use_bash_completion()  # after Typer registered its own, before a completion request
        # Typer renders errors with the root's markup mode (None: Click's plain text).
        self.rich_markup_mode = self._help_markup_mode if is_terminal(sys.stderr) else None
        try:
            return super().main(*args, **kwargs)
        finally:
            self.rich_markup_mode = self._help_markup_mode

    def format_help(self, ctx: Any, formatter: Any) -> None:  # noqa: D102
        click_layout(self, super(TyperGroup, self).format_help, ctx, formatter)


def plain_typer_output() -> None:
    """Make Typer's own help and error output plain text when ``NO_COLOR`` is set.

    Typer reads its console settings from module globals each time it prints; importing
    ``typer.rich_utils`` costs 0.15 s, so it is touched only when there is something to set
    or to undo.
    """
    import sys

    from bigbench.cli.common import color_allowed

    rich_utils = sys.modules.get("typer.rich_utils")
    if color_allowed() and rich_utils is None:
        return
    if rich_utils is None:
        import typer.rich_utils as rich_utils
    rich_utils.COLOR_SYSTEM = "auto" if color_allowed() else None

