"""The base class of every config section, at the bottom of the package's layers.

Models, datasets and the registry declare their arguments with it; it imports nothing from
bigbench, so nothing built on it can form an import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """An immutable config section: unknown keys, type coercion and inf/NaN are refused.

    Strict mode means ``batch_size: "64"`` or ``epochs: 2.5`` is an error rather than a silent
    conversion; ``lr: 1`` is still accepted for a float.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        validate_default=True,
    )
