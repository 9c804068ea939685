"""Language-modelling data: the generated Markov corpus, local text files and .npz streams."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bigbench.data import build_data
from bigbench.data.corpus import (
    markov_source,
    sample_windows,
    source_entropy,
    source_from_table,
)
from bigbench.data.registry import DATASETS
from bigbench.data.text import read_tokens
from bigbench.errors import ConfigError, DataError

CPU = torch.device("cpu")


def _config(name: str, **args):
    return DATASETS.get(name).config_class(name=name, **args)


def _data(name: str, **args):
    return build_data(_config(name, **args), CPU)


def _is_shifted(split) -> bool:
    return bool(torch.equal(split.y[:, :-1], split.x[:, 1:]))


# --- corpus --------------------------------------------------------------------------------


def test_corpus_shapes_shift_and_info() -> None:
    data = _data("corpus", vocab_size=16, context=12, size=300, test_size=40)
    assert data.train.x.shape == data.train.y.shape == (300, 12)
    assert data.test.x.shape == (40, 12)
    assert data.train.x.dtype == data.train.y.dtype == torch.int64
    assert _is_shifted(data.train) and _is_shifted(data.test)
    assert 0 <= int(data.train.x.min()) and int(data.train.y.max()) < 16
    info = data.info
    assert (info.task, info.sample_shape, info.num_classes, info.vocab_size) == \
        ("language_modeling", (12,), 16, 16)
    assert (info.train_size, info.test_size) == (300, 40)
    assert 0 < info.entropy_floor < math.log(16)
    assert _data("corpus", size=5, test_size=0, context=4).test is None


def test_corpus_is_deterministic_by_seed_and_seeds_differ() -> None:
    a = _data("corpus", size=50, test_size=10, context=8, seed=3)
    b = _data("corpus", size=50, test_size=10, context=8, seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.info.entropy_floor == b.info.entropy_floor
    c = _data("corpus", size=50, test_size=10, context=8, seed=4)
    assert not torch.equal(a.train.x, c.train.x)
    assert a.info.entropy_floor != c.info.entropy_floor
    assert not torch.equal(a.train.x[:10], a.test.x)  # independent splits
    # The test windows do not depend on how many training windows are asked for.
    d = _data("corpus", size=70, test_size=10, context=8, seed=3)
    assert torch.equal(a.test.x, d.test.x)


def _h(*p: float) -> float:
    return -sum(q * math.log(q) for q in p if q > 0)


def test_entropy_of_a_hand_made_order_one_source() -> None:
    # P(.|0) = (0.9, 0.1), P(.|1) = (0.2, 0.8): stationary (2/3, 1/3).
    source = source_from_table(2, 1, np.array([[0, 1], [0, 1]]),
                               np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert np.allclose(source.stationary, [2 / 3, 1 / 3], atol=1e-12)
    rate, floors = source_entropy(source, 5)
    expected = 2 / 3 * _h(0.9, 0.1) + 1 / 3 * _h(0.2, 0.8)
    assert rate == pytest.approx(expected, abs=1e-12)
    assert np.allclose(floors, expected)  # order 1: every position has its full context


def test_entropy_of_a_hand_made_order_two_source() -> None:
    # Order 2 over {0, 1}: the next token copies the older of the two with probability 0.7.
    support = np.array([[0, 1]] * 4)
    weights = np.array([[0.7, 0.3], [0.7, 0.3], [0.3, 0.7], [0.3, 0.7]])
    source = source_from_table(2, 2, support, weights)
    rate, floors = source_entropy(source, 4)
    assert rate == pytest.approx(_h(0.7, 0.3), abs=1e-12)
    # By symmetry the stationary 2-grams are uniform, so the first prediction, from one token
    # of context, is a fair coin; after that the full rate.
    assert floors[0] == pytest.approx(math.log(2), abs=1e-12)
    assert np.allclose(floors[1:], rate)


def test_several_closed_classes_are_refused() -> None:
    # 0 -> 0 and 1 -> 1 always: two closed classes, no unique stationary distribution.
    with pytest.raises(DataError, match="more than one closed class"):
        source_from_table(2, 1, np.array([[0, 1], [0, 1]]), np.array([[1.0, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize(("vocab", "order", "branching"),
                         [(12, 1, 4), (8, 2, 3), (6, 3, 2), (40, 2, 4)])
def test_true_model_cross_entropy_matches_the_floor(vocab, order, branching) -> None:
    # (40, 2) has 1600 contexts: the power-iteration path; the others the dense solve.
    source = markov_source(vocab, order, branching, 1.0, seed=1)
    rate, floors = source_entropy(source, 16)
    assert np.all(np.diff(floors) <= 1e-12) and floors[-1] == pytest.approx(rate)
    assert 0 < floors.mean() < math.log(vocab)
    windows = sample_windows(source, 8000, 17, np.random.default_rng(7))
    log_probs = source.log_probs(windows)
    assert np.isfinite(log_probs).all()
    assert -log_probs.mean() == pytest.approx(floors.mean(), rel=0.015)
    # Position by position too, where the floor of the first positions differs from the rate.
    for j in range(order):
        assert -log_probs[:, j].mean() == pytest.approx(floors[j], rel=0.05)


def test_default_corpus_floor_is_between_zero_and_uniform() -> None:
    args = _config("corpus")
    source = markov_source(args.vocab_size, args.order, args.branching, args.alpha, args.seed)
    rate, floors = source_entropy(source, args.context)
    assert 0 < rate <= floors.mean() < floors[0] < math.log(args.vocab_size)
    assert source.stationary.min() >= 0 and source.stationary.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("args", "message"), [
    ({"vocab_size": 4, "branching": 5}, "branching (5) must be at most vocab_size (4)"),
    ({"vocab_size": 64, "order": 4}, "contexts exceeds the limit"),
    ({"vocab_size": 1024, "order": 2, "branching": 8}, "transition table"),
    ({"branching": 1}, "greater than or equal to 2"),
    ({"context": 1}, "greater than or equal to 2"),
])
def test_corpus_argument_limits(args, message) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _config("corpus", **args)


def test_an_absurd_corpus_is_refused_before_allocating() -> None:
    with pytest.raises(ConfigError, match="corpus windows"):
        _data("corpus", size=10_000_000, test_size=0, context=65_536)


# --- text ----------------------------------------------------------------------------------

_TEXT = "Grüße, 世界! The quick brown fox jumps over the lazy dog.\n" * 8


def test_byte_tokenizer_round_trips_and_splits_by_position(tmp_path) -> None:
    path = tmp_path / "a.txt"
    path.write_text(_TEXT, encoding="utf-8")
    raw = _TEXT.encode("utf-8")
    tokens, alphabet = read_tokens(_config("text", path=str(path)))
    assert alphabet is None and bytes(tokens.astype(np.uint8).tolist()) == raw
    data = _data("text", path=str(path), context=16, val_fraction=0.25)
    held = round(len(raw) * 0.25)
    train_part, test_part = raw[:len(raw) - held], raw[len(raw) - held:]
    assert data.info.vocab_size == data.info.num_classes == 256
    assert data.info.task == "language_modeling" and data.info.entropy_floor is None
    assert len(data.train) == (len(train_part) - 1) // 16
    assert len(data.test) == (len(test_part) - 1) // 16
    assert _is_shifted(data.train) and _is_shifted(data.test)
    # Non-overlapping windows stepping by T: the windows read back the stream in order.
    assert bytes(data.train.x.reshape(-1).tolist()) == train_part[:len(data.train) * 16]
    assert bytes(data.test.x.reshape(-1).tolist()) == test_part[:len(data.test) * 16]
    assert data.train.y[-1, -1] == train_part[len(data.train) * 16]


def test_char_tokenizer_round_trips(tmp_path) -> None:
    (tmp_path / "a.txt").write_text(_TEXT, encoding="utf-8")
    args = _config("text", path=str(tmp_path / "a.txt"), tokenizer="char")
    tokens, alphabet = read_tokens(args)
    assert alphabet == sorted(set(_TEXT))
    assert "".join(alphabet[t] for t in tokens) == _TEXT
    data = _data("text", path=str(tmp_path / "a.txt"), tokenizer="char", context=8,
                 val_fraction=0.0)
    assert data.test is None and data.info.vocab_size == len(alphabet)
    assert int(data.train.x.max()) < len(alphabet)


def test_folder_reads_matching_visible_files_in_path_order(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second ")
    (tmp_path / "1.txt").write_text("first ")
    (tmp_path / ".hidden.txt").write_text("hidden ")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("hidden ")
    (tmp_path / "notes.md").write_text("markdown ")
    tokens, _ = read_tokens(_config("text", path=str(tmp_path)))
    assert bytes(tokens.astype(np.uint8).tolist()) == b"first second "
    tokens, _ = read_tokens(_config("text", path=str(tmp_path), pattern="*.md"))
    assert bytes(tokens.astype(np.uint8).tolist()) == b"markdown "


def test_max_bytes_cuts_at_a_character_boundary(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("aé" * 10, encoding="utf-8")  # é is two bytes
    (tmp_path / "b.txt").write_text("zzz")
    tokens, _ = read_tokens(_config("text", path=str(tmp_path), max_bytes=5))  # mid-"é"
    assert bytes(tokens.astype(np.uint8).tolist()) == "aéa".encode()
    tokens, _ = read_tokens(_config("text", path=str(tmp_path), max_bytes=31))
    assert bytes(tokens.astype(np.uint8).tolist()) == ("aé" * 10).encode() + b"z"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.txt", b"", "empty file (0 bytes)"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary (a NUL byte at offset 8)"),
    ("latin1.txt", "abc café".encode("latin-1"), "not valid UTF-8 at byte offset 7"),
])
def test_unusable_files_are_refused_by_name(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        _data("text", path=str(path))
    assert name in str(info.value) and len(info.value.lines()) == 1
    # Inside a folder too, the message names the file.
    (tmp_path / "good.txt").write_text(_TEXT)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        _data("text", path=str(tmp_path))
    assert name in str(info.value)


def test_missing_path_and_empty_folder_are_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        _data("text", path=str(tmp_path / "nope.txt"))
    assert "nope.txt" in str(info.value)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.md").write_text(_TEXT)
    with pytest.raises(DataError, match="holds no files matching '\\*.txt'") as info:
        _data("text", path=str(tmp_path / "data"))
    assert "data" in str(info.value)


@pytest.mark.parametrize(("pattern", "reason"), [
    ("/etc/*", "is an absolute path"),
    ("//server/*.txt", "is an absolute path"),
    ("../*.txt", "climbs out of the folder with '..'"),
    ("sub/../../*.txt", "climbs out of the folder with '..'"),
    ("a**", "is not a usable pattern (Invalid pattern"),  # pathlib's own ValueError
])
def test_a_pattern_that_is_not_relative_to_the_folder_is_refused(tmp_path, pattern,
                                                                   reason) -> None:
    (tmp_path / "a.txt").write_text(_TEXT)
    with pytest.raises(DataError, match=re.escape(reason)) as info:
        _data("text", path=str(tmp_path), pattern=pattern)
    message = str(info.value)
    assert len(info.value.lines()) == 1 and "\n" not in message
    assert message.startswith("data.pattern: ") and repr(pattern) in message
    assert "relative to the folder" in message and '"*.txt"' in message


def test_any_exception_from_the_pattern_search_becomes_one_clear_line(tmp_path,
                                                                        monkeypatch) -> None:
    (tmp_path / "a.txt").write_text(_TEXT)

    def refuse(self, pattern):
        raise NotImplementedError("Non-relative\npatterns are unsupported")

    monkeypatch.setattr(Path, "rglob", refuse)
    with pytest.raises(DataError, match=re.escape(
            "data.pattern: '*.txt' is not a usable pattern (Non-relative patterns are "
            "unsupported)")) as info:
        _data("text", path=str(tmp_path))
    assert len(info.value.lines()) == 1 and "\n" not in str(info.value)


def test_a_pattern_is_not_checked_when_path_is_a_file(tmp_path) -> None:
    (tmp_path / "a.txt").write_text(_TEXT)
    tokens, _ = read_tokens(_config("text", path=str(tmp_path / "a.txt"), pattern="/etc/*"))
    assert len(tokens) == len(_TEXT.encode())


def test_a_nul_byte_anywhere_is_refused_with_its_offset(tmp_path) -> None:
    path = tmp_path / "late.txt"
    path.write_bytes(b"a" * 9000 + b"\0" + b"b" * 100)  # past the first 8 KiB
    with pytest.raises(DataError, match=re.escape("a NUL byte at offset 9000")) as info:
        _data("text", path=str(path), context=16)
    assert "late.txt" in str(info.value) and len(info.value.lines()) == 1
    # In a second file of a folder the offset is the file's own.
    (tmp_path / "early.txt").write_text("x" * 500)
    with pytest.raises(DataError, match=re.escape("late.txt: looks binary (a NUL byte at "
                                                  "offset 9000)")):
        _data("text", path=str(tmp_path), context=16)
    # A NUL past max_bytes is not part of the text read.
    tokens, _ = read_tokens(_config("text", path=str(path), max_bytes=9000))
    assert len(tokens) == 9000


def test_a_byte_order_mark_is_no_char_token_but_stays_in_bytes(tmp_path) -> None:
    bom = "\ufeff".encode()
    (tmp_path / "a.txt").write_bytes(bom + b"abc ab")
    (tmp_path / "b.txt").write_bytes(bom + b"ba cab")  # each file's mark, not only the first
    tokens, alphabet = read_tokens(_config("text", path=str(tmp_path), tokenizer="char"))
    assert alphabet == [" ", "a", "b", "c"]
    assert "".join(alphabet[t] for t in tokens) == "abc abba cab"
    tokens, alphabet = read_tokens(_config("text", path=str(tmp_path), tokenizer="byte"))
    assert alphabet is None
    assert bytes(tokens.astype(np.uint8).tolist()) == bom + b"abc ab" + bom + b"ba cab"
    # A mark elsewhere is a character of the text (U+FEFF, zero-width no-break space).
    (tmp_path / "b.txt").write_bytes(b"ba" + bom + b"cab")
    _, alphabet = read_tokens(_config("text", path=str(tmp_path), tokenizer="char"))
    assert alphabet == [" ", "a", "b", "c", "\ufeff"]
    # max_bytes counts a file's bytes, its mark included.
    tokens, alphabet = read_tokens(_config("text", path=str(tmp_path / "a.txt"),
                                           tokenizer="char", max_bytes=5))
    assert "".join(alphabet[t] for t in tokens) == "ab"


def test_too_little_text_says_how_many_tokens(tmp_path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("x" * 100)
    with pytest.raises(DataError, match="training window: context 128 needs 129, the training "
                                        "part has 90") as info:
        _data("text", path=str(path))
    assert "short.txt" in str(info.value)
    with pytest.raises(DataError, match="test window: context 32 needs 33, the test part has 10"):
        _data("text", path=str(path), context=32)
    data = _data("text", path=str(path), context=32, val_fraction=0.0)
    assert len(data.train) == 3 and data.test is None


# --- npz token streams ---------------------------------------------------------------------


def _npz(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "s.npz"
    np.savez(path, **arrays)
    return str(path)


def test_npz_token_stream_with_context(tmp_path) -> None:
    stream = np.arange(1000) % 37
    data = _data("npz", path=_npz(tmp_path, x=stream), context=10, test_fraction=0.2)
    assert data.info.task == "language_modeling" and data.info.vocab_size == 37
    assert data.train.x.shape == ((800 - 1) // 10, 10) and len(data.test) == (200 - 1) // 10
    assert _is_shifted(data.train)
    assert data.train.x[0].tolist() == stream[:10].tolist()
    assert data.test.x[0].tolist() == stream[800:810].tolist()  # the last part, by position
    explicit = _data("npz", path=_npz(tmp_path, x=stream, x_test=stream[:50]), context=10)
    assert len(explicit.train) == 99 and len(explicit.test) == 4


@pytest.mark.parametrize(("arrays", "args", "message"), [
    ({"x": np.arange(100)}, {}, "set data.context"),
    ({"x": np.arange(100) * 0.5}, {"context": 4}, "must be a 1-D integer array"),
    ({"x": np.array([3, 1, -2, 0] * 10)}, {"context": 4}, "negative token -2 at index 2"),
    ({"x": np.arange(100), "y_test": np.arange(3)}, {"context": 4}, "remove it"),
    ({"x": np.arange(20)}, {"context": 16}, "needs 17, the training part has 16"),
    ({"x": np.zeros((10, 4)), "y": np.arange(10) % 2}, {"context": 4},
     "data.context applies only to a 1-D integer token array"),
])
def test_npz_token_stream_refusals(tmp_path, arrays, args, message) -> None:
    with pytest.raises(DataError, match=message) as info:
        _data("npz", path=_npz(tmp_path, **arrays), **args)
    assert "s.npz" in str(info.value)


def test_npz_token_stream_too_big_for_memory_is_refused_before_windowing(tmp_path,
                                                                          monkeypatch) -> None:
    from bigbench import memory_budget
    from bigbench.data import files, text

    def must_not_window(*args, **kwargs):  # should the check let it through: fail, not build
        raise AssertionError("windows were built: the memory pre-check let the stream through")

    # 1000 tokens as int64 x and y windows need 16,000 bytes; 10,000 free allows 8,000.
    monkeypatch.setattr(memory_budget, "available_bytes", lambda device: 10_000)
    monkeypatch.setattr(text, "stream_windows", must_not_window)  # through split_stream
    monkeypatch.setattr(files, "stream_windows", must_not_window)  # with an x_test
    path = _npz(tmp_path, x=(np.arange(1000) % 37).astype(np.int16))
    with pytest.raises(ConfigError, match="a token stream of 1,000 tokens") as info:
        _data("npz", path=path, context=10)
    message = str(info.value)
    assert len(info.value.lines()) == 1 and "\n" not in message
    assert "s.npz" in message and "save a shorter stream in x" in message
    # x_test counts too.
    monkeypatch.setattr(memory_budget, "available_bytes", lambda device: 25_000)
    (tmp_path / "two").mkdir()
    with pytest.raises(ConfigError, match="a token stream of 1,500 tokens"):
        _data("npz", path=_npz(tmp_path / "two", x=np.arange(1000) % 37,
                               x_test=np.arange(500) % 37), context=10)
    monkeypatch.undo()
    # With room enough the same stream builds.
    monkeypatch.setattr(memory_budget, "available_bytes", lambda device: 10**9)
    assert len(_data("npz", path=path, context=10).train) == (800 - 1) // 10
