"""optimize.json's typed schema: real documents validate, damaged ones are refused by name.

The two documents in tests/data are real outputs of ``bigbench optimize`` on CPU: one completed
(every recipe, one of them skipped) and one that failed while evaluating the variants.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema  # a dev dependency: an independent validator of the exported schema
import pytest
from conftest import undeclared_keys
from pydantic import BaseModel
from typer.testing import CliRunner

from bigbench.cli import app
from bigbench.records import (
    OPTIMIZE_SCHEMA,
    OptimizeConfig,
    OptimizeDocument,
    RecordError,
    json_schema,
    load_optimize,
    load_result,
    read_document,
)
from bigbench.records.run import TrainSettings

DATA = Path(__file__).parent / "data"
EXAMPLES = {"completed": DATA / "optimize-completed.json", "failed": DATA / "optimize-failed.json"}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    return {name: json.loads(path.read_text()) for name, path in EXAMPLES.items()}


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema("optimize"))


def check(document: dict) -> OptimizeDocument:
    """Validate against the exported JSON Schema and through the model."""
    _validator().validate(document)
    return OptimizeDocument.model_validate(document)


def _set(document: dict, value: object, *path: str | int) -> dict:
    out = copy.deepcopy(document)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def _drop(document: dict, *path: str | int) -> dict:
    out = copy.deepcopy(document)
    target = out
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return out


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_real_documents_match_the_model_and_the_exported_schema(documents, name) -> None:
    assert check(documents[name]).schema_ == OPTIMIZE_SCHEMA
    assert load_optimize(EXAMPLES[name]).status == name


def test_real_documents_cover_the_interesting_shapes(documents) -> None:
    done = OptimizeDocument.model_validate(documents["completed"])
    assert done.env is not None and done.settings is not None and done.pareto is not None
    assert done.settings.batch_sizes == [1, 64] and done.pareto.front
    kinds = {v.kind for v in done.variants}
    assert kinds == {"base", "prune", "quantize", "distill"}
    skipped = next(v for v in done.variants if v.status == "skipped")
    assert skipped.reason and skipped.speed is None and skipped.pareto is None
    assert skipped.model is None and skipped.weights_bytes is None
    base = done.variants[0]
    assert base.speed is not None and base.eval is not None and base.sparsity is not None
    batch_1 = base.speed["batch_1"]
    assert batch_1.status == "ok" and batch_1.latency_s is not None
    assert batch_1.j_per_sample is not None and batch_1.j_per_sample.median is None
    assert "j_per_sample" in batch_1.reasons  # a null figure says why
    structured = next(v for v in done.variants if v.structure is not None)
    assert structured.train is not None and structured.train.steps == 20
    quantized = next(v for v in done.variants if v.quantized_layers)
    assert quantized.float_layers is not None and quantized.sparsity is None
    baseline = next(v for v in done.variants if v.name.endswith("-baseline"))
    assert "teacher" in baseline.recipe.model_fields_set and baseline.recipe.alpha == 0.0

    failed = OptimizeDocument.model_validate(documents["failed"])
    assert failed.error and failed.traceback and failed.finished_at is None
    assert failed.env is None and failed.pareto is None
    assert all(v.speed is None and v.eval is None for v in failed.variants)


def _undeclared(model: BaseModel) -> list[str]:
    return undeclared_keys(model, (OptimizeConfig, TrainSettings))


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_key_written_today_is_declared(documents, name) -> None:
    assert _undeclared(OptimizeDocument.model_validate(documents[name])) == []


def test_every_field_is_described() -> None:
    schema = json_schema("optimize")
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["schema"]["const"] == OPTIMIZE_SCHEMA
    for name, definition in [("top", schema), *schema["$defs"].items()]:
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"optimize: {name}.{key} has no description"


def test_a_running_document_needs_no_measured_sections(documents) -> None:
    running = {k: v for k, v in documents["completed"].items()
               if k not in ("env", "settings", "pareto")}
    running.update(status="running", finished_at=None, variants=[],
                   base={"source": "trained", "path": None})
    check(running)
    mid_build = copy.deepcopy(running)  # variants built, nothing measured yet
    mid_build["variants"] = [{k: v for k, v in entry.items()
                              if k not in ("eval", "speed", "delta", "pareto")}
                             for entry in documents["completed"]["variants"]]
    check(mid_build)


def test_unknown_keys_are_allowed_for_newer_writers(documents) -> None:
    newer = _set(documents["completed"], {"p50_j": 0.1}, "variants", 0, "speed", "batch_1",
                 "energy_detail")
    newer["variants"][1]["new_figure"] = 3
    newer["pareto"]["method"] = "weak dominance"
    check(newer)


@pytest.mark.parametrize(("damage", "where"), [
    (("set", "done", "status"), "status"),
    (("set", "bigbench.optimize/2", "schema"), "schema"),
    (("set", "big", "variants", 0, "weights_bytes"), "variants[0].weights_bytes"),
    (("set", "12", "variants", 0, "speed", "batch_1", "samples_per_s", "median"),
     "variants[0].speed.batch_1.samples_per_s.median"),
    (("set", True, "variants", 1, "params"), "variants[1].params"),
    (("set", "shrunk", "variants", 1, "kind"), "variants[1].kind"),
    (("set", "fine", "variants", 0, "status"), "variants[0].status"),
    (("set", "0.3", "variants", 0, "eval", "accuracy"), "variants[0].eval.accuracy"),
    (("set", 1, "variants", 0, "pareto", "dominated"), "variants[0].pareto.dominated"),
    (("drop", "variants", 0, "speed", "batch_1", "latency_s"), "variants[0].speed.batch_1"),
    (("drop", "pareto"), "top level"),  # a completed document without its comparison
    (("drop", "variants", 0, "recipe"), "variants[0].recipe"),
    (("drop", "base", "source"), "base.source"),
])
def test_damaged_documents_are_refused_naming_the_field(documents, tmp_path, damage,
                                                        where) -> None:
    action, *rest = damage
    original = documents["completed"]
    damaged = _drop(original, *rest) if action == "drop" else _set(original, *rest)
    path = tmp_path / "optimize.json"
    path.write_text(json.dumps(damaged))
    with pytest.raises(RecordError) as caught:
        load_optimize(tmp_path)
    (line,) = caught.value.lines()
    assert str(path) in line and "\n" not in line
    if where == "schema":
        assert "is not bigbench.optimize/1" in line
    else:
        assert f"damaged bigbench.optimize/1 document: {where}" in line
    assert not _validator().is_valid(damaged)


def test_speed_holds_only_batch_keys(documents) -> None:
    damaged = copy.deepcopy(documents["completed"])
    speed = damaged["variants"][0]["speed"]
    speed["b1"] = speed.pop("batch_1")
    with pytest.raises(ValueError, match="speed.b1"):
        OptimizeDocument.model_validate(damaged)
    assert not _validator().is_valid(damaged)


def test_loaders_find_optimize_json_in_its_folder(documents, tmp_path) -> None:
    (tmp_path / "optimize.json").write_text(json.dumps(documents["failed"]))
    found, document = read_document(tmp_path)
    assert found.name == "optimize.json" and document["schema"] == OPTIMIZE_SCHEMA
    assert load_optimize(tmp_path / "optimize.json").status == "failed"
    with pytest.raises(RecordError, match="holds no bench.json or run.json"):
        load_result(tmp_path)  # compare and report read runs and benches only
    with pytest.raises(RecordError, match="not bigbench.bench/1 or bigbench.run/1"):
        load_result(tmp_path / "optimize.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="holds no optimize.json"):
        load_optimize(tmp_path / "empty")


def test_schema_command_prints_the_optimize_schema(documents) -> None:
    result = CliRunner().invoke(app, ["schema", "optimize"])
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema == json_schema("optimize")
    assert schema["title"] == "OptimizeDocument"
    for document in documents.values():
        jsonschema.Draft202012Validator(schema).validate(document)


def test_the_writer_uses_the_records_schema_id() -> None:
    from bigbench.optimize import run

    assert run.OPTIMIZE_SCHEMA == OPTIMIZE_SCHEMA


OPTIMIZE_CONFIG = """\
name: tiny
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 128, test_size: 64}
train: {max_steps: 4, batch_size: 16, warmup_steps: 1}
device: cpu
optimize:
  variants: [{kind: prune, amount: 0.5}]
"""


@pytest.mark.parametrize("complete", [True, False])
def test_run_optimize_warns_when_its_document_breaks_the_model(documents, tmp_path, monkeypatch,
                                                               complete) -> None:
    """The final document is validated; a mismatch is a warning (a bug), never an error."""
    from bigbench.config import load_config
    from bigbench.optimize import run

    def stages(optimize_run, *args: object) -> None:  # instead of training and measuring
        if complete:
            for key in ("env", "settings", "variants", "pareto"):
                optimize_run.document[key] = documents["completed"][key]

    monkeypatch.setattr(run, "_stages", stages)
    config = tmp_path / "optimize.yaml"
    config.write_text(OPTIMIZE_CONFIG)
    result = run.run_optimize(load_config(config), out=tmp_path / "out")
    assert result.document["status"] == "completed"
    if complete:
        assert result.warnings == []
        assert load_optimize(tmp_path / "out").status == "completed"
    else:
        (warning,) = result.warnings
        assert "optimize.json: damaged bigbench.optimize/1 document: top level: a completed " \
               "document needs env, settings, pareto" in warning
        assert "a bug in bigbench" in warning
