"""Regenerate the generated parts of the docs from the code (run after changing the schema).

    .venv/bin/python scripts/update_docs.py          # rewrite every generated block in place
    .venv/bin/python scripts/update_docs.py --check  # name the stale blocks, exit 1; write nothing

A generated block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` lines in a docs
page; everything outside the markers is written by hand. ``tests/test_docs.py`` fails while any
block in ``BLOCKS`` is stale. To generate another block, add its page, name and generator below.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _config_reference() -> str:
    from bigbench.config.reference import markdown_reference

    return markdown_reference()


# (page relative to the repository root, marker name, generator of the block's text)
BLOCKS: list[tuple[str, str, Callable[[], str]]] = [
    ("docs/configuration.md", "config-reference", _config_reference),
]


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"


def current_block(text: str, name: str) -> str:
    """The text between NAME's markers in a page (ValueError when a marker is missing)."""
    start, end = markers(name)
    head, sep, rest = text.partition(start)
    if not sep or end not in rest:
        raise ValueError(f"markers {start.strip()} … {end} not found")
    return rest.split(end, 1)[0]


def splice(text: str, name: str, block: str) -> str:
    """The page with the text between NAME's markers replaced by BLOCK."""
    start, end = markers(name)
    current_block(text, name)  # both markers present
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + start + block + end + tail


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for page, name, generate in BLOCKS:
        path = ROOT / page
        text = path.read_text()
        new = splice(text, name, generate())
        if new == text:
            continue
        stale.append(f"{page} ({name})")
        if not check:
            path.write_text(new)
            print(f"updated {page} ({name})")
    if check and stale:
        print("stale: " + ", ".join(stale) + "; run .venv/bin/python scripts/update_docs.py",
              file=sys.stderr)
        return 1
    if not stale:
        print("docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
