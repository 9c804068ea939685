"""Model weights and training checkpoints on disk, loaded without executing any code.

Weights are safetensors. A checkpoint is a folder ``checkpoint/`` in the run directory holding
``model.safetensors`` and ``state.pt`` (optimizer, schedule, data position, RNG states), the
latter read back with ``torch.load(weights_only=True)``. A new checkpoint is written completely
into ``checkpoint.new/`` first, then swapped in by renames, so at every moment one complete
checkpoint exists (``checkpoint/`` or, mid-swap, ``checkpoint.old/``).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bigbench.errors import BigbenchError, OutputError
from bigbench.results import file_mode

FORMAT = "bigbench.checkpoint/1"
CHECKPOINT = "checkpoint"


class CheckpointError(BigbenchError):
    """A checkpoint or weights file that cannot be used (truncated, another model …)."""


def tied_aliases(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Names whose tensor is another entry's storage (tied weights: a GPT's output head is its
    token embedding), mapped to the first name holding it. safetensors stores each once."""
    first: dict[tuple[int, int, tuple[int, ...]], str] = {}
    aliases = {}
    for name, tensor in state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
    return aliases


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write the model's state dict to ``path`` atomically (tied weights stored once)."""
    from safetensors.torch import save_file

    state = model.state_dict()
    aliases = tied_aliases(state)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in aliases}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write weights ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(model: nn.Module, path: Path) -> dict[str, str]:
    """Load safetensors weights into ``model``; every mismatch is a clear CheckpointError.

    Returns:
        The file's metadata.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: unreadable or truncated ({exc})") from None
    expected = model.state_dict()
    aliases = tied_aliases(expected)
    missing = sorted(set(expected) - set(tensors) - set(aliases))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: written by another model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: written by another model ({name} has shape "
                                  f"{tuple(tensor.shape)}, this model needs "
                                  f"{tuple(expected[name].shape)})")
    # A tied name loads through the tensor it shares (strict=False only for those names).
    result = model.load_state_dict(tensors, strict=not aliases)
    assert set(result.missing_keys) <= set(aliases), result.missing_keys
    return metadata


@dataclass
class TrainingPosition:
    """Where a run stands after its last completed step."""

    step: int
    epoch: int
    step_in_epoch: int
    epochs_done: int
    samples: int
    last_finite_loss: float | None
    skipped_steps: int


def rng_state() -> dict[str, Any]:
    """Every RNG state that affects training, in types ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate needs tuples; a round trip may have turned them into lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: Any, position: TrainingPosition, extra: dict[str, Any]) -> None:
    """Write a complete checkpoint, then swap it in (see the module docstring)."""
    new, current, old = (run_dir / f"{CHECKPOINT}.new", run_dir / CHECKPOINT,
                         run_dir / f"{CHECKPOINT}.old")
    try:
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
        save_weights(model, new / "model.safetensors", metadata={"step": str(position.step)})
        state = {"format": FORMAT, "position": position.__dict__,
                 "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict() if schedule is not None else None,
                 "rng": rng_state(), **extra}
        tmp = new / "state.pt.tmp"
        torch.save(state, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, new / "state.pt")
        if current.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(current, old)
        os.replace(new, current)
        shutil.rmtree(old, ignore_errors=True)
    except (OSError, OutputError) as exc:
        shutil.rmtree(new, ignore_errors=True)
        why = exc.problems[0] if isinstance(exc, OutputError) else (exc.strerror or str(exc))
        raise OutputError(f"{run_dir}: cannot write checkpoint ({why}); the previous "
                          "checkpoint is intact") from None


def find_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint folder of a run, or None."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        folder = run_dir / name
        if (folder / "state.pt").is_file() and (folder / "model.safetensors").is_file():
            return folder
    return None


def load_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: Any) -> tuple[TrainingPosition, dict[str, Any]]:
    """Restore model, optimizer, schedule and RNG states; returns the position and the state.

    Raises:
        CheckpointError: for truncated files, another model's weights, or a mismatch between
            the two files. Nothing on disk is changed.
    """
    try:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{folder / 'state.pt'}: unreadable or truncated "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{folder / 'state.pt'}: not a {FORMAT} checkpoint")
    metadata = load_weights(model, folder / "model.safetensors")
    position = TrainingPosition(**state["position"])
    if metadata.get("step") != str(position.step):
        raise CheckpointError(f"{folder}: weights are from step {metadata.get('step')} but the "
                              f"state is from step {position.step}; the checkpoint is torn")
    try:
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None and state["schedule"] is not None:
            schedule.load_state_dict(state["schedule"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: optimizer state does not fit this model or "
                              f"optimizer ({exc})") from None
    set_rng_state(state["rng"])
    return position, state
