"""Datasets: built-in generators, files, and the shape and label checks."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bigbench.data import build_data
from bigbench.data.registry import DATASETS
from bigbench.data.tensors import Batcher, Split
from bigbench.errors import DataError

CPU = torch.device("cpu")


def _data(name: str, **args):
    return build_data(DATASETS.get(name).config_class(name=name, **args), CPU)


def test_synthetic_shapes_and_tokens() -> None:
    images = _data("synthetic", shape=[3, 8, 8], num_classes=5, size=10, test_size=4)
    assert images.train.x.shape == (10, 3, 8, 8) and images.train.x.dtype == torch.float32
    assert images.test.x.shape == (4, 3, 8, 8)
    assert int(images.train.y.max()) < 5
    tokens = _data("synthetic", shape=[12], vocab_size=7, size=10, test_size=0)
    assert tokens.train.x.dtype == torch.int64 and int(tokens.train.x.max()) < 7
    assert tokens.test is None and tokens.info.vocab_size == 7


def test_digits_is_deterministic_balanced_and_image_shaped() -> None:
    a = _data("digits", size=100, test_size=20, seed=3)
    b = _data("digits", size=100, test_size=20, seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x.shape == (100, 1, 28, 28)
    assert torch.bincount(a.train.y).tolist() == [10] * 10
    assert not torch.equal(a.train.x[:20], a.test.x)  # independent splits
    c = _data("digits", size=100, test_size=20, seed=4)
    assert not torch.equal(a.train.x, c.train.x)


def test_tokens_label_rule() -> None:
    data = _data("tokens", size=500, test_size=10, seq_len=15, vocab_size=6)
    x, y = data.train.x, data.train.y
    assert x.shape == (500, 15) and int(x.max()) < 6
    expected = ((x == 1).sum(1) > (x == 2).sum(1)).long()
    assert torch.equal(y, expected)
    assert 0.2 < y.float().mean() < 0.6


def test_batcher_is_seeded_and_drops_the_last_partial_batch() -> None:
    split = Split(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    batcher = Batcher(split, batch_size=4, drop_last=True, seed=1)
    assert batcher.steps_per_epoch == 2
    first = [y.tolist() for _, y in batcher.epoch(0)]
    assert first == [y.tolist() for _, y in Batcher(split, 4, True, 1).epoch(0)]
    assert first != [y.tolist() for _, y in batcher.epoch(1)]
    assert len(set(sum(first, []))) == 8
    resumed = [y.tolist() for _, y in batcher.epoch(0, start_step=1)]
    assert resumed == first[1:]
    assert Batcher(split, 4, drop_last=False, seed=1).steps_per_epoch == 3


def _npz(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("x", "dtype", "shape"),
    [
        (np.random.rand(20, 16).astype(np.float32), torch.float32, (16,)),        # (N, L)
        (np.random.rand(20, 2, 16).astype(np.float64), torch.float32, (2, 16)),   # (N, C, L)
        (np.random.rand(20, 1, 8, 8).astype(np.float32), torch.float32, (1, 8, 8)),
        (np.random.randint(0, 9, (20, 12)), torch.int64, (12,)),                 # (N, T) tokens
    ],
)
def test_npz_shape_conventions(tmp_path, x, dtype, shape) -> None:
    y = np.arange(20) % 3
    data = _data("npz", path=str(_npz(tmp_path, x=x, y=y)), test_fraction=0.25)
    assert data.train.x.dtype == dtype and data.info.sample_shape == shape
    assert len(data.train) == 15 and len(data.test) == 5 and data.info.num_classes == 3
    if dtype == torch.int64:
        assert data.info.vocab_size == int(x.max()) + 1


def test_npz_with_explicit_test_split(tmp_path) -> None:
    x = np.random.rand(10, 4).astype(np.float32)
    path = _npz(tmp_path, x=x, y=np.arange(10) % 2, x_test=x[:3], y_test=np.array([0, 1, 1]))
    data = _data("npz", path=str(path))
    assert len(data.train) == 10 and len(data.test) == 3


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 3))}, "missing array(s) y"),
        ({"x": np.array([[None, 1]] * 4, dtype=object), "y": np.arange(4)}, "object arrays"),
        ({"x": np.zeros((4,)), "y": np.arange(4)}, "has shape (4,)"),
        ({"x": np.zeros((4, 3)), "y": np.arange(5)}, "one label per sample"),
        ({"x": np.zeros((4, 3)), "y": np.array([0, 1, -1, 0])}, "negative label -1 at index 2"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.0, 1.0, 0.0, 1.0])}, "labels must be integers"),
        ({"x": np.array([[0, 1.0], [np.nan, 1], [0, 0], [1, 1]]), "y": np.arange(4) % 2},
         "non-finite value nan at index (1, 0)"),
        ({"x": np.zeros((4, 3)), "y": np.arange(4) % 2, "x_test": np.zeros((2, 3)),
          "y_test": np.array([0, 5])}, "label 5 at index 1"),
        ({"x": np.zeros((4, 3)), "y": np.arange(4) % 2, "x_test": np.zeros((2, 3))},
         "only one of x_test / y_test"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4, dtype=int)}, "single class"),
    ],
)
def test_npz_errors_name_the_array_and_index(tmp_path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        _data("npz", path=str(path))
    assert message in str(info.value)


def test_npz_missing_and_garbage_files(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        _data("npz", path=str(tmp_path / "nope.npz"))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not a .npz archive"):
        _data("npz", path=str(garbage))


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files(tmp_path, gz) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    data = _data("mnist", root=str(tmp_path), limit=10)
    assert data.train.x.shape == (10, 1, 28, 28) and len(data.test) == 5
    assert 0.0 <= float(data.train.x.min()) and float(data.train.x.max()) <= 1.0


def test_truncated_idx_file_is_a_clear_error(tmp_path) -> None:
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28)), gz=False)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(4), gz=False)
    with pytest.raises(DataError, match="truncated"):
        _data("mnist", root=str(tmp_path))
    gz = tmp_path / "gz"
    gz.mkdir()
    _write_idx(gz / "train-images-idx3-ubyte", np.zeros((4, 28, 28)), gz=True)
    blob = (gz / "train-images-idx3-ubyte.gz").read_bytes()
    (gz / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated"):
        _data("mnist", root=str(gz))


def test_idx_files_that_decompress_too_far_are_refused(tmp_path, monkeypatch) -> None:
    from bigbench.data import files

    monkeypatch.setattr(files, "MAX_IDX_BYTES", 1000)
    with gzip.open(tmp_path / "bomb.gz", "wb") as handle:
        handle.write(b"\0" * 100_000)  # compresses to almost nothing
    with pytest.raises(DataError, match="decompresses to more than 1000 bytes"):
        files.read_idx(tmp_path / "bomb.gz")
