"""The README's config reference is generated from the schema and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from bigbench.config.reference import markdown_reference

README = Path(__file__).parent.parent / "README.md"


def test_readme_config_reference_is_current() -> None:
    text = README.read_text()
    marker = "<!-- config-reference:start -->\n"
    start = text.index(marker) + len(marker)
    end = text.index("<!-- config-reference:end -->")
    assert text[start:end] == markdown_reference(), (
        "README config reference is stale; regenerate it with `bigbench config reference`")


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
