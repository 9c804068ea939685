"""``bigbench config validate | show | schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bigbench.cli.common import user_errors
from bigbench.cli.completion import complete_set
from bigbench.cli.help import BigbenchCommand, BigbenchGroup

app = typer.Typer(help="Check, show and describe experiment configs.", no_args_is_help=True,
                  cls=BigbenchGroup)

CONFIG_ARG = typer.Argument(..., help="Experiment config (YAML).", show_default=False)
SET_OPTION = typer.Option(
    [], "--set", metavar="KEY=VALUE", autocompletion=complete_set,
    help="Override a config key; the value is parsed as YAML. Repeatable, e.g. "
    "--set train.batch_size=128 --set model.channels=[16,32].",
)


@app.command(cls=BigbenchCommand)
@user_errors
def validate(config: Path = CONFIG_ARG, set_: list[str] = SET_OPTION) -> None:
    """Check a config and report every problem at once (exit 2 when invalid).

    Example: bigbench config validate configs/cnn.yaml
    """
    from bigbench.config import load_config

    cfg = load_config(config, set_)
    typer.echo(f"ok: {config} is valid (model {cfg.model.name}, data {cfg.data.name}, "
               f"device {cfg.device})")


@app.command(cls=BigbenchCommand)
@user_errors
def show(config: Path = CONFIG_ARG, set_: list[str] = SET_OPTION) -> None:
    """Print the resolved config as YAML, every default spelled out.

    Example: bigbench config show configs/cnn.yaml --set train.epochs=5
    """
    from bigbench.config import load_config
    from bigbench.config.render import config_yaml

    typer.echo(config_yaml(load_config(config, set_)), nl=False)


@app.command(cls=BigbenchCommand)
def schema() -> None:
    """Print the config's JSON Schema (for editor completion and validation).

    Example: bigbench config schema > bigbench.schema.json
    """
    from bigbench.config import ExperimentConfig

    typer.echo(json.dumps(ExperimentConfig.model_json_schema(), indent=2))


@app.command(cls=BigbenchCommand)
def reference() -> None:
    """Print every config key with its default and meaning, as Markdown.

    Example: bigbench config reference > CONFIG.md
    """
    from bigbench.config.reference import markdown_reference

    typer.echo(markdown_reference(), nl=False)
