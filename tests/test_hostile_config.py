"""The config loader under hostile input: a valid config or one ConfigError, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigbench.config import ExperimentConfig, load_config
from bigbench.errors import ConfigError

# CI runs 150 examples per property; BIGBENCH_FUZZ_EXAMPLES=2000 for a longer local hunt.
FUZZ = settings(max_examples=int(os.environ.get("BIGBENCH_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        assert isinstance(load_config(path), ExperimentConfig)
    except ConfigError as exc:
        assert exc.lines() and all(line and "\n" not in line for line in exc.lines())


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes(tmp_path, data) -> None:
    _load(tmp_path, data)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=20))
_keys = st.sampled_from(["name", "model", "data", "train", "device", "output", "measure",
                         "bench", "epochs", "batch_size", "lr", "optimizer", "channels",
                         "size", "x"])
_trees = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=30)


@FUZZ
@given(st.dictionaries(_keys, _trees, max_size=6))
def test_any_yaml_structure(tmp_path, document) -> None:
    _load(tmp_path, yaml.safe_dump(document).encode())


@FUZZ
@given(st.fixed_dictionaries({
    "model": st.fixed_dictionaries({"name": st.sampled_from(["cnn", "rnn", "gru", "cnnn"])},
                                   optional={"channels": _trees, "hidden_size": _trees}),
    "data": st.fixed_dictionaries({"name": st.sampled_from(["digits", "tokens", "npz"])},
                                  optional={"size": _trees, "path": _trees}),
}, optional={"train": st.dictionaries(st.sampled_from(
    ["epochs", "batch_size", "max_steps", "warmup_steps", "seed", "optimizer", "on_nan"]),
    _trees, max_size=4)}))
def test_nearly_valid_configs(tmp_path, document) -> None:
    _load(tmp_path, yaml.safe_dump(document).encode())


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000,
    "a: " + "{b: " * 3000 + "1" + "}" * 3000,
    "model: {name: cnn}\ndata: {name: digits}\ntrain: {epochs: 1" + "0" * 5000 + "}\n",
    "model: {name: cnn}\ndata: {name: digits}\ntrain: {optimizer: {lr: 1e999999}}\n",
    "model: !!python/object/new:os.system [echo hacked]\n",
    "model: !!binary aGVsbG8=\ndata: {name: digits}\n",
    "\x00\x01\x02",
    "%YAML 1.1\n---\na: 1\n---\nb: 2\n",
])
def test_pathological_documents_fail_clearly_without_hanging(tmp_path, text) -> None:
    import threading

    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_config(_write(tmp_path, text))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=120)  # a hang guard, not a speed limit
    assert not worker.is_alive(), "loading the config hangs"
    assert isinstance(outcome[0], ConfigError), outcome


def _write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_billion_laughs_uses_bounded_memory(tmp_path) -> None:
    import tracemalloc

    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    tracemalloc.start()
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(_write(tmp_path, "\n".join(lines) + "\n"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20


def test_devices_fifos_and_huge_files_are_refused(tmp_path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, message in ((Path("/dev/zero"), "not a regular file"),
                          (fifo, "not a regular file")):
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)


@pytest.mark.parametrize("section", ["model", "data"])
def test_a_registry_name_with_a_newline_is_one_line(section, tmp_path) -> None:
    """A name's control characters are shown escaped: every problem stays one line."""
    from bigbench.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({section: {"name": "cn\nn"}}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert all("\n" not in line for line in caught.value.lines())
    assert any("'cn\\nn'" in line for line in caught.value.lines())
