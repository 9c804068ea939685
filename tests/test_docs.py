"""README and docs/ stay true: generated parts current, links alive, every page and option listed.

The README is the quick start and a tour; the reference lives in docs/ (see docs/development.md).
Generated blocks are rewritten by ``scripts/update_docs.py``.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_LIMIT_BYTES = 12 * 1024


def _load_update_docs():
    path = ROOT / "scripts" / "update_docs.py"
    spec = importlib.util.spec_from_file_location("update_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


UPDATE_DOCS = _load_update_docs()


# --- generated blocks ------------------------------------------------------------------------

@pytest.mark.parametrize("page,name,generate", UPDATE_DOCS.BLOCKS,
                         ids=[f"{page}:{name}" for page, name, _ in UPDATE_DOCS.BLOCKS])
def test_generated_block_is_current(page: str, name: str, generate) -> None:
    text = (ROOT / page).read_text()
    assert UPDATE_DOCS.current_block(text, name) == generate(), (
        f"{page}: the {name} block is stale; regenerate it with "
        "`.venv/bin/python scripts/update_docs.py`")


def test_config_reference_lives_in_configuration_page() -> None:
    assert ("docs/configuration.md", "config-reference") in [
        (page, name) for page, name, _ in UPDATE_DOCS.BLOCKS]
    assert "config-reference:start" not in README.read_text()


def test_splice_replaces_only_the_block() -> None:
    text = "head\n<!-- x:start -->\nold\n<!-- x:end -->\ntail\n"
    assert UPDATE_DOCS.splice(text, "x", "new\n") == (
        "head\n<!-- x:start -->\nnew\n<!-- x:end -->\ntail\n")
    with pytest.raises(ValueError):
        UPDATE_DOCS.current_block("no markers", "x")


# --- the README stays a quick start ------------------------------------------------------------

def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_stays_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, (
        f"README.md is {size:,} bytes (limit {README_LIMIT_BYTES:,}): move reference text to a "
        "page under docs/ and link it")


def _link_targets(page: Path) -> set[str]:
    return {target.split("#")[0] for target in _links(page.read_text())}


def test_every_docs_page_is_listed_in_both_indexes() -> None:
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    from_readme = {Path(t).name for t in _link_targets(README) if t.startswith("docs/")}
    from_index = {Path(t).name for t in _link_targets(DOCS / "README.md")}
    assert not pages - from_readme, (
        f"README.md's Documentation list lacks {sorted(pages - from_readme)}")
    assert not pages - from_index, f"docs/README.md lacks {sorted(pages - from_index)}"


# --- links -----------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.S)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HTML_REF = re.compile(r"\b(?:href|src)=\"([^\"]+)\"")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def _links(text: str) -> list[str]:
    prose = _INLINE_CODE.sub("", "\n".join(_prose_lines(text)))
    return [m.group(1) for pattern in (_INLINE_LINK, _REFERENCE_DEF, _HTML_REF)
            for m in pattern.finditer(prose)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, spaces → -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = "".join(c for c in text
                   if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a Markdown page: heading slugs (repeats get -1, -2 …) and HTML anchors."""
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    for line in _prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_github_slug_rules() -> None:
    assert github_slug("`run.json` fields") == "runjson-fields"
    assert github_slug("`bigbench config validate | show | schema | reference`") == (
        "bigbench-config-validate--show--schema--reference")
    assert github_slug("Datasets and data shapes") == "datasets-and-data-shapes"
    assert github_slug("How [bigbench](x.md) measures — FLOPs") == "how-bigbench-measures--flops"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n# A\n") == {"a", "a-1", "a-2"}


def _broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in _links(page.read_text()):
        if not target or _SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(root)}: ({target})"
        if root not in dest.parents and dest != root:
            broken.append(f"{where} leaves the repository")
        elif not dest.exists():
            broken.append(f"{where} points to a missing file")
        elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest.read_text()):
            broken.append(f"{where} names no heading in {dest.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    broken = _broken_links(page)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_link_checker_catches_rot(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n")
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](other.md#other-page) [ok](#top) `[code](gone.md)`\n"
                    "```\n[fenced](gone.md)\n```\n[web](https://example.com/x)\n"
                    "[a](gone.md) [b](other.md#nope) [c](#nope) ![d](img/none.png)\n")
    broken = _broken_links(page, root=tmp_path)
    assert [b.split("(")[1].split(")")[0] for b in broken] == [
        "gone.md", "other.md#nope", "#nope", "img/none.png"]


# --- every command option is documented ---------------------------------------------------------

def _leaf_commands():
    import typer

    from bigbench.cli import app

    def walk(command, path):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                if not getattr(sub, "hidden", False):
                    yield from walk(sub, [*path, name])
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), [])


def _command_section(text: str, top: str) -> str | None:
    """The level-2 section of commands.md whose heading names `bigbench TOP`."""
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    for section in sections:
        heading = section.split("\n", 1)[0]
        if re.search(rf"`bigbench {re.escape(top)}[ `]", heading):
            return section
    return None


def test_every_command_option_is_in_commands_page() -> None:
    text = (DOCS / "commands.md").read_text()
    missing = []
    for path, command in _leaf_commands():
        name = "bigbench " + " ".join(path)
        section = _command_section(text, path[0])
        if section is None:
            missing.append(f"{name}: no '## `bigbench {path[0]} …`' section")
            continue
        for param in command.params:
            if getattr(param, "param_type_name", "") != "option":
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", section):
                    missing.append(f"{name}: {opt}")
    assert not missing, "docs/commands.md does not document:\n" + "\n".join(missing)


def _example_commands(text: str) -> list[str]:
    """Every `bigbench …` line of the page's sh code blocks, without its comment."""
    commands, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = line.strip()
        elif fence is not None and match:
            fence = None
        elif fence in ("```sh", "```bash") and line.strip().startswith("bigbench"):
            commands.append(line.split(" #", 1)[0].strip())
    return commands


def _example_error(line: str, leaves: dict) -> str | None:
    """Why a documented `bigbench …` line would not parse, or None."""
    words = line.split()[1:]
    path: tuple[str, ...] = ()
    while words and any(leaf[:len(path) + 1] == (*path, words[0]) for leaf in leaves):
        path, words = (*path, words[0]), words[1:]
    if path not in leaves:
        if path == () and words[:1] in (["--version"], ["--help"]):
            return None
        return "no such command"
    known = {"--help"}
    for param in leaves[path].params:
        known |= {*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])}
    for word in words:
        if word == "--":  # the rest belongs to the measured command
            break
        if word.startswith("--") and word.split("=", 1)[0] not in known:
            return f"no option {word}"
    return None


def test_example_commands_name_real_commands_and_options() -> None:
    leaves = {tuple(path): command for path, command in _leaf_commands()}
    assert _example_error("bigbench trian configs/cnn.yaml", leaves) == "no such command"
    assert _example_error("bigbench bench --suit smoke", leaves) == "no option --suit"
    assert _example_error("bigbench energy measure -- python x.py --epochs 1", leaves) is None
    wrong, seen = [], 0
    for page in PAGES:
        for line in _example_commands(page.read_text()):
            seen += 1
            error = _example_error(line, leaves)
            if error:
                wrong.append(f"{page.relative_to(ROOT)}: `{line}`: {error}")
    assert seen > 20
    assert not wrong, "examples that would not run:\n" + "\n".join(wrong)
