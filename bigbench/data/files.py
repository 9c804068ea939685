"""Datasets read from local files: NumPy ``.npz`` and MNIST IDX.

Files are parsed without executing anything they contain: ``.npz`` with ``allow_pickle=False``
and IDX by its documented header.

An ``.npz`` whose ``x`` is a 1-D integer array and which has no ``y`` is a token stream for
language modelling: it is cut into windows of ``data.context`` tokens (see ``data.text``), the
last ``test_fraction`` by position (or a 1-D ``x_test``) being the test split. A stream whose
int64 ``x`` and ``y`` windows would not fit in memory is refused before they are built.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from bigbench.data.specs import MnistArgs, NpzArgs
from bigbench.data.tensors import Dataset, Split, make_info
from bigbench.data.text import (
    check_windows_fit,
    language_model_dataset,
    split_stream,
    stream_windows,
)
from bigbench.data.validate import check_inputs, check_labels
from bigbench.errors import DataError


def _to_split(x: np.ndarray, y: np.ndarray) -> Split:
    # Integer inputs are token ids (int64 for nn.Embedding); everything else becomes float32.
    xt = torch.from_numpy(np.ascontiguousarray(x))
    xt = xt.long() if x.dtype.kind in "iub" else xt.float()
    return Split(xt, torch.from_numpy(y.astype(np.int64)))


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data.path: '{path}' does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz archive (save it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: holds object arrays, which would need pickle to load; "
                            "save plain numeric arrays") from None
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    except MemoryError:
        raise DataError(f"{path}: its arrays do not fit in memory") from None


def build_npz(args: NpzArgs, device: torch.device) -> Dataset:
    """Arrays ``x``, ``y`` and optionally ``x_test``, ``y_test`` from an ``.npz`` file."""
    path = Path(args.path)
    arrays = _load_npz(path)
    if "x" in arrays and "y" not in arrays and arrays["x"].ndim == 1:
        return _token_stream_npz(args, path, arrays, device)
    if args.context is not None:
        raise DataError(f"{path}: data.context applies only to a 1-D integer token array x "
                        "without y; this file holds "
                        f"{', '.join(f'{k} {v.shape}' for k, v in sorted(arrays.items()))}; "
                        "remove data.context")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}; found "
                        f"{', '.join(sorted(arrays)) or 'none'} (expected x, y, optional "
                        "x_test, y_test)")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: has only one of x_test / y_test; provide both or neither")
    x, y = arrays["x"], arrays["y"]
    check_inputs("x", x, str(path))
    num_classes = check_labels("y", y, x.shape[0], str(path))
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        check_inputs("x_test", x_test, str(path))
        if x_test.shape[1:] != x.shape[1:] or x_test.dtype.kind != x.dtype.kind:
            raise DataError(f"{path}: x_test samples are {x_test.dtype} {x_test.shape[1:]} but "
                            f"x samples are {x.dtype} {x.shape[1:]}; they must match")
        check_labels("y_test", y_test, x_test.shape[0], str(path), num_classes)
    else:
        order = np.random.default_rng(args.seed).permutation(x.shape[0])
        n_test = int(round(x.shape[0] * args.test_fraction))
        if n_test and x.shape[0] - n_test < 1:
            raise DataError(f"{path}: too few samples ({x.shape[0]}) for test_fraction "
                            f"{args.test_fraction}")
        test_idx, train_idx = order[:n_test], order[n_test:]
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[train_idx], y[train_idx]
    train = _to_split(x, y)
    test = _to_split(x_test, y_test) if len(y_test) else None
    vocab = int(max(x.max(), x_test.max() if len(x_test) else 0)) + 1 \
        if x.dtype.kind in "iub" else None
    if vocab is not None and int(x.min()) < 0:
        raise DataError(f"{path}: integer inputs are token ids and must be >= 0; "
                        f"found {int(x.min())}")
    info = make_info(train, test, num_classes, vocab)
    return Dataset(train.to(device), test.to(device) if test else None, info)


#: Token ids of an .npz token stream must lie below this (the vocabulary becomes max + 1).
MAX_STREAM_VOCAB = 10_000_000
#: Bytes a token of an .npz stream costs as windows: one int64 in x and one in y.
_WINDOW_BYTES_PER_TOKEN = 2 * 8


def _check_stream(name: str, tokens: np.ndarray, path: Path) -> None:
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise DataError(f"{path}: array '{name}' is {tokens.dtype} {tokens.shape}; a token "
                        "stream (x without y) must be a 1-D integer array")
    if tokens.size and int(tokens.min()) < 0:
        at = int(np.argmin(tokens))
        raise DataError(f"{path}: array '{name}' has a negative token {int(tokens[at])} at "
                        f"index {at}; token ids must be >= 0")
    if tokens.size and int(tokens.max()) >= MAX_STREAM_VOCAB:
        at = int(np.argmax(tokens))
        raise DataError(f"{path}: array '{name}' has token id {int(tokens[at])} at index {at}; "
                        f"ids must be below {MAX_STREAM_VOCAB:,} (renumber the vocabulary)")


def _token_stream_npz(args: NpzArgs, path: Path, arrays: dict[str, np.ndarray],
                      device: torch.device) -> Dataset:
    """A 1-D token array ``x`` (and optionally ``x_test``) as language-modelling windows."""
    x = arrays["x"]
    _check_stream("x", x, path)
    if args.context is None:
        raise DataError(f"{path}: x is a 1-D token stream ({x.size} tokens) and there is no y; "
                        "set data.context (tokens per window, e.g. 128) to read it for "
                        "language modelling")
    if "y_test" in arrays:
        raise DataError(f"{path}: a token stream x has no y, so y_test has no meaning; remove "
                        "it (x_test alone is the test stream)")
    x_test = arrays.get("x_test")
    if x_test is not None:
        _check_stream("x_test", x_test, path)
    count = x.size + (x_test.size if x_test is not None else 0)
    check_windows_fit(f"data: a token stream of {count:,} tokens in '{path}'",
                      count * _WINDOW_BYTES_PER_TOKEN, device,
                      "save a shorter stream in x (and x_test)")
    if x_test is not None:
        for name, tokens in (("x", x), ("x_test", x_test)):
            if tokens.size < args.context + 1:
                raise DataError(f"{path}: array '{name}' has {tokens.size} tokens, too few for "
                                f"one window: context {args.context} needs {args.context + 1}")
        train, test = stream_windows(x, args.context), stream_windows(x_test, args.context)
        top = max(int(x.max()), int(x_test.max()))
    else:
        train, test = split_stream(x, args.test_fraction, args.context, str(path),
                                   what="test_fraction")
        top = int(x.max())
    if top < 1:
        raise DataError(f"{path}: every token is 0; a token stream needs at least two token ids")
    return language_model_dataset(train, test, top + 1, device)


#: Largest decompressed IDX file read (MNIST's largest is 47 MB); guards against gzip bombs.
MAX_IDX_BYTES = 1 << 30

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into an array; errors name the file and the problem."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as stream:
            raw = stream.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file may be truncated") from None
    if len(raw) > MAX_IDX_BYTES:
        raise DataError(f"{path}: decompresses to more than {MAX_IDX_BYTES} bytes; not an "
                        "MNIST file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX body has {len(raw) - header} bytes, the header promises "
                        f"{expected} for shape {shape}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"data.root: '{root}' has no {stem}[.gz]; put the four MNIST IDX files there")


def build_mnist(args: MnistArgs, device: torch.device) -> Dataset:
    """MNIST from its IDX files; pixels scaled to [0, 1]."""
    root = Path(args.root)
    if not root.is_dir():
        raise DataError(f"data.root: '{root}' is not a folder")
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(f"{root}: {prefix} images {images.shape} and labels {labels.shape} "
                            "do not match (expected (N, 28, 28) and (N,))")
        check_labels(f"{prefix} labels", labels.astype(np.int64), labels.shape[0], str(root), 10)
        splits.append((images, labels))
    (x, y), (x_test, y_test) = splits
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    train = Split(torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1),
                  torch.from_numpy(y.astype(np.int64)))
    test = Split(torch.from_numpy(x_test.astype(np.float32) / 255.0).unsqueeze(1),
                 torch.from_numpy(y_test.astype(np.int64)))
    return Dataset(train.to(device), test.to(device), make_info(train, test, 10, None))
