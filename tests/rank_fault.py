"""``bigbench`` with one rank's training step raising, for fault tests under torchrun.

Run as ``torchrun --nproc-per-node 2 tests/rank_fault.py train CONFIG ...`` with
``BIGBENCH_FAULT_RANK`` (the rank whose step raises) and ``BIGBENCH_FAULT_STEP`` (the step,
counting from 1, that raises on it). The fault is injected at the boundary — the step the
engine calls — so everything around it (the loop, run.json, the other ranks) is the real code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bigbench.training_loop as training_loop  # noqa: E402
from bigbench.cli import main  # noqa: E402

real_build_step = training_loop.build_step


def faulty_build_step(workload, mode, **kwargs):  # type: ignore[no-untyped-def]
    step = real_build_step(workload, mode, **kwargs)
    if int(os.environ["RANK"]) != int(os.environ["BIGBENCH_FAULT_RANK"]):
        return step
    count = 0

    def failing(batch):  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1
        if count == int(os.environ["BIGBENCH_FAULT_STEP"]):
            raise RuntimeError(f"injected fault at step {count}")
        return step(batch)

    return failing


training_loop.build_step = faulty_build_step

if __name__ == "__main__":
    main()
