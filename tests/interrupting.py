"""Run the bigbench CLI in this process and signal it at an exact point of the run.

Tests start this file as a subprocess instead of ``python -m bigbench`` when they need a
signal to arrive at a known step or after a known number of bench points: polling a file from
outside and then signalling races the run, which may finish first on a fast machine.

    python tests/interrupting.py --signal SIGINT --at-step 25 -- train config.yaml --out run
    python tests/interrupting.py --signal SIGINT --after-points 1 -- bench --suite smoke ...
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def _signal_at_step(step: int, sig: signal.Signals) -> None:
    from bigbench import training_loop

    original = training_loop.TrainingLoop._step

    def step_then_signal(self: training_loop.TrainingLoop, done: int) -> None:
        original(self, done)
        if done == step:
            os.kill(os.getpid(), sig)

    training_loop.TrainingLoop._step = step_then_signal  # type: ignore[method-assign]


def _signal_after_points(points: int, sig: signal.Signals) -> None:
    from bigbench.benchmark import run

    original = run.BenchRun.record

    def record_then_signal(self: run.BenchRun, result: dict) -> None:
        original(self, result)
        if len(self.results) == points:
            os.kill(os.getpid(), sig)

    run.BenchRun.record = record_then_signal  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signal", default="SIGINT")
    parser.add_argument("--at-step", type=int)
    parser.add_argument("--after-points", type=int)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    sig = getattr(signal, args.signal)
    if args.at_step is not None:
        _signal_at_step(args.at_step, sig)
    if args.after_points is not None:
        _signal_after_points(args.after_points, sig)
    from bigbench.cli import main as bigbench_main

    sys.argv = ["bigbench", *[a for a in args.argv if a != "--"]]
    bigbench_main()


if __name__ == "__main__":
    main()
