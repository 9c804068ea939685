"""Cost of energy measurement: training throughput with the power sampler on vs off.

Both arms run the same training (the reference CNN on `digits`, CPU) through `bigbench train`'s
own code path, interleaved A/B/A/B so drift hits both equally; the ratio of medians is printed.
Where this machine has no working meter, the sampler polls a fake powercap tree whose counters a
thread advances, so the sampler thread really runs and reads files every interval.

    .venv/bin/python benchmarks/sampler_overhead.py [--repeats 5] [--steps 150]

Target: energy-on throughput at least 0.99x energy-off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes import LivePowercap  # noqa: E402

from bigbench.config import load_config  # noqa: E402
from bigbench.interrupt import StopRequest  # noqa: E402
from bigbench.measuring.energy.discovery import all_meters  # noqa: E402
from bigbench.measuring.energy.sampler import PowerSampler  # noqa: E402
from bigbench.trainer import run_training  # noqa: E402

CONFIG = """\
name: overhead
model: {name: cnn}
data: {name: digits, size: 4096, test_size: 0}
train: {max_steps: STEPS, batch_size: 64, warmup_steps: 10, log_every: 50,
        optimizer: {name: sgd, lr: 0.01, momentum: 0.9}}
device: cpu
output: {save_weights: false}
"""


def _run(config_path: Path, out: Path, energy: bool) -> float:
    cfg = load_config(config_path, [f"measure.energy={str(energy).lower()}",
                                    "measure.flops=false"])
    result = run_training(cfg, out=out, stop=StopRequest())
    return result.record["throughput"]["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bigbench-overhead-"))
    live = None
    if not all_meters().devices:
        os.environ["BIGBENCH_POWERCAP_ROOT"] = str(work / "powercap")
        live = LivePowercap(work / "powercap", {"intel-rapl:0": 50.0}, period_s=0.01).start()
        print("no real energy meter here: the sampler polls a fake powercap tree")
    config = work / "config.yaml"
    config.write_text(CONFIG.replace("STEPS", str(args.steps)))
    rates: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.repeats):
        for energy in (False, True) if i % 2 == 0 else (True, False):
            rate = _run(config, work / f"run-{i}-{energy}", energy)
            rates[energy].append(rate)
            print(f"repeat {i + 1}: energy {'on ' if energy else 'off'} {rate:,.1f} samples/s")
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"\nmedian samples/s: energy off {off:,.1f}, energy on {on:,.1f}")
    print(f"ratio on/off: {on / off:.4f} (target >= 0.99)")
    # The A/B ratio carries run-to-run noise; the sampler's own cost is measured directly too.
    meters = all_meters()
    sampler = PowerSampler(meters.devices, interval_s=0.05)
    ticks = 400
    start = time.perf_counter()
    for _ in range(ticks):
        sampler.sample_once()
    tick_s = (time.perf_counter() - start) / ticks
    print(f"sampler tick: {tick_s * 1e6:.1f} µs for {len(meters.devices)} meter(s); at the "
          f"default 50 ms interval that is {tick_s / 0.05:.3%} of one core")
    if live is not None:
        live.stop()


if __name__ == "__main__":
    main()
