"""Harness overhead: `bigbench train` vs the bare PyTorch loop doing the same work.

Same model, batch size (64), optimizer (SGD, lr 0.01), threads and in-memory data; bigbench runs
with all measurement on — step timing, memory, FLOPs, and the energy sampler (polling a fake
powercap tree where this machine has no RAPL) — and with channels_last off so both arms run the
same kernels. A third arm feeds the bare loop through DataLoader(TensorDataset), as the classic
loop does. Arms are interleaved, repeated, and compared by median.

    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--models cnn,rnn]

Target: bigbench ≥ 0.99× the bare loop's samples/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import bare_loop, dataloader_loop, interleaved, reference_model, summary
from fakes import LivePowercap

from bigbench.config import load_config
from bigbench.data import build_data
from bigbench.interrupt import StopRequest
from bigbench.measure.energy.discovery import all_meters
from bigbench.train import run_training

SETUPS = {  # model → (dataset section, measured steps)
    "cnn": ("{name: digits, size: 10000, test_size: 0}", 300),
    "rnn": ("{name: tokens, size: 10000, test_size: 0}", 2000),
}
WARMUP = 10


def _config(work: Path, model: str) -> Path:
    data, steps = SETUPS[model]
    path = work / f"{model}.yaml"
    path.write_text(f"""name: overhead-{model}
model: {{name: {model}}}
data: {data}
train: {{max_steps: {steps + WARMUP}, batch_size: 64, warmup_steps: {WARMUP}, log_every: 50,
        optimizer: {{name: sgd, lr: 0.01}}, channels_last: false}}
device: cpu
output: {{dir: {work / 'runs'}, save_weights: false}}
""")
    return path


def engine_alone(model: str, repeats: int, steps: int = 60) -> tuple[float, float]:
    """The step engine vs a bare loop in one process, on the same model, optimizer and batches.

    Everything else (data generation, process state, other threads) is shared, so this isolates
    what the engine's hot loop adds. Returns the median samples/s of (bare, engine).
    """
    from common import classic_step, reference_workload

    from bigbench.engine import StepEngine, train_phases
    from bigbench.measure.energy.setup import null_monitor
    from bigbench.measure.meter import Meter
    from bigbench.measure.timing import StepTimer
    from bigbench.workload.steps import build_step

    torch.manual_seed(0)
    workload = reference_workload(model)
    net, optimizer = workload.model, workload.optimizer
    info = _reference_input(model)
    x = (torch.randint(0, 10, (64 * steps, *info)) if model != "cnn"
         else torch.randn(64 * steps, *info))
    y = torch.randint(0, 2 if model != "cnn" else 10, (64 * steps,))
    batches = [(x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]) for i in range(steps)]
    criterion = torch.nn.CrossEntropyLoss()
    step = build_step(workload, "train")

    def bare() -> float:
        start = time.perf_counter()
        for images, labels in batches:
            classic_step(net, criterion, optimizer, images, labels)
        return steps * 64 / (time.perf_counter() - start)

    def engine() -> float:
        meter = Meter(torch.device("cpu"), null_monitor("not measured here"))
        StepEngine(step, meter, StepTimer(torch.device("cpu")), phases=train_phases(steps, 0),
                   log_every=50).run(batches, 0)
        measured = meter.totals("measured")
        return measured.samples / measured.time_s

    bare(), engine()  # warm both paths up
    results = interleaved({"bare": bare, "engine": engine}, repeats)
    return statistics.median(results["bare"]), statistics.median(results["engine"])


def _reference_input(model: str) -> tuple[int, ...]:
    from bigbench.models import MODELS

    return MODELS.get(model).extras["reference_data"].sample_shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="cnn,rnn")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bigbench-overhead-"))
    if not all_meters().devices:
        os.environ["BIGBENCH_POWERCAP_ROOT"] = str(work / "powercap")
        LivePowercap(work / "powercap", {"intel-rapl:0": 50.0}, period_s=0.01).start()
        print("no real energy meter here: the energy sampler polls a fake powercap tree")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    for model in args.models.split(","):
        compare(model, work, args.repeats)


def compare(model: str, work: Path, repeats: int) -> None:
    """Interleave the three arms for one model and print medians and ratios."""
    config = load_config(_config(work, model))
    data = build_data(config.data, torch.device("cpu")).train
    steps = SETUPS[model][1]

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return reference_model(model)

    def bigbench_arm() -> float:
        return run_training(config, out=None, stop=StopRequest()).record["throughput"][
            "samples_per_s"]

    results = interleaved({
        "bare loop": lambda: bare_loop(fresh(), data.x, data.y, 64, steps, WARMUP),
        "bigbench train": bigbench_arm,
        "DataLoader loop": lambda: dataloader_loop(fresh(), data.x, data.y, 64, steps, WARMUP),
    }, repeats)
    print(f"== {model}: {steps} measured steps of batch 64, {repeats} repeats")
    for name, values in results.items():
        print(f"  {name:<16} {summary(values)}")
    bare = statistics.median(results["bare loop"])
    ours = statistics.median(results["bigbench train"])
    loader = statistics.median(results["DataLoader loop"])
    print(f"  bigbench / bare loop:       {ours / bare:.3f}  (target >= 0.99)")
    print(f"  bigbench / DataLoader loop: {ours / loader:.3f}")
    alone_bare, alone_engine = engine_alone(model, repeats=4 * repeats)
    print(f"  step engine alone vs bare loop, same process and batches "
          f"({4 * repeats} repeats): {alone_engine / alone_bare:.3f}\n")


if __name__ == "__main__":
    main()
