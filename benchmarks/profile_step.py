"""Where the time of one training step goes (torch.profiler), as a Markdown table.

Profiles 30 steps of bigbench's training step for the reference CNN (batch 64, CPU, defaults:
channels_last, device-side batches) after 10 warm-up steps.

    .venv/bin/python benchmarks/profile_step.py [--rows 12]
"""

from __future__ import annotations

import argparse
import itertools

import torch
from common import reference_workload
from torch.profiler import ProfilerActivity, profile

from bigbench.config import load_config
from bigbench.data import build_data
from bigbench.data.tensors import Batcher
from bigbench.workload.steps import build_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    config = load_config("configs/cnn.yaml", ["device=cpu"])
    data = build_data(config.data, torch.device("cpu"))
    torch.manual_seed(0)
    step = build_step(reference_workload("cnn", config.train.optimizer, channels_last=True),
                      "train")
    batches = itertools.cycle(list(Batcher(data.train, 64, True, 0).epoch(0)))
    for _ in range(10):
        step(next(batches))
    steps = 30
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(next(batches))
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print("| op | self CPU per step | share |\n|---|---|---|")
    for event in events[:args.rows]:
        print(f"| `{event.key}` | {event.self_cpu_time_total / steps / 1000:.2f} ms | "
              f"{event.self_cpu_time_total / total:.1%} |")
    rest = total - sum(e.self_cpu_time_total for e in events[:args.rows])
    print(f"| everything else | {rest / steps / 1000:.2f} ms | {rest / total:.1%} |")
    print(f"| **total** | **{total / steps / 1000:.2f} ms** | 100% |")


if __name__ == "__main__":
    main()
