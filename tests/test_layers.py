"""The package's layers: no import cycle, and no import reaching up a layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bigbench"

#: Package prefix → prefixes it must never import (at module level or inside functions).
FORBIDDEN = {
    "bigbench.measuring": ("bigbench.config", "bigbench.models", "bigbench.data",
                           "bigbench.workload", "bigbench.cli", "bigbench.benchmark"),
    "bigbench.models": ("bigbench.config", "bigbench.measuring", "bigbench.workload",
                        "bigbench.cli", "bigbench.benchmark"),
    "bigbench.data": ("bigbench.config", "bigbench.measuring", "bigbench.workload",
                      "bigbench.cli", "bigbench.benchmark"),
    "bigbench.strict": ("bigbench.",),
    "bigbench.registry": ("bigbench.config", "bigbench.models", "bigbench.data"),
    "bigbench.config": ("bigbench.measuring", "bigbench.workload", "bigbench.cli",
                        "bigbench.benchmark"),
    "bigbench.workload": ("bigbench.cli", "bigbench.benchmark", "bigbench.run_writer"),
    # The report reads results; it never measures, trains or reaches into the CLI.
    "bigbench.reporting": ("bigbench.cli", "bigbench.workload", "bigbench.measuring",
                           "bigbench.engine", "bigbench.trainer", "bigbench.training_loop"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Every bigbench module ``path`` imports (optionally only at module level)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # typing only: never executed
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("bigbench")}


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_reaches_up_a_layer(name) -> None:
    rules = [bad for prefix, bad in FORBIDDEN.items()
             if name == prefix or name.startswith(prefix + ".")]
    imported = _imports(MODULES[name], top_level_only=False)
    for bad in (b for rule in rules for b in rule):
        offending = sorted(i for i in imported if i == bad.rstrip(".") or i.startswith(bad))
        assert not offending, f"{name} imports {offending} from a higher layer"


def test_module_level_imports_have_no_cycle() -> None:
    def with_packages(names: set[str]) -> set[str]:
        # Importing bigbench.a.b runs bigbench/a/__init__.py first: a cycle through a
        # package's __init__ is a cycle too (the kind a lazy __getattr__ would paper over).
        out = set(names)
        for name in names:
            parts = name.split(".")
            out |= {".".join(parts[:i]) for i in range(2, len(parts))}
        return out

    graph = {name: {i for i in with_packages(_imports(path, top_level_only=True))
                    if i in MODULES}
             for name, path in MODULES.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " → ".join(trail[trail.index(name):] +
                                                               [name]))
        if name in done:
            return
        for child in sorted(graph[name]):
            # A package imports its submodules' names; a submodule importing its package's
            # __init__ is how Python loads it, not a cycle of ours.
            if child != name and not name.startswith(child + "."):
                visit(child, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
