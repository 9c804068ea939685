"""The config reference as Markdown, generated from the schema (docs/configuration.md embeds it)."""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bigbench.config.schema import ExperimentConfig
from bigbench.data.registry import DATASETS
from bigbench.models.registry import MODELS
from bigbench.registry import Registry


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "(section)"
    return f"`{json.dumps(field.default)}`"


def _section_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        key = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _section_rows(annotation, f"{key}.")
        elif name in ("model", "data") and model is ExperimentConfig:
            rows.append((key, "required", field.description or ""))
        else:
            rows.append((key, _default(field), field.description or ""))
    return rows


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{k}` | {d} | {_escape(m)} |" for k, d, m in rows]
    return lines


def _registry_section(registry: Registry, section: str) -> list[str]:
    # Names registered with the same argument class (rnn/lstm/gru) share one table.
    groups: dict[type, list] = {}
    for spec in registry:
        groups.setdefault(spec.config_class.__bases__[0], []).append(spec)
    lines: list[str] = []
    for specs in groups.values():
        rows = [(f"{section}.{k}", d, m) for k, d, m in _section_rows(specs[0].config_class, "")
                if k != "name"]
        lines.append("")
        lines += [f"`{section}.name: {spec.name}` — {spec.summary}.  " for spec in specs]
        lines.append("")
        lines += _table(rows) if rows else ["(no arguments)"]
    return lines


def markdown_reference() -> str:
    """Every config key with its default and meaning, as Markdown tables."""
    lines: list[str] = _table(_section_rows(ExperimentConfig, ""))
    lines += ["", "#### Models"] + _registry_section(MODELS, "model")
    lines += ["", "#### Datasets"] + _registry_section(DATASETS, "data")
    return "\n".join(lines) + "\n"


