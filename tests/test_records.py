"""Typed results: real run.json and bench.json validate against the exported JSON Schemas."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import jsonschema  # a dev dependency: an independent validator of the exported schema
import pytest
from conftest import TINY_CNN, undeclared_keys
from fakes import LivePowercap
from pydantic import BaseModel
from typer.testing import CliRunner

from bigbench.cli import app
from bigbench.measuring.energy import rapl
from bigbench.records import (
    BENCH_SCHEMA,
    RUN_SCHEMA,
    BenchDocument,
    RecordError,
    RunConfig,
    RunRecord,
    json_schema,
    load_bench,
    load_result,
    load_run,
)
from bigbench.records.run import RunTime, TrainSettings

BENCH_ARGS = ["--device", "cpu", "--models", "cnn", "--batch-sizes", "8", "--mode", "train",
              "--duration", "0.02", "--repeats", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Real outputs of the CLI: runs and benchmarks with and without measured energy."""
    root = tmp_path_factory.mktemp("records")
    config = root / "tiny.yaml"
    config.write_text(TINY_CNN + "measure: {idle_s: 0.1, carbon_intensity_g_per_kwh: 400}\n")
    runner = CliRunner()

    def run(*args: object) -> None:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr

    live = LivePowercap(root / "powercap", {"intel-rapl:0": 40.0, "intel-rapl:0:2": 4.0},
                        period_s=0.002).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(rapl.ROOT_ENV, str(root / "powercap"))
            run("train", config, "--out", root / "run")
            run("bench", *BENCH_ARGS, "--no-energy-min-window", "--out", root / "bench")
    finally:
        live.stop()
    run("train", config, "--out", root / "plain", "--set", "measure.energy=false")
    run("bench", *BENCH_ARGS, "--precision", "fp32", "--out", root / "bench-plain",
        "--channels-last", "--models", "cnn,rnn")
    return {name: json.loads((root / name / file).read_text())
            for name, file in (("run", "run.json"), ("plain", "run.json"),
                               ("bench", "bench.json"), ("bench-plain", "bench.json"))}


def _kind(document: dict) -> str:
    return "run" if document.get("schema") == RUN_SCHEMA else "bench"


def check(document: dict) -> None:
    """Validate against the exported JSON Schema and through the models."""
    kind = _kind(document)
    jsonschema.Draft202012Validator(json_schema(kind)).validate(document)
    (RunRecord if kind == "run" else BenchDocument).model_validate(document)


def invalid(document: dict) -> bool:
    """True when both the JSON Schema and the models refuse ``document``."""
    model = RunRecord if _kind(document) == "run" else BenchDocument
    try:
        model.model_validate(document)
        return False
    except ValueError:
        pass
    return not jsonschema.Draft202012Validator(json_schema(_kind(document))).is_valid(document)


@pytest.mark.parametrize("name", ["run", "plain", "bench", "bench-plain"])
def test_real_outputs_match_the_exported_schema(results, name) -> None:
    check(results[name])


def test_real_outputs_cover_the_interesting_shapes(results) -> None:
    run = RunRecord.model_validate(results["run"])
    assert run.energy is not None and run.energy.status == "measured"
    assert run.energy.idle is not None and run.carbon is not None
    assert run.throughput is not None and run.throughput.samples_per_s
    assert RunRecord.model_validate(results["plain"]).energy.total_j is None  # type: ignore[union-attr]
    bench = BenchDocument.model_validate(results["bench"])
    energy = bench.points[0].energy
    assert energy is not None and energy.quality == "low" and energy.repeats
    statuses = {p.status for p in BenchDocument.model_validate(results["bench-plain"]).points}
    assert statuses == {"ok", "skipped"}  # the RNN cannot run channels_last


def _undeclared(model: BaseModel) -> list[str]:
    return undeclared_keys(model, (RunConfig, TrainSettings, RunTime))


@pytest.mark.parametrize("name", ["run", "plain", "bench", "bench-plain"])
def test_every_key_written_today_is_declared(results, name) -> None:
    model = RunRecord if name in ("run", "plain") else BenchDocument
    assert _undeclared(model.model_validate(results[name])) == []


def test_a_running_record_needs_no_measured_sections(results) -> None:
    running = {k: v for k, v in results["run"].items()
               if k in RunRecord.model_fields or k == "schema"}
    for key in ("progress", "throughput", "memory", "energy", "flops", "eval", "time",
                "windows", "files", "error", "carbon", "stop_reason", "stop_detail"):
        running.pop(key, None)
    running.update(status="running", finished_at=None)
    check(running)


def _drop(document: dict, *path: str | int) -> dict:
    out = copy.deepcopy(document)
    target = out
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return out


def _set(document: dict, value: object, *path: str | int) -> dict:
    out = copy.deepcopy(document)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize("damage", [
    ("run", "drop", "env"),
    ("run", "drop", "throughput"),  # completed, but no throughput
    ("run", "drop", "performance", "channels_last"),
    ("run", "set", "fast", "throughput", "samples_per_s"),
    ("run", "set", True, "memory", "host_peak_rss_bytes"),
    ("run", "set", "done", "status"),
    ("run", "set", "bigbench.run/2", "schema"),
    ("bench", "drop", "points", 0, "settings", "batch_size"),
    ("bench", "drop", "points", 0, "energy"),  # an ok point without energy
    ("bench", "set", "12", "points", 0, "samples_per_s", "median"),
    ("bench", "set", "great", "points", 0, "energy", "quality"),
    ("bench", "set", [1, "x"], "points", 0, "settings", "sample_shape"),
])
def test_missing_keys_and_wrong_types_fail_validation(results, damage) -> None:
    kind, action, *rest = damage
    document = results["run" if kind == "run" else "bench"]
    damaged = _drop(document, *rest) if action == "drop" else _set(document, *rest)
    assert invalid(damaged)


def test_unknown_keys_are_allowed_for_newer_writers(results) -> None:
    newer = _set(results["bench"], {"sm_clock_mhz": 1980}, "env", "telemetry")
    newer["points"][0]["energy"]["new_figure_j"] = 1.5
    check(newer)


@pytest.mark.parametrize("kind", ["run", "bench", "optimize", "sweep"])
def test_every_field_is_described(kind) -> None:
    schema = json_schema(kind)
    assert schema["$schema"].endswith("2020-12/schema")
    for name, definition in [("top", schema), *schema["$defs"].items()]:
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{kind}: {name}.{key} has no description"


def test_loaders_read_files_and_folders(results, tmp_path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(json.dumps(results["run"]))
    (tmp_path / "bench.json").write_text(json.dumps(results["bench"]))
    assert load_run(tmp_path / "r").name == "tiny"
    assert load_bench(tmp_path / "bench.json").schema_ == BENCH_SCHEMA
    assert isinstance(load_result(tmp_path)[1], BenchDocument)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not a JSON result file"),
    ("[1, 2]", "not a bigbench result"),
    ('{"schema": "bigbench.bench/1"}', "not bigbench.run/1"),
    ("DAMAGED", "damaged bigbench.run/1 document: throughput.samples_per_s"),
])
def test_loaders_refuse_bad_files_in_one_line(results, tmp_path, content, message) -> None:
    path = tmp_path / "run.json"
    if content == "DAMAGED":
        content = json.dumps(_set(results["run"], "fast", "throughput", "samples_per_s"))
    if content is not None:
        path.write_text(content)
    with pytest.raises(RecordError) as caught:
        load_run(path)
    (line,) = caught.value.lines()
    assert message in line and "\n" not in line


def test_importing_records_does_not_import_torch() -> None:
    code = textwrap.dedent("""\
        import sys
        import bigbench.records
        bigbench.records.json_schema("run")
        print("torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
