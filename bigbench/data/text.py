"""Language modelling on the user's local text files, and token streams cut into windows.

A token stream ``s`` becomes non-overlapping windows of ``T + 1`` tokens stepping by ``T``:
input ``x = s[i:i+T]`` and target ``y = s[i+1:i+T+1]``, so every token but the first is
predicted exactly once. The validation split is the *last* ``val_fraction`` of the stream by
position, cut before windowing, so no window spans both splits.

Tokenizers: ``byte`` reads the UTF-8 bytes (vocabulary 256, whatever the text holds); ``char``
reads Unicode characters and numbers them by their sorted order in the text, so the vocabulary
is exactly the characters present. That character list is not stored: :func:`read_tokens`
returns it, and it is reproducible from the same files.

A UTF-8 byte-order mark (``EF BB BF``) at the start of a file is an encoding marker, not text:
``char`` drops it, file by file, so it never becomes a token; ``byte`` keeps every file's bytes
as they are, the mark included (three tokens 239, 187, 191 where a file starts with one).

Every refusal is one line naming the file: missing, empty, binary (a NUL byte anywhere in the
text read, with its byte offset), not UTF-8 (with the byte offset), or too short for one window.
A folder's ``pattern`` must be a file-name pattern relative to the folder, such as ``*.txt``.
"""

from __future__ import annotations

from pathlib import Path, PurePath

import numpy as np
import torch

from bigbench.data.info import DataInfo
from bigbench.data.specs import TextArgs
from bigbench.data.tensors import Dataset, Split
from bigbench.errors import DataError

#: The UTF-8 byte-order mark, dropped from the start of each file by the ``char`` tokenizer.
UTF8_BOM = b"\xef\xbb\xbf"
#: Host bytes a token of the text costs while building: the int64 stream and x, y windows.
_BYTES_PER_TOKEN = 3 * 8


def stream_windows(stream: np.ndarray, context: int) -> Split:
    """Cut a 1-D token stream into non-overlapping ``(x, y)`` windows of ``context`` tokens.

    Args:
        stream: 1-D integer tokens; at least ``context + 1`` of them.
        context: Tokens per window ``T``.

    Returns:
        A split of ``(len(stream) - 1) // T`` windows, int64 ``x`` and ``y`` both ``(N, T)``,
        with ``y`` the window shifted by one token.
    """
    count = (len(stream) - 1) // context
    spans = np.lib.stride_tricks.sliding_window_view(stream[: count * context + 1], context + 1)
    spans = spans[::context]
    x = torch.from_numpy(np.array(spans[:, :-1], dtype=np.int64, order="C"))
    y = torch.from_numpy(np.array(spans[:, 1:], dtype=np.int64, order="C"))
    return Split(x, y)


def language_model_dataset(train: Split, test: Split | None, vocab_size: int,
                           device: torch.device, entropy_floor: float | None = None) -> Dataset:
    """Wrap language-modelling windows, describe them, and move them to ``device``."""
    info = DataInfo(
        sample_shape=(int(train.x.shape[1]),), num_classes=vocab_size, vocab_size=vocab_size,
        train_size=len(train), test_size=len(test) if test is not None else 0,
        task="language_modeling", entropy_floor=entropy_floor,
    )
    return Dataset(train.to(device), test.to(device) if test is not None else None, info)


def split_stream(stream: np.ndarray, fraction: float, context: int, source: str,
                 what: str = "val_fraction") -> tuple[Split, Split | None]:
    """Hold out the last ``fraction`` of ``stream`` by position and window both parts.

    Raises:
        DataError: when either part is too short for one window.
    """
    held = int(round(len(stream) * fraction)) if fraction > 0 else 0
    parts = {"training": stream[: len(stream) - held]}
    if fraction > 0:
        parts["test"] = stream[len(stream) - held:]
    for name, part in parts.items():
        if len(part) < context + 1:
            raise DataError(
                f"{source}: too few tokens for one {name} window: context {context} needs "
                f"{context + 1}, the {name} part has {len(part)} ({len(stream)} tokens in all, "
                f"{what} {fraction}); lower data.context or data.{what}, or add data")
    train = stream_windows(parts["training"], context)
    return train, stream_windows(parts["test"], context) if "test" in parts else None


def check_windows_fit(what: str, needed_bytes: int, device: torch.device, fix: str) -> None:
    """Refuse windows of ``needed_bytes`` that cannot fit before building them.

    The windows are built in host memory and then moved to ``device``, so both must hold them.

    Raises:
        ConfigError: one line, from :func:`bigbench.memory_budget.check_fits`.
    """
    from bigbench.memory_budget import check_fits

    check_fits(what, needed_bytes, torch.device("cpu"), fix)
    if device.type != "cpu":
        check_fits(what, needed_bytes, device, fix)


def _check_pattern(pattern: str) -> None:
    """Refuse a ``data.pattern`` that is not a file-name pattern relative to the folder."""
    pure = PurePath(pattern)
    if pure.anchor:
        reason = "is an absolute path"
    elif ".." in pure.parts:
        reason = "climbs out of the folder with '..'"
    else:
        return
    raise DataError(_pattern_error(pattern, reason))


def _pattern_error(pattern: str, reason: str) -> str:
    return (f"data.pattern: {pattern!r} {reason}; it must be a file-name pattern relative to "
            "the folder in data.path, e.g. \"*.txt\" (put the folder itself in data.path)")


def text_files(path: Path, pattern: str) -> list[Path]:
    """The files a ``text`` dataset reads: ``path`` itself, or the matching files in a folder.

    Folders are searched recursively; hidden files and anything under a hidden folder are
    skipped; the result is sorted by path so the token order is reproducible.
    """
    if path.is_file():
        return [path]
    if not path.exists():
        raise DataError(f"data.path: '{path}' does not exist")
    if not path.is_dir():
        raise DataError(f"data.path: '{path}' is not a regular file or a folder")
    _check_pattern(pattern)
    try:
        found = list(path.rglob(pattern))
    except OSError as exc:
        raise DataError(f"data.path: cannot search folder '{path}' for {pattern!r} "
                        f"({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001  (pathlib's refusal of a malformed pattern)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(_pattern_error(pattern, f"is not a usable pattern ({reason})")) from None
    files = sorted(
        p for p in found
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise DataError(f"data.path: folder '{path}' holds no files matching {pattern!r} "
                        "(hidden files are skipped); set data.pattern or add text files")
    return files


def _read_text(path: Path, limit: int | None) -> bytes:
    """One file's bytes (at most ``limit``, cut at a character boundary), checked to be text."""
    try:
        with path.open("rb") as stream:
            data = stream.read() if limit is None else stream.read(limit + 4)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise DataError(f"{path}: empty file (0 bytes); remove it or add text")
    if limit is not None and len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # never split a multi-byte character
            cut -= 1
        data = data[:cut]
    nul = data.find(b"\0")  # anywhere in the text read, not just its first kilobytes
    if nul >= 0:
        raise DataError(f"{path}: looks binary (a NUL byte at offset {nul}); text datasets "
                        "read UTF-8 text files only")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 at byte offset {exc.start} ({exc.reason}); "
                        "convert it to UTF-8 (e.g. iconv -t utf-8)") from None
    return data


def read_tokens(args: TextArgs, device: torch.device | None = None
                ) -> tuple[np.ndarray, list[str] | None]:
    """Read and tokenize the text named by ``args``.

    Args:
        args: The dataset's arguments.
        device: When given, refuse text whose tokens would not fit in its memory.

    Returns:
        The int64 token stream and, for the ``char`` tokenizer, the characters the token ids
        stand for (``None`` for ``byte``).
    """
    root = Path(args.path)
    files = text_files(root, args.pattern)
    total = sum(f.stat().st_size for f in files)
    if args.max_bytes is not None:
        total = min(total, args.max_bytes)
    if device is not None:
        check_windows_fit(f"data: {total:,} bytes of text in '{root}'",
                          total * _BYTES_PER_TOKEN, device, "set data.max_bytes or use less text")
    chunks: list[bytes] = []
    left = args.max_bytes
    for file in files:
        text = _read_text(file, left)
        # A leading byte-order mark is no character of the text; byte keeps the file's bytes.
        chunks.append(text[len(UTF8_BOM):] if args.tokenizer == "char"
                      and text.startswith(UTF8_BOM) else text)
        if left is not None:
            if file.stat().st_size >= left:  # this file reaches the cap: it is the last one
                break
            left -= len(text)  # max_bytes counts the file's bytes, a mark included
    data = b"".join(chunks)
    if args.tokenizer == "byte":
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64), None
    points = np.frombuffer(data.decode("utf-8").encode("utf-32-le"), dtype="<u4")
    alphabet, tokens = np.unique(points, return_inverse=True)
    if len(alphabet) < 2:
        raise DataError(f"{root}: the text uses {len(alphabet)} distinct character(s); the char "
                        "tokenizer needs at least two (use more text or tokenizer: byte)")
    return tokens.astype(np.int64).reshape(-1), [chr(int(c)) for c in alphabet]


def build_text(args: TextArgs, device: torch.device) -> Dataset:
    """The ``text`` dataset (see the module docstring)."""
    tokens, alphabet = read_tokens(args, device)
    train, test = split_stream(tokens, args.val_fraction, args.context, args.path)
    vocab = 256 if alphabet is None else len(alphabet)
    return language_model_dataset(train, test, vocab, device)
