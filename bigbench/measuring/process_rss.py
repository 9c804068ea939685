"""Peak resident memory of a process and all its descendants, sampled with psutil.

``getrusage(RUSAGE_CHILDREN)`` is not used: it reports only the largest single descendant, and
a child forked from a large parent can inherit the parent's RSS before it execs.
"""

from __future__ import annotations

import threading

import psutil


class TreeRssSampler:
    """Samples the summed RSS of ``pid`` and its descendants every ``interval_s`` seconds."""

    def __init__(self, pid: int, interval_s: float) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bigbench-rss", daemon=True)

    def sample_once(self) -> None:
        """Add one sample; a process that just exited is skipped."""
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        if total and (self.peak_bytes is None or total > self.peak_bytes):
            self.peak_bytes = total

    def _run(self) -> None:
        self.sample_once()
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=5)
