"""Shell completion of option values: config keys after ``--set``, model names, devices; and
bash completion that survives bash splitting words at ``=`` and ``:``.

Every function here runs on each Tab press, so it stays cheap: the config schema and the
registries are pydantic models and names (no torch), read once and cached.

Bash splits the line at the characters of ``COMP_WORDBREAKS`` (``=`` and ``:`` among them), so
``--set train.compile=t`` reaches the program as ``--set``, ``train.compile``, ``=``, ``t`` and
readline replaces only ``t``. :class:`BashComplete` joins the pieces back before Click sees
them and answers with the part after the last break (``true``); its script adds no space after
a completed ``key=``, so the value can follow at once.
"""

from __future__ import annotations

import functools
import os
import sys
import types
import typing
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any

from typer._completion_classes import BashComplete as TyperBashComplete

#: What ``--device`` accepts besides ``cuda:N`` (see ``check_device_string``).
DEVICES = ("auto", "cpu", "cuda")


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a Union / Optional annotation (itself when it is not one)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_section(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(models: Iterable[Any], prefix: str,
          keys: dict[str, tuple[str, list[Any]]]) -> None:
    """Collect ``key -> (description, annotations)`` for every leaf of these config sections.

    A section typed as a union (``model``, ``data``: one class per registered name) or as an
    optional section (``bench``) contributes the keys of every alternative.
    """
    for model in models:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            members = [m for m in _members(field.annotation) if m is not type(None)]
            sections = [m for m in members if _is_section(m)]
            if sections:
                _walk(sections, f"{key}.", keys)
                continue
            description, annotations = keys.get(key, (field.description or "", []))
            keys[key] = (description, annotations + members)


@functools.cache
def config_keys() -> dict[str, tuple[str, list[Any]]]:
    """Every config key ``--set`` accepts, with its description and value annotations."""
    from bigbench.config.schema import ExperimentConfig

    keys: dict[str, tuple[str, list[Any]]] = {}
    _walk([ExperimentConfig], "", keys)
    return keys


def _short(text: str, limit: int = 70) -> str:
    """The first sentence of a description, cut to ``limit`` characters."""
    text = " ".join(text.split())
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[:limit - 1] + "…"


def _values(key: str) -> list[str]:
    """The values worth offering after ``KEY=``: choices, booleans, devices."""
    if key == "device":
        return device_names()
    entry = config_keys().get(key)
    if entry is None:
        return []
    values: list[str] = []
    for annotation in entry[1]:
        if typing.get_origin(annotation) is typing.Literal:
            values += [str(v) for v in typing.get_args(annotation)]
        elif annotation is bool:
            values += ["true", "false"]
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            values += [str(member.value) for member in annotation]
    return list(dict.fromkeys(values))


def complete_set(incomplete: str) -> list[tuple[str, str]]:
    """``--set``: config keys as ``key=`` (with their meaning), then a key's known values."""
    key, equals, value = incomplete.partition("=")
    if equals:
        return [(f"{key}={v}", "") for v in _values(key) if v.startswith(value)]
    return [(f"{k}=", _short(description)) for k, (description, _) in config_keys().items()
            if k.startswith(incomplete)]


def _complete_list(incomplete: str, names: Iterable[str]) -> list[str]:
    """Complete the last item of a comma-separated list, skipping items already given."""
    head, comma, last = incomplete.rpartition(",")
    given = set(head.split(",")) if comma else set()
    return [f"{head}{comma}{name}" for name in names
            if name.startswith(last) and name not in given]


def model_names() -> list[str]:
    """Registered model names (the registry is torch-free)."""
    import bigbench.models.specs  # noqa: F401  (registers the built-in models)
    from bigbench.models.registry import MODELS

    return list(MODELS.names())


def complete_models(incomplete: str) -> list[str]:
    """``--models``: model names; in ``cnn,g`` the last item is completed (``cnn,gpt``)."""
    return _complete_list(incomplete, model_names())


def complete_precisions(incomplete: str) -> list[str]:
    """``--precision``: fp32, bf16, fp16, comma-separated."""
    from bigbench.benchmark.matrix import PRECISIONS

    return _complete_list(incomplete, PRECISIONS)


def complete_modes(incomplete: str) -> list[str]:
    """``--mode``: train, infer, comma-separated."""
    from bigbench.benchmark.matrix import MODES

    return _complete_list(incomplete, MODES)


def _gpu_count() -> int:
    """GPUs this process may see, without importing torch or loading a driver library."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
    except OSError:
        return 0


def device_names() -> list[str]:
    """auto, cpu, cuda and cuda:N for each visible GPU (cuda:0 at least)."""
    return [*DEVICES, *(f"cuda:{i}" for i in range(max(_gpu_count(), 1)))]


def complete_device(incomplete: str) -> list[str]:
    """``--device``: auto, cpu, cuda, cuda:0…"""
    return [d for d in device_names() if d.startswith(incomplete)]


#: Characters bash splits words at (in its default ``COMP_WORDBREAKS``) that occur inside
#: bigbench's arguments: ``--set key=value``, ``--opt=value``, ``cuda:0``.
WORD_BREAKS = "=:"

#: Typer's bash script, plus ``nospace`` after a lone ``key=`` reply (so the value can be typed
#: right after it). Filled in like Typer's (``--show-completion``, ``--install-completion``).
BASH_SCRIPT = """
%(complete_func)s() {
    local IFS=$'\\n'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \\
                   COMP_CWORD=$COMP_CWORD \\
                   %(autocomplete_var)s=complete_bash $1 ) )
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace
    fi
    return 0
}

complete -o default -F %(complete_func)s %(prog_name)s
"""


def _is_break(word: str) -> bool:
    return bool(word) and all(c in WORD_BREAKS for c in word)


def rejoin_words(words: list[str]) -> list[list[str]]:
    """Group bash's words into the arguments they were typed as.

    A word made only of break characters (``=``, ``:``) was split off the word before it, and
    the word after it from it: ``["a.b", "=", "c"]`` → ``[["a.b", "=", "c"]]``.
    """
    groups: list[list[str]] = []
    glue = False
    for word in words:
        if groups and (glue or _is_break(word)):
            groups[-1].append(word)
        else:
            groups.append([word])
        glue = _is_break(word)
    return groups


def _option_value_start(incomplete: str) -> int:
    """Where Click starts completing in ``incomplete``: after ``--opt=`` (Click splits an
    option's name from its value there), else at the start."""
    if incomplete[:1] == "-" and "=" in incomplete:
        return incomplete.index("=") + 1
    return 0


def _click_completion() -> types.ModuleType:
    """Click's ``shell_completion`` module as Typer uses it: its own vendored copy in recent
    Typer versions, ``click.shell_completion`` in older ones (where its classes come from)."""
    return sys.modules[TyperBashComplete.__mro__[1].__module__]


class BashComplete(TyperBashComplete):
    """Typer's bash completion, with the words bash split at ``=`` and ``:`` joined again."""

    source_template = BASH_SCRIPT
    #: The start of the argument being completed that readline leaves in place.
    kept: str = ""

    def get_completion_args(self) -> tuple[list[str], str]:
        """The arguments before the cursor and the one being completed, as typed.

        Also keeps :attr:`kept`: the start of that argument readline leaves in place (up to
        its last break character), which every reply must leave out.
        """
        words = _click_completion().split_arg_string(os.environ.get("COMP_WORDS", ""))
        cword = int(os.environ.get("COMP_CWORD", "0"))
        typed = words[1:cword + 1]  # a cursor after a space: past the last word
        groups = rejoin_words(typed)
        current = groups.pop() if groups and cword < len(words) else []
        self.kept = "".join(current if current and _is_break(current[-1]) else current[:-1])
        return ["".join(group) for group in groups], "".join(current)

    def complete(self) -> str:
        """One reply per line, each the text that replaces what follows :attr:`kept`."""
        args, incomplete = self.get_completion_args()
        head = incomplete[:_option_value_start(incomplete)]
        replies = [head + item.value for item in self.get_completions(args, incomplete)]
        return "\n".join(r[len(self.kept):] for r in replies if r.startswith(self.kept))


def use_bash_completion() -> None:
    """Make ``complete_bash`` requests and the bash script bigbench's (:class:`BashComplete`).

    Typer registers its own class each time it builds the app, so the root command calls this
    as it starts; Typer reads the script from a module dict (no public hook exists).
    """
    from typer import _completion_shared

    _click_completion().add_completion_class(BashComplete, "bash")
    scripts = getattr(_completion_shared, "_completion_scripts", None)
    if isinstance(scripts, dict):
        scripts["bash"] = BASH_SCRIPT
