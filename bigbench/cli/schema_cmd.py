"""``bigbench schema run|bench|optimize|sweep|config``: the JSON Schema of a result file or of
the config."""

from __future__ import annotations

import json

import typer

from bigbench.cli.common import user_errors
from bigbench.errors import ConfigError, did_you_mean, one_of

#: What ``bigbench schema`` can describe, and the file it describes.
KINDS = {"run": "run.json", "bench": "bench.json", "optimize": "optimize.json",
         "sweep": "sweep.json", "config": "the experiment config (YAML)"}


@user_errors
def schema(
    kind: str | None = typer.Argument(None, metavar="run|bench|optimize|sweep|config",
                                      show_default=False,
                                      help="run (run.json), bench (bench.json), optimize "
                                      "(optimize.json), sweep (sweep.json) or config (the "
                                      "experiment YAML)."),
) -> None:
    """Print the JSON Schema of run.json, bench.json, optimize.json, sweep.json or the
    experiment config.

    Result files name their schema ("schema": "bigbench.run/1", "bigbench.bench/1",
    "bigbench.optimize/1" or "bigbench.sweep/1"). Every field is described, with its unit.
    Validate results with any JSON Schema tool; point an editor at the config schema for
    completion. bigbench schema config is the same as bigbench config schema.

    Examples:

      bigbench schema run > run.schema.json
      bigbench schema bench | python -m json.tool | less
      bigbench schema optimize > optimize.schema.json
      bigbench schema sweep > sweep.schema.json
      bigbench schema config > bigbench.schema.json
    """
    if kind is None:
        raise ConfigError(f"schema: say which schema: {one_of(list(KINDS))}")
    if kind not in KINDS:
        raise ConfigError(f"schema: unknown kind '{kind}'{did_you_mean(kind, KINDS)}; choose "
                          f"{one_of(list(KINDS))}")
    if kind == "config":
        from bigbench.cli.config_cmd import schema as config_schema

        config_schema()
        return
    from bigbench.records import json_schema

    typer.echo(json.dumps(json_schema(kind), indent=2))  # type: ignore[arg-type]
