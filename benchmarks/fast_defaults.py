"""Fast defaults: `bigbench train configs/cnn.yaml` as shipped vs the classic plain loop.

The plain loop is the textbook one: DataLoader(TensorDataset(x, y), batch_size=64,
shuffle=True) feeding forward, loss, zero_grad, backward, step. Both train the reference CNN on
the same `digits` data for the same epochs with the same optimizer (SGD, lr 0.01, momentum 0.9);
throughput excludes the first 10 steps and evaluation in both; accuracy is on the same test set.

    .venv/bin/python benchmarks/fast_defaults.py [--repeats 3]

Target: bigbench ≥ 1.2× the plain loop's samples/s at the same accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, classic_step, reference_model, summary
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bigbench.config import load_config
from bigbench.data import build_data
from bigbench.interrupt import StopRequest
from bigbench.trainer import run_training

WARMUP = 10


def plain_loop(config) -> tuple[float, float]:  # noqa: ANN001
    """Train like the classic example; returns (samples/s after warm-up, test accuracy)."""
    torch.manual_seed(config.train.seed)
    data = build_data(config.data, torch.device("cpu"))
    model = reference_model("cnn")
    loader = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=64, shuffle=True,
                        drop_last=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    steps, samples, trained_s = 0, 0, 0.0
    for _ in range(config.train.epochs):
        start = time.perf_counter()
        for images, labels in loader:
            if steps == WARMUP:
                start, samples = time.perf_counter(), 0
            classic_step(model, criterion, optimizer, images, labels)
            steps += 1
            samples += len(labels)
        trained_s += time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = (model(data.test.x).argmax(1) == data.test.y).float().mean().item()
    return (steps - WARMUP) * 64 / trained_s, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bigbench-defaults-"))
    config = load_config(ROOT / "configs" / "cnn.yaml",
                         [f"output.dir={work}", "output.save_weights=false", "device=cpu"])
    results: dict[str, list[tuple[float, float]]] = {"plain loop": [], "bigbench": []}
    for r in range(args.repeats):
        for arm in (("plain loop", "bigbench") if r % 2 == 0 else ("bigbench", "plain loop")):
            if arm == "plain loop":
                results[arm].append(plain_loop(config))
            else:
                record = run_training(config, out=None, stop=StopRequest()).record
                results[arm].append((record["throughput"]["samples_per_s"],
                                     record["eval"]["accuracy"]))
            print(f"repeat {r + 1}: {arm:<10} {results[arm][-1][0]:,.1f} samples/s, "
                  f"accuracy {results[arm][-1][1]:.2%}")
    print(f"\nreference CNN, batch 64, {config.train.epochs} epochs of "
          f"{config.data.size} digits, {torch.get_num_threads()} threads")
    for arm, values in results.items():
        accuracy = statistics.median(a for _, a in values)
        print(f"  {arm:<10} {summary([v for v, _ in values])}, accuracy {accuracy:.2%}")
    ours = statistics.median(v for v, _ in results["bigbench"])
    plain = statistics.median(v for v, _ in results["plain loop"])
    print(f"  bigbench / plain loop: {ours / plain:.3f}  (target >= 1.2)")


if __name__ == "__main__":
    main()
