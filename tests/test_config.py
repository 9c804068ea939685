"""Config loading: valid configs, overrides, and one clear line per mistake (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigbench.config import load_config
from bigbench.errors import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid_and_documented(path: Path, cli) -> None:
    result = cli("config", "validate", path)
    assert result.exit_code == 0, result.stderr
    assert path.read_text().startswith("#"), "each config starts with a comment on its use"


def test_defaults_and_overrides(write_config) -> None:
    path = write_config("model: {name: cnn}\ndata: {name: digits}\n")
    cfg = load_config(path, ["train.batch_size=128", "model.channels=[16,32]",
                             "train.optimizer.lr=1e-3"])
    assert cfg.train.batch_size == 128
    assert cfg.model.channels == [16, 32]
    assert cfg.train.optimizer.lr == pytest.approx(1e-3)  # 1e-3 is a float, not a string
    assert cfg.train.epochs == 2 and cfg.train.warmup_steps == 10 and cfg.device == "auto"


def test_override_creates_missing_sections(write_config) -> None:
    path = write_config("model: {name: rnn}\ndata: {name: tokens}\n")
    cfg = load_config(path, ["output.dir=elsewhere"])
    assert cfg.output.dir == "elsewhere"


def _errors(cli, path: Path, *extra: str) -> list[str]:
    result = cli("config", "validate", path, *extra)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines)
    return lines


def test_all_problems_reported_at_once_with_lines_and_suggestions(cli, write_config) -> None:
    path = write_config("""\
        name: x
        model: {name: cnn, chanels: [4]}
        data:
          name: digts
        train:
          batch_size: 0
          lr: 0.1
          optimizer: {name: adm}
        device: cdua
        """)
    text = "\n".join(_errors(cli, path))
    assert f"{path}:2: unknown key 'model.chanels' (did you mean 'channels'?)" in text
    assert f"{path}:4: data.name: unknown dataset 'digts' (did you mean 'digits'?)" in text
    assert f"{path}:6: train.batch_size: 0 is not allowed" in text and ">= 1" not in text
    assert "greater than or equal to 1" in text
    assert f"{path}:7: unknown key 'train.lr'" in text and "optimizer" in text
    assert "'adm' is not allowed" in text and "(did you mean 'adam'?)" in text
    assert f"{path}:9: device: 'cdua' is not a device (did you mean 'cuda'?)" in text
    assert len(text.splitlines()) == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "config is empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("model: [unclosed\n", "invalid YAML"),
        ("model: {name: cnn}\n", "missing required key 'data'"),
        ("model: {name: nope}\ndata: {name: digits}\n", "unknown model 'nope'"),
        ("model: {name: cnn}\ndata: {name: digits}\ntrain: {epochs: 0}\n", "train.epochs: 0"),
        ("model: {name: cnn}\ndata: {name: digits}\ntrain: {epochs: two}\n", "valid integer"),
        ("model: {name: cnn}\ndata: {name: digits}\ntrain: {optimizer: {lr: -1}}\n",
         "train.optimizer.lr: -1"),
        ("model: {name: cnn}\ndata: {name: digits}\ntrain: {batch_size: 64.5}\n", "64.5"),
        ("model: {name: cnn}\ndata: {name: digits}\ntrain: {max_steps: 5, warmup_steps: 5}\n",
         "warmup_steps (5) must be less than max_steps (5)"),
        ("model: {name: cnn}\ndata: {name: digits}\n"
         "train: {optimizer: {name: adam, momentum: 0.9}}\n",
         "momentum applies to sgd only"),
        ("model: {name: rnn, dropout: 0.5}\ndata: {name: tokens}\n", "needs num_layers > 1"),
        ("model: {name: cnn}\ndata: {name: digits}\nname: 'bad name/..'\n", "use 1-64 letters"),
        ("model: !!python/object/apply:os.system ['true']\n", "tags that construct objects"),
        ("model: {name: cnn}\nmodel: {name: rnn}\ndata: {name: digits}\n", "duplicate key 'model'"),
        ("model: {name: cnn}\ndata: {name: digits}\ntrain: {optimizer: {lr: .inf}}\n", "lr"),
        ("model: cnn\ndata: {name: digits}\n", "'model' must be a mapping"),
    ],
)
def test_bad_configs(cli, write_config, text: str, expected: str) -> None:
    lines = _errors(cli, write_config(text))
    assert any(expected in line for line in lines), lines


def test_alias_bomb_is_rejected_quickly(cli, write_config) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        levels.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    lines = _errors(cli, write_config("\n".join(levels) + "\n"))
    assert any("expands to more than" in line for line in lines)


def test_missing_directory_and_binary_files(cli, tmp_path: Path) -> None:
    assert "config file not found" in _errors(cli, tmp_path / "nope.yaml")[0]
    assert "is a directory" in _errors(cli, tmp_path)[0]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in _errors(cli, binary)[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.batch_size", "expected key.path=value"),
        ("=3", "expected key.path=value"),
        ("train..x=1", "is not a key path"),
        ("train.batch_size=[1", "invalid YAML"),
        ("name.x=1", "not a mapping"),
        ("train.batch_size=big", "train.batch_size: 'big'"),
    ],
)
def test_malformed_set(cli, write_config, override: str, expected: str) -> None:
    path = write_config("name: x\nmodel: {name: cnn}\ndata: {name: digits}\n")
    lines = _errors(cli, path, "--set", override)
    assert any(expected in line for line in lines), lines


def test_set_errors_name_the_override(cli, write_config) -> None:
    path = write_config("model: {name: cnn}\ndata: {name: digits}\ntrain: {epochs: 2}\n")
    lines = _errors(cli, path, "--set", "train.epochs=0")
    assert lines == ["error: --set train.epochs=0: train.epochs: 0 is not allowed; it should be "
                     "greater than or equal to 1"]


def test_show_prints_resolved_yaml(cli, write_config) -> None:
    import yaml

    path = write_config("model: {name: cnn}\ndata: {name: digits}\n")
    result = cli("config", "show", path, "--set", "train.epochs=5")
    assert result.exit_code == 0
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["epochs"] == 5
    assert shown["model"]["channels"] == [32, 64]
    # What show prints is itself a valid config that loads to the same thing.
    again = write_config(result.stdout, "again.yaml")
    assert load_config(again) == load_config(path, ["train.epochs=5"])


def test_schema_has_a_description_for_every_field(cli) -> None:
    import json

    schema = json.loads(cli("config", "schema").stdout)
    missing = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if "description" not in prop:
                    missing.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "")
    assert not missing, missing


def test_config_error_is_a_bigbench_error(write_config) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config("model: {name: cnn}\ndata: {name: digits, size: -1}\n"))
    assert "data.size" in str(info.value)
