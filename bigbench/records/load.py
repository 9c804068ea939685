"""Read and validate result files; export their JSON Schemas.

Every problem with a file someone hands bigbench (missing, unreadable, not JSON, another schema,
damaged) is a :class:`RecordError` with one line naming the file and, for a damaged one, the
first bad key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from bigbench.errors import BigbenchError
from bigbench.records.bench import BenchDocument
from bigbench.records.common import BENCH_SCHEMA, OPTIMIZE_SCHEMA, RUN_SCHEMA
from bigbench.records.optimize import OptimizeDocument
from bigbench.records.run import RunRecord
from bigbench.records.sweep import SWEEP_SCHEMA, SweepDocument

M = TypeVar("M", bound=BaseModel)
_MODELS: dict[str, type[BaseModel]] = {RUN_SCHEMA: RunRecord, BENCH_SCHEMA: BenchDocument,
                                       OPTIMIZE_SCHEMA: OptimizeDocument,
                                       SWEEP_SCHEMA: SweepDocument}
_SCHEMAS = {model: schema_id for schema_id, model in _MODELS.items()}
_KINDS = {"run": RUN_SCHEMA, "bench": BENCH_SCHEMA, "optimize": OPTIMIZE_SCHEMA,
          "sweep": SWEEP_SCHEMA}
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class RecordError(BigbenchError):
    """A result file is missing, unreadable, not JSON, of another schema, or damaged."""


def json_schema(kind: Literal["run", "bench", "optimize", "sweep"]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of run.json (``"run"``), bench.json (``"bench"``),
    optimize.json (``"optimize"``) or sweep.json (``"sweep"``).

    Raises:
        ValueError: for any other ``kind``.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown result kind {kind!r}; choose 'run', 'bench', 'optimize' or "
                         "'sweep'")
    schema_id = _KINDS[kind]
    return {"$schema": _DIALECT, **_MODELS[schema_id].model_json_schema(),
            "$comment": f"bigbench result schema {schema_id}"}


def _locate(path: Path, names: tuple[str, ...]) -> Path:
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise RecordError(f"{path}: holds no {' or '.join(names)}")
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    return path


def read_document(path: Path,
                  names: tuple[str, ...] = ("bench.json", "run.json", "optimize.json")
                  ) -> tuple[Path, dict[str, Any]]:
    """The JSON object in ``path`` (or in the first of ``names`` inside a folder).

    Raises:
        RecordError: when it is missing, unreadable, not JSON or not an object.
    """
    path = _locate(path, names)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not a JSON result file ({exc})") from None
    if not isinstance(document, dict):
        raise RecordError(f"{path}: not a bigbench result (the JSON is a "
                          f"{type(document).__name__}, not an object)")
    return path, document


def _problem(error: dict[str, Any]) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where.lstrip('.') or 'top level'}: {message}"


def validate(document: Any, model: type[M], source: str | Path) -> M:
    """``document`` as ``model``, or a RecordError naming the first bad key of ``source``."""
    expected = _SCHEMAS[model]
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema != expected:
        raise RecordError(f"{source}: schema {schema!r} is not {expected}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise RecordError(f"{source}: damaged {expected} document: "
                          f"{_problem(errors[0])}{more}") from None


def load_run(path: Path | str) -> RunRecord:
    """run.json of a run directory (or the file itself), validated.

    Raises:
        RecordError: missing, unreadable, not JSON, another schema, or damaged.
    """
    found, document = read_document(Path(path), ("run.json",))
    return validate(document, RunRecord, found)


def load_bench(path: Path | str) -> BenchDocument:
    """bench.json (or a folder holding one), validated.

    Raises:
        RecordError: missing, unreadable, not JSON, another schema, or damaged.
    """
    found, document = read_document(Path(path), ("bench.json",))
    return validate(document, BenchDocument, found)


def load_optimize(path: Path | str) -> OptimizeDocument:
    """optimize.json (or an optimize run folder holding one), validated.

    Raises:
        RecordError: missing, unreadable, not JSON, another schema, or damaged.
    """
    found, document = read_document(Path(path), ("optimize.json",))
    return validate(document, OptimizeDocument, found)


def load_sweep(path: Path | str) -> SweepDocument:
    """sweep.json (or a sweep folder holding one), validated.

    Raises:
        RecordError: missing, unreadable, not JSON, another schema, or damaged.
    """
    found, document = read_document(Path(path), ("sweep.json",))
    return validate(document, SweepDocument, found)


def load_result(path: Path | str) -> tuple[Path, RunRecord | BenchDocument]:
    """A bench.json or run.json, whichever ``path`` is (a folder: bench.json first).

    Returns:
        The file read and its validated document.

    Raises:
        RecordError: missing, unreadable, not JSON, neither schema, or damaged.
    """
    found, document = read_document(Path(path), ("bench.json", "run.json"))
    schema = document.get("schema")
    model = _MODELS.get(schema) if schema in (BENCH_SCHEMA, RUN_SCHEMA) else None
    if model is None:
        raise RecordError(f"{found}: schema {schema!r} is not {BENCH_SCHEMA} or {RUN_SCHEMA}")
    return found, validate(document, model, found)  # type: ignore[return-value]
