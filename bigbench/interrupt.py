"""Stop a run cleanly on SIGINT/SIGTERM.

The first signal only sets a flag: the engine finishes the current step, then the run writes its
results with status "interrupted". A second signal raises KeyboardInterrupt at once; every file
is written atomically, so each is still either its old or its new complete version.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Conventional exit codes: 128 + signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequest:
    """Records the first stop signal received."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM, 0 when none arrived."""
        return EXIT_CODES.get(self.signal, 130) if self.signal is not None else 0


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Install the handlers for the body's duration (only possible in the main thread)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.signal = signal.Signals(signum)

    previous = {sig: signal.signal(sig, handle) for sig in EXIT_CODES}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
