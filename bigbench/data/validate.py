"""Checks on user-supplied arrays; every failure names the array and the offending index."""

from __future__ import annotations

import numpy as np

from bigbench.errors import DataError

#: Sample ranks accepted: (L,), (C, L) / (H, W) / (T, F), (C, H, W).
_SAMPLE_RANKS = (1, 2, 3)


def check_inputs(name: str, x: np.ndarray, source: str) -> None:
    """Inputs must be numeric, at least one sample, of rank 2–4, and finite."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: array '{name}' has dtype {x.dtype}; "
                        "inputs must be integer or floating point numbers")
    if x.ndim - 1 not in _SAMPLE_RANKS:
        raise DataError(f"{source}: array '{name}' has shape {x.shape}; expected (N, L), "
                        "(N, C, L), (N, H, W), (N, C, H, W), (N, T) or (N, T, F)")
    if x.shape[0] == 0:
        raise DataError(f"{source}: array '{name}' holds no samples")
    if x.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(x))
        if bad.size:
            where = tuple(int(i) for i in bad[0])
            raise DataError(f"{source}: array '{name}' has a non-finite value {x[where]} at "
                            f"index {where} ({len(bad)} in all); clean the data")


def check_labels(name: str, y: np.ndarray, n: int, source: str, num_classes: int | None = None
                 ) -> int:
    """Labels must be a 1-D integer array of length ``n`` in ``[0, num_classes)``.

    Returns:
        The number of classes (``max + 1`` when ``num_classes`` is not given).
    """
    if y.dtype.kind not in "iu":
        raise DataError(f"{source}: array '{name}' has dtype {y.dtype}; labels must be integers")
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{source}: array '{name}' has shape {y.shape}; expected ({n},), one "
                        "label per sample")
    negative = np.flatnonzero(y < 0)
    if negative.size:
        raise DataError(f"{source}: array '{name}' has a negative label {y[negative[0]]} at "
                        f"index {negative[0]}; labels must be in [0, num_classes)")
    classes = int(y.max()) + 1 if num_classes is None else num_classes
    high = np.flatnonzero(y >= classes)
    if high.size:
        raise DataError(f"{source}: array '{name}' has label {y[high[0]]} at index {high[0]}, "
                        f"outside [0, {classes}) set by the training labels")
    if classes < 2:
        raise DataError(f"{source}: array '{name}' has a single class; classification needs two")
    return classes
