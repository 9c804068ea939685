"""GPU energy check: does bigbench's energy measurement hold up on this machine's NVIDIA GPU?

Runs in under 5 minutes:
  1. the meters NVML offers (``bigbench energy probe``);
  2. the energy counter's update period, observed by polling it for 3 s;
  3. a 30 s steady training load (the reference CNN, batch 512): counter vs integrated power,
     sampler samples per second, J/sample, MFU;
  4. a benchmark point with the default energy window: each repeat's J/sample, error bound
     and quality (all "ok" expected);
  5. the sampler's overhead: two 10 s runs with energy measurement off and on (ratio);
  6. language models: GPT-2 small geometry (configs/gpt-124m.yaml) at context 1024 in bf16
     with torch.compile — tokens/s, MFU (expected ≥ 40% on an H100/H200-class GPU), J/token —
     and the `--suite lm` bench (prefill and decode tokens/s, time to first token, time per
     output token).

    .venv/bin/python scripts/gpu_check.py [--device cuda:0] [--seconds 30]

``--device cpu`` runs the same steps on the CPU (a dry run where no GPU exists).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bigbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bigbench", *args], cwd=ROOT, text=True,
                          capture_output=True)


def _train(out: Path, device: str, energy: bool, seconds: float | None = None,
           steps: int = 30) -> dict:
    """A training run of ``steps`` steps, extended to ``seconds`` of measurement if given."""
    extend = ["--set", "measure.extend_to_min_window=true",
              "--set", f"measure.min_energy_window_s={seconds}"] if seconds else []
    result = _bigbench(
        "train", "configs/cnn.yaml", "--device", device, "--out", str(out), "--json",
        "--set", "data.size=20000", "--set", "data.test_size=1000",
        "--set", "train.batch_size=512", "--set", f"train.max_steps={steps + 20}",
        "--set", "train.warmup_steps=20",
        "--set", f"measure.energy={'true' if energy else 'false'}", *extend)
    if result.returncode != 0:
        sys.exit(f"training failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def counter_update_period(device_index: int, seconds: float = 3.0) -> dict:
    """Poll the NVML energy counter and report how often its value changes."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
        uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid.encode())
        last = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:  # a check script reports what it could not do
        return {"error": f"{type(exc).__name__}: {exc}"}
    changes = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        value = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        if value != last:
            changes.append(time.perf_counter())
            last = value
    gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
    return {"updates": len(changes),
            "median_period_ms": statistics.median(gaps) * 1000 if gaps else None,
            "min_period_ms": min(gaps) * 1000 if gaps else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--only-lm", action="store_true", help="run step 6 alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bigbench-gpu-check-"))
    if args.only_lm:
        language_models(work, args.device)
        return

    print("== meters\n" + _bigbench("energy", "probe").stdout)
    print(_bigbench("devices").stdout)
    if args.device.startswith("cuda"):
        index = int(args.device.partition(":")[2] or 0)
        print("== NVML energy counter update period (3 s of polling)")
        print(json.dumps(counter_update_period(index), indent=2))

    print(f"\n== {args.seconds:g} s steady training load")
    run = _train(work / "steady", args.device, energy=True, seconds=args.seconds)
    energy, tp, flops = run["energy"], run["throughput"], run["flops"]
    sampler = energy.get("sampler") or {}
    measured_s = tp["measured_time_s"]
    print(f"device: {run['env']['device']['name']}; driver: "
          f"{(run['env'].get('energy_meters') or [{}])[0].get('driver_version')}")
    print(f"measured window: {measured_s:.1f} s, {tp['samples_per_s']:,.0f} samples/s")
    print(f"energy: status {energy['status']}, total {energy['total_j']} J, "
          f"J/sample {energy['j_per_sample']}, quality {energy.get('quality')}")
    for device in energy["devices"]:
        print(f"  {device['kind']} {device['name']}: {device.get('energy_j')} J via "
              f"{device.get('method')}; integral {device.get('integral_j')} J; counter vs "
              f"integral {device.get('counter_vs_integral_diff')}; power "
              f"{device.get('power_method')}; {device.get('samples')} samples; "
              f"± {device.get('uncertainty_j')} J ({device.get('uncertainty_method')}); "
              f"counter period {device.get('counter_period_s')} s "
              f"({device.get('counter_period_basis')}); reason {device.get('reason')}")
    if sampler.get("ticks"):
        print(f"sampler: {sampler['ticks'] / run['time']['wall_s']:.1f} ticks/s "
              f"(interval {sampler['interval_s'] * 1000:.0f} ms), errors {sampler['errors']}")
    print(f"MFU: {flops.get('mfu')} ({flops.get('peak_dtype')} peak {flops.get('peak_source')};"
          f" {flops.get('peak_basis')})")

    print("\n== bench point with the default energy window (2 repeats)")
    bench = _bigbench("bench", "--device", args.device, "--models", "cnn", "--batch-sizes",
                      "512", "--mode", "train", "--repeats", "2", "--out", str(work / "bench"),
                      "--json")
    if bench.returncode != 0:
        print(f"bench failed ({bench.returncode}): {bench.stderr[-1000:]}")
    else:
        point = json.loads(bench.stdout)["points"][0]
        energy = point.get("energy") or {}
        for repeat in energy.get("repeats") or []:
            print(f"  {repeat['window']}: {repeat['time_s']:.2f} s, J/sample "
                  f"{repeat['j_per_sample']} ± {repeat['uncertainty_j']} J total, quality "
                  f"{repeat['quality']} {repeat['quality_reasons']}")
        print(f"  point: J/sample {energy.get('j_per_sample')}, quality {energy.get('quality')}")

    print("\n== sampler overhead (about 10 s runs of equal steps, off/on/off/on)")
    steps = max(30, int(tp["samples_per_s"] * 10 / 512))
    rates: dict[bool, list[float]] = {False: [], True: []}
    for i, energy_on in enumerate((False, True, False, True)):
        rates[energy_on].append(_train(work / f"ab{i}", args.device, energy_on,
                                       steps=steps)["throughput"]["samples_per_s"])
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"samples/s energy off {off:,.0f}, on {on:,.0f}: ratio on/off {on / off:.4f}")
    language_models(work, args.device)


def language_models(work: Path, device: str) -> None:
    """GPT-2 small at context 1024, bf16 + compile: MFU and J/token; then the lm bench suite."""
    print("\n== gpt 124m, context 1024, bf16, torch.compile (60 measured steps)")
    result = _bigbench("train", "configs/gpt-124m.yaml", "--device", device, "--json",
                       "--out", str(work / "gpt124m"), "--set", "train.compile=true",
                       "--set", "train.max_steps=80", "--set", "output.save_weights=false")
    if result.returncode != 0:
        print(f"gpt training failed ({result.returncode}): {result.stderr[-1500:]}")
    else:
        run = json.loads(result.stdout)
        tp, flops, energy = run["throughput"], run["flops"], run["energy"]
        print(f"tokens/s {tp['tokens_per_s']:,.0f}; step p50 {tp['step_time_s']['p50']}; "
              f"MFU {flops.get('mfu')} (target ≥ 0.40; {flops.get('peak_dtype')} peak "
              f"{flops.get('peak_flops_per_s')}); FLOPs/token "
              f"{flops['train_step_per_sample'] / 1024:,.0f}; J/token "
              f"{energy.get('j_per_token')} (quality {energy.get('quality')}); peak memory "
              f"{run['memory']['device_peak_allocated_bytes']}; compile "
              f"{(run.get('compile') or {}).get('first_step_s')} s")
    print("\n== bench --suite lm (GPT-2 small, bf16)")
    bench = _bigbench("bench", "--suite", "lm", "--device", device, "--repeats", "2",
                      "--no-energy-min-window", "--out", str(work / "lm-bench"), "--markdown")
    print(bench.stdout if bench.returncode == 0 else
          f"lm bench failed ({bench.returncode}): {bench.stderr[-1500:]}")


if __name__ == "__main__":
    main()
