"""The interface every energy meter implements, and the meter that measures nothing."""

from __future__ import annotations

from typing import Any, Protocol


class EnergyMeter(Protocol):
    """Measures energy over windows bracketed by :meth:`begin` and :meth:`end`."""

    def begin(self) -> Any:
        """Start a window (called right after the device was synchronised); returns a token."""

    def end(self, token: Any) -> dict[str, Any]:
        """Finish the window started with ``token``; returns its energy record."""

    def summary(self) -> dict[str, Any]:
        """The run-level ``energy`` section of run.json."""


class NullEnergyMeter:
    """Measures nothing and says why; every figure it reports is null with that reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def begin(self) -> None:
        return None

    def end(self, token: Any) -> dict[str, Any]:
        return {"status": "unavailable", "reason": self.reason}

    def summary(self) -> dict[str, Any]:
        return {"status": "unavailable", "reason": self.reason}
