"""Regenerate the config reference between the README's markers (run after changing the schema).

    .venv/bin/python scripts/update_readme_reference.py
"""

from pathlib import Path

from bigbench.config.reference import markdown_reference

START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
readme.write_text(head + START + markdown_reference() + END + tail)
print(f"updated {readme}")
