"""Turn pydantic validation errors into one clear line each.

Each line names where the key came from (file and line, or the ``--set`` that supplied it), the
key path, the bad value and what is allowed, with a "did you mean" for near misses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bigbench.config.yaml_source import KeyPath
from bigbench.data.registry import DATASETS
from bigbench.errors import did_you_mean, one_of
from bigbench.models.registry import MODELS

# pydantic phrases messages as "Input should …", "String should …"; after "it" only "should …".
_SUBJECT = re.compile(r"^(Input|String|Value|List|Dictionary|Tuple|Set)\s+should")
_REGISTRY_SECTIONS = {"model": MODELS, "data": DATASETS}


def describe_errors(
    error: ValidationError, root: type[BaseModel], raw: object, where: Mapping[KeyPath, str]
) -> list[str]:
    """Return one message line per validation error.

    Args:
        error: What pydantic raised.
        root: The model that was validated.
        raw: The data that was validated (to find the registry name of a section).
        where: Key path → "file:line" or "--set ..." of where it was written.
    """
    lines = []
    for item in error.errors(include_url=False):
        path = _user_path(item["loc"], raw)
        lines.append(_describe(item, path, root, raw, where))
    return list(dict.fromkeys(lines))  # keep order, drop exact repeats


def _user_path(loc: Sequence[str | int], raw: object) -> KeyPath:
    """Drop the discriminator tags pydantic inserts after a tagged section: the registry name
    of ``model``/``data`` (and of a distillation ``student``), an optimize variant's ``kind``."""
    path: list[str | int] = []
    node, tagged = raw, False
    for key in loc:
        if (not tagged and path and isinstance(node, Mapping)
                and key in (node.get("name"), node.get("kind"))):
            tagged = True  # at most one tag per section
            continue
        path.append(key)
        tagged = False
        if isinstance(node, Mapping):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            node = None
    return tuple(path)


def _locate(path: KeyPath, where: Mapping[KeyPath, str], default: str) -> str:
    for end in range(len(path), 0, -1):
        if path[:end] in where:
            return where[path[:end]]
    return default


def _describe(
    item: Mapping[str, Any], path: KeyPath, root: type[BaseModel], raw: object,
    where: Mapping[KeyPath, str],
) -> str:
    dotted = ".".join(str(p) for p in path) or "<config>"
    origin = _locate(path, where, where.get((), "config"))
    kind = item["type"]
    value = item.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1], root, raw)
        hint = did_you_mean(path[-1], allowed)
        allowed_text = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"{origin}: unknown key '{dotted}'{hint}{allowed_text}"
    if kind == "missing":
        return f"{origin}: missing required key '{dotted}'"
    if kind in ("union_tag_invalid", "union_tag_not_found") and (
            len(path) != 1 or path[0] not in _REGISTRY_SECTIONS):
        # Another tagged union (an optimize variant's kind, a student's model name).
        ctx = item.get("ctx", {})
        key = str(ctx.get("discriminator", "name")).strip("'")
        origin = _locate(path + (key,), where, origin)
        if kind == "union_tag_not_found":
            return f"{origin}: '{dotted}.{key}' is required"
        tag, expected = ctx.get("tag"), ctx.get("expected_tags", "")
        choices = [c.strip().strip("'") for c in expected.split(",")]
        what = next((r.kind for r in _REGISTRY_SECTIONS.values()
                     if set(r.names()) == set(choices)), key)
        return (f"{origin}: {dotted}.{key}: unknown {what} {_show(tag)}"
                f"{did_you_mean(tag, choices)}; choose {one_of(choices)}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        registry = _REGISTRY_SECTIONS[path[0]]
        origin = _locate(path + ("name",), where, origin)
        if kind == "union_tag_not_found":
            return f"{origin}: '{dotted}.name' is required; choose {one_of(registry.names())}"
        tag = item.get("ctx", {}).get("tag")
        return (
            f"{origin}: {dotted}.name: unknown {registry.kind} {_show(tag)}"
            f"{did_you_mean(tag, registry.names())}; choose {one_of(registry.names())}"
        )
    if kind == "model_attributes_type" or kind == "model_type" or kind == "dict_type":
        return f"{origin}: '{dotted}' must be a mapping of keys, got {_show(value)}"
    if kind == "literal_error":
        expected = item.get("ctx", {}).get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",")]
        return (
            f"{origin}: {dotted}: {_show(value)} is not allowed; choose {expected}"
            f"{did_you_mean(value, choices)}"
        )
    message = item["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
        if path:
            return f"{origin}: {dotted}: {message}"
        return f"{origin}: {message}"
    if kind == "string_pattern_mismatch" and path == ("name",):
        return (f"{origin}: name: {_show(value)} is not allowed; use 1-64 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit")
    message = _SUBJECT.sub("should", message, count=1)
    return f"{origin}: {dotted}: {_show(value)} is not allowed; it {message}"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(path: KeyPath, root: type[BaseModel], raw: object) -> list[str]:
    """Field names of the config section at ``path`` (empty when it cannot be determined)."""
    model: type[BaseModel] | None = root
    node = raw
    for key in path:
        if model is None:
            return []
        node = node.get(key) if isinstance(node, Mapping) else None
        if key in _REGISTRY_SECTIONS and model is root:
            name = node.get("name") if isinstance(node, Mapping) else None
            try:
                model = _REGISTRY_SECTIONS[key].get(str(name)).config_class
            except Exception:  # an unknown name is reported by its own error
                return []
            continue
        field = model.model_fields.get(str(key))
        model = _model_in(field.annotation) if field else None
    return sorted(model.model_fields) if model is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
