"""Harness overhead: `bigbench train` vs the bare PyTorch loop doing the same work.

Same model, batch size (64), optimizer (SGD, lr 0.01), threads and in-memory data; bigbench runs
with all measurement on — step timing, memory, FLOPs, and the energy sampler (polling a fake
powercap tree where this machine has no RAPL) — and with channels_last off so both arms run the
same kernels. A third arm feeds the bare loop through DataLoader(TensorDataset), as the classic
loop does. Arms are interleaved, repeated, and compared by median.

    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--models cnn,rnn,gpt]

``gpt`` is the tiny GPT on 64-token windows of the built-in corpus (tokens/s = samples/s × 64);
its bare loop computes the loss as nanoGPT does, over every position.

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
from common import bare_loop, dataloader_loop, interleaved, summary
from fakes import LivePowercap

from bigbench.config import load_config
from bigbench.data import build_data
from bigbench.interrupt import StopRequest
from bigbench.measuring.energy.discovery import all_meters
from bigbench.trainer import run_training

SETUPS = {  # model → (dataset section, measured steps)
    "cnn": ("{name: digits, size: 10000, test_size: 0}", 300),
    "rnn": ("{name: tokens, size: 10000, test_size: 0}", 2000),
    "gpt": ("{name: corpus, vocab_size: 32, context: 64, size: 20000, test_size: 0}", 200),
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


def engine_alone(config, repeats: int, steps: int = 60) -> tuple[float, float]:  # noqa: ANN001
    """The step engine vs a bare loop in one process, on the same model, optimizer and batches.

    Everything else (data generation, process state, other threads) is shared, so this isolates
    what the engine's hot loop adds. Returns the median samples/s of (bare, engine).
    """
    from common import classic_criterion, classic_step

    from bigbench.config.schema import OptimizerConfig
    from bigbench.engine import StepEngine, train_phases
    from bigbench.measuring.energy.setup import null_monitor
    from bigbench.measuring.meter import Meter
    from bigbench.measuring.timing import StepTimer
    from bigbench.models import build_model
    from bigbench.workload.build import workload_from_module
    from bigbench.workload.steps import build_step

    torch.manual_seed(0)
    data = build_data(config.data, torch.device("cpu"))
    workload = workload_from_module(build_model(config.model, data.info), data.info,
                                    torch.device("cpu"),
                                    optimizer=OptimizerConfig(name="sgd", lr=0.01))
    net, optimizer = workload.model, workload.optimizer
    x, y = data.train.x, data.train.y
    batches = [(x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]) for i in range(steps)]
    criterion = classic_criterion(data.info.task == "language_modeling")
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
    from bigbench.models import build_model

    config = load_config(_config(work, model))
    dataset = build_data(config.data, torch.device("cpu"))
    data, steps = dataset.train, SETUPS[model][1]
    language_model = dataset.info.task == "language_modeling"

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(config.model, dataset.info).module

    def bigbench_arm() -> float:
        return run_training(config, out=None, stop=StopRequest()).record["throughput"][
            "samples_per_s"]

    results = interleaved({
        "bare loop": lambda: bare_loop(fresh(), data.x, data.y, 64, steps, WARMUP,
                                       language_model=language_model),
        "bigbench train": bigbench_arm,
        "DataLoader loop": lambda: dataloader_loop(fresh(), data.x, data.y, 64, steps, WARMUP,
                                                   language_model=language_model),
    }, repeats)
    print(f"== {model}: {steps} measured steps of batch 64, {repeats} repeats")
    for name, values in results.items():
        print(f"  {name:<16} {summary(values)}")
    bare = statistics.median(results["bare loop"])
    ours = statistics.median(results["bigbench train"])
    loader = statistics.median(results["DataLoader loop"])
    print(f"  bigbench / bare loop:       {ours / bare:.3f}  (target >= 0.99)")
    print(f"  bigbench / DataLoader loop: {ours / loader:.3f}")
    alone_bare, alone_engine = engine_alone(config, repeats=4 * repeats)
    print(f"  step engine alone vs bare loop, same process and batches "
          f"({4 * repeats} repeats): {alone_engine / alone_bare:.3f}\n")


if __name__ == "__main__":
    main()
