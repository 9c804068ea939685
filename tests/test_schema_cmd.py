"""bigbench schema run|bench|optimize|sweep|config: JSON Schemas on stdout, one-line errors on
stderr."""

from __future__ import annotations

import json

import pytest

from bigbench.records import BENCH_SCHEMA, OPTIMIZE_SCHEMA, RUN_SCHEMA, SWEEP_SCHEMA


@pytest.mark.parametrize(("kind", "title", "schema_id"), [
    ("run", "RunRecord", RUN_SCHEMA), ("bench", "BenchDocument", BENCH_SCHEMA),
    ("optimize", "OptimizeDocument", OPTIMIZE_SCHEMA), ("sweep", "SweepDocument", SWEEP_SCHEMA)])
def test_result_schemas(cli, kind, title, schema_id) -> None:
    result = cli("schema", kind)
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["title"] == title
    assert schema["properties"]["schema"]["const"] == schema_id
    assert "description" in schema["properties"]["status"]


def test_config_schema_is_the_config_commands(cli) -> None:
    result = cli("schema", "config")
    assert result.exit_code == 0
    assert result.stdout == cli("config", "schema").stdout
    assert json.loads(result.stdout)["title"] == "ExperimentConfig"


@pytest.mark.parametrize(("args", "expected"), [
    (["schema", "rn"], "error: schema: unknown kind 'rn' (did you mean 'run'?); choose "
                       "'run', 'bench', 'optimize', 'sweep' or 'config'\n"),
    (["schema", "optimise"], "error: schema: unknown kind 'optimise' (did you mean "
                             "'optimize'?); choose 'run', 'bench', 'optimize', 'sweep' or "
                             "'config'\n"),
    (["schema", "results"], "error: schema: unknown kind 'results'; choose 'run', 'bench', "
                            "'optimize', 'sweep' or 'config'\n"),
    (["schema"], "error: schema: say which schema: 'run', 'bench', 'optimize', 'sweep' or "
                 "'config'\n"),
])
def test_unknown_or_missing_kind_is_one_line_and_exit_2(cli, args, expected) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr == expected and result.stdout == ""


def test_help_lists_the_command_with_examples(cli) -> None:
    assert "schema" in cli("--help").stdout
    help_text = cli("schema", "--help").stdout
    assert "bigbench schema run" in help_text and "bigbench schema config" in help_text
    assert "bigbench schema optimize" in help_text and "bigbench schema sweep" in help_text
