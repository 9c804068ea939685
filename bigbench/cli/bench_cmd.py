"""``bigbench bench`` (and the hidden ``_bench-point`` worker used by ``--isolate``)."""

from __future__ import annotations

import json
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from bigbench.cli.common import (
    err_console,
    out_console,
    print_json,
    print_table,
    user_errors,
)
from bigbench.cli.completion import (
    complete_device,
    complete_models,
    complete_modes,
    complete_precisions,
)
from bigbench.cli.config_cmd import SET_OPTION


class Suite(str, Enum):
    """Named benchmark suites."""

    smoke = "smoke"
    standard = "standard"
    lm = "lm"


#: How this command names each choice in its messages (see bigbench.benchmark.session).
FLAG_NAMES = {"config": "CONFIG", "device": "--device", "suite": "--suite",
              "models": "--models", "batch_sizes": "--batch-sizes", "precisions": "--precision",
              "modes": "--mode", "seq_lens": "--seq-lens", "gen_tokens": "--gen-tokens",
              "steps": "--steps", "duration_s": "--duration", "warmup": "--warmup",
              "repeats": "--repeats", "compile": "--compile", "channels_last": "--channels-last",
              "energy_min_window": "--energy-min-window", "isolate": "--isolate",
              "find_max_batch": "--find-max-batch", "model_from": "--from",
              "power_limits": "--power-limits", "sm_clocks": "--sm-clocks",
              "nproc_per_node": "--nproc-per-node"}


# Typer reads every option from this signature, so it runs past 80 lines; the body only
# resolves the options into a BenchSession and hands it to the library.
@user_errors
def bench(
    config: Path | None = typer.Argument(None, help="Benchmark around this experiment config "
                                         "(its model, data shape and bench: section).",
                                         show_default=False),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.",
                               autocompletion=complete_device),
    suite: Suite | None = typer.Option(None, "--suite", help="Named suite when no CONFIG: "
                                       "smoke (under a minute on 2 CPU cores), standard, or "
                                       "lm (language models: tiny GPT on a CPU, GPT-2 small "
                                       "in bf16 on CUDA) \\[default: standard]."),
    models: str | None = typer.Option(None, "--models", help="Comma-separated model names.",
                                      autocompletion=complete_models),
    model_from: Path | None = typer.Option(
        None, "--from", metavar="DIR", help="Measure the model saved in DIR instead of fresh "
        "registry models: a variant folder of bigbench optimize or a training run's directory "
        "(inference at batch 1 and 64 unless --batch-sizes and --mode say otherwise)."),
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="e.g. 32,64,128."),
    precision: str | None = typer.Option(None, "--precision", help="fp32,bf16,fp16 "
                                         "(bf16/fp16 under autocast).",
                                         autocompletion=complete_precisions),
    mode: str | None = typer.Option(None, "--mode", help="train,infer. For a language model "
                                    "infer measures prefill and decode separately.",
                                    autocompletion=complete_modes),
    seq_lens: str | None = typer.Option(None, "--seq-lens", help="Sequence lengths of sequence "
                                        "models: the training window and the prompt, e.g. "
                                        "128,1024."),
    gen_tokens: str | None = typer.Option(None, "--gen-tokens", help="Language models: tokens "
                                          "generated per sequence by decode points, e.g. "
                                          "32,128 \\[default: 32]."),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile",
                                         help="torch.compile every model."),
    channels_last: bool | None = typer.Option(None, "--channels-last/--no-channels-last",
                                              help="channels_last memory format (2-D CNNs)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Measured steps per repeat."),
    duration: float | None = typer.Option(None, "--duration", min=0.001,
                                          help="Measured seconds per repeat (instead of steps)."),
    warmup: int | None = typer.Option(None, "--warmup", min=0, help="Warm-up steps per point."),
    repeats: int | None = typer.Option(None, "--repeats", min=1,
                                       help="Measured repeats per point \\[default: 3]."),
    isolate: bool | None = typer.Option(None, "--isolate/--no-isolate",
                                        help="Run each point in a fresh process "
                                        "\\[default: on for CUDA, off for CPU]."),
    find_max_batch: bool = typer.Option(False, "--find-max-batch",
                                        help="Also search the largest batch that fits (CUDA)."),
    power_limits: str | None = typer.Option(
        None, "--power-limits", metavar="W,...", help="Run every point at each GPU power "
        "limit: watts, or min, default, max, e.g. 200,300,max. Set through NVML (needs root) "
        "and always restored; the original is saved in gpu_state.json first (bigbench gpu "
        "restore puts it back after a hard kill). CUDA only."),
    sm_clocks: str | None = typer.Option(
        None, "--sm-clocks", metavar="MHZ,...", help="Also lock the SM clock at each of these "
        "MHz (times each power limit), e.g. 1410,1980; unlocked at the end. CUDA only."),
    nproc_per_node: str | None = typer.Option(
        None, "--nproc-per-node", metavar="N,...", help="Measure scaling instead of the matrix: "
        "the CONFIG's training job at each world size, e.g. 1,2,4, with the same per-rank batch "
        "(train.batch_size or one --batch-sizes value) for --warmup + --steps steps, launched "
        "like bigbench train --nproc-per-node N; reports speed-up, scaling efficiency and "
        "J/sample per size (bench.nproc_per_node). At most 64; on CUDA one rank per GPU."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (new or empty) "
                                    "\\[default: runs/<UTC time>-bench-<suite>]."),
    energy_min_window: bool | None = typer.Option(
        None, "--energy-min-window/--no-energy-min-window",
        help="When energy is measured, lengthen each repeat to the shortest window whose "
        "energy can reach quality ok (5 s on GPUs) \\[default: on]. Off: faster, and "
        "J/sample is marked low quality."),
    json_: bool = typer.Option(False, "--json", help="Print bench.json to stdout."),
    markdown_: bool = typer.Option(False, "--markdown", help="Print a Markdown table to stdout."),
    set_: list[str] = SET_OPTION,
) -> None:
    """Benchmark a matrix of models, batch sizes, precisions and modes on one device.

    Each point trains (or infers) a fresh model — or, with --from, the saved one — on synthetic
    data already on the device: warm-up
    outside the measured window, then --repeats measured windows reported as median and IQR
    (flagged noisy when the IQR exceeds 10% of the median). Writes bench.json and bench.csv.
    Exit code 1 when a point failed (out of memory and skipped points are results, not failures).

    Examples:

      bigbench bench --device cpu --suite smoke
      bigbench bench --device cuda --models cnn,lstm --precision fp32,bf16
      bigbench bench configs/cnn.yaml --mode train --repeats 5 --markdown
      bigbench bench --suite lm --device cpu --seq-lens 64,256 --gen-tokens 32
      bigbench bench --from runs/opt/variants/int8-static --batch-sizes 1,32
      bigbench bench --device cuda --models cnn --power-limits 200,300,max
      bigbench bench configs/cnn.yaml --nproc-per-node 1,2,4
    """
    from bigbench.benchmark.scaling import build_scaling, requested_sizes
    from bigbench.benchmark.session import BenchArgs, build_session, check_args
    from bigbench.config import load_config
    from bigbench.results import check_out_dir

    args = BenchArgs(
        device=device, suite=suite.value if suite else None, has_config=config is not None,
        models=models, batch_sizes=batch_sizes, precisions=precision, modes=mode,
        seq_lens=seq_lens, gen_tokens=gen_tokens, compile=compile_, channels_last=channels_last,
        steps=steps, duration_s=duration, warmup=warmup, repeats=repeats,
        energy_min_window=energy_min_window, isolate=isolate, find_max_batch=find_max_batch,
        model_from=model_from, power_limits=power_limits, sm_clocks=sm_clocks,
        nproc_per_node=nproc_per_node)
    flags = check_args(args, FLAG_NAMES)
    if out is not None:
        check_out_dir(out)
    cfg = load_config(config, set_) if config is not None else None
    if requested_sizes(cfg, flags):
        _run_scaling(build_scaling(cfg, args, flags, out, FLAG_NAMES), json_, markdown_)
        return
    _run(build_session(cfg, args, flags, out, FLAG_NAMES), json_, markdown_)


def _run(session: Any, json_: bool, markdown_: bool) -> None:
    """Run the benchmark with a live table on stderr, then print the result."""
    from rich.live import Live

    from bigbench.benchmark.output import console_table
    from bigbench.benchmark.run import run_bench
    from bigbench.interrupt import graceful_stop

    console = err_console()
    title = (f"bigbench bench — {session.label} on {session.env['device']['name']} "
             f"({len(session.points)} points)")
    with graceful_stop() as stop, Live(console_table([], title), console=console,
                                       transient=True, refresh_per_second=4) as live:
        run = run_bench(session, lambda: stop.requested,
                        lambda r: live.update(console_table(r.results, title)))
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if session.power is not None:  # run_bench restored it (or raised saying it could not)
        unlocked = any(p.sm_clock_mhz for p in session.points)
        console.print(f"{session.power.label}: power limit restored to "
                      f"{session.power.original_w:g} W{', SM clocks unlocked' if unlocked else ''}",
                      soft_wrap=True, highlight=False)
    _print_result(run, title, json_, markdown_)
    console.print(f"figures: bigbench report {shlex.quote(str(run.out_dir))}", soft_wrap=True,
                  highlight=False, markup=False)
    if run.document["status"] == "interrupted":
        console.print(f"interrupted: {len(run.results)} of {len(session.points)} points "
                      f"measured; results kept in {session.out_dir}")
        raise typer.Exit(stop.exit_code or 130)
    failed = [r["id"] for r in run.results if r["status"] == "failed"]
    if failed:
        console.print(f"[red]failed points:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def _run_scaling(session: Any, json_: bool, markdown_: bool) -> None:
    """Run each world size's job with a line on stderr per size, then print the table."""
    from bigbench.benchmark import scaling
    from bigbench.interrupt import graceful_stop

    console = err_console()
    title = (f"bigbench bench — scaling of {session.label} on {session.env['device']['name']} "
             f"(world sizes {', '.join(map(str, session.sizes))})")
    console.print(f"{title}: each world size trains {session.warmup_steps} warm-up + "
                  f"{session.measured_steps} measured steps at batch {session.batch_size} per "
                  f"rank; jobs in {session.out_dir / 'scaling'}", highlight=False, markup=False,
                  soft_wrap=True)

    def show(run: Any) -> None:
        entry = run.document["scaling"]["sizes"][-1]
        rate = entry["samples_per_s"]
        figure = f"{rate:,.0f} samples/s" if rate is not None else entry["error"] or ""
        if entry["speedup"] is not None:
            figure += f", speed-up {entry['speedup']:.2f}×"
        ranks = f"{entry['world_size']} rank{'s' if entry['world_size'] > 1 else ''}"
        console.print(f"  {ranks}: {' '.join(filter(None, [entry['status'], figure]))} "
                      f"({entry['wall_s']:.1f} s)", highlight=False, markup=False,
                      soft_wrap=True)

    with graceful_stop() as stop:
        run = scaling.run_scaling(session, lambda: stop.requested, show)
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if json_:
        print_json(run.document)
    elif markdown_:
        sys.stdout.write(scaling.markdown(run.document))
    else:
        print_table(out_console(), scaling.console_table(run.document, title))
        out_console().print(f"results: {run.out_dir / 'bench.json'}", soft_wrap=True,
                            highlight=False, markup=False)
    measured = [s for s in run.document["scaling"]["sizes"] if s["status"] != "interrupted"]
    if run.document["status"] == "interrupted":
        console.print(f"interrupted: {len(measured)} of {len(session.sizes)} world sizes "
                      f"measured; results kept in {session.out_dir}")
        raise typer.Exit(stop.exit_code or 130)
    failed = scaling.failed_sizes(run.document)
    if failed:
        console.print(f"[red]failed world sizes:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def _print_result(run: Any, title: str, json_: bool, markdown_: bool) -> None:
    """bench.json, a Markdown table or the console table, on stdout."""
    from bigbench.benchmark.output import console_table, markdown

    if json_:
        print_json(run.document)
    elif markdown_:
        sys.stdout.write(markdown(run.document))
    else:
        out_console().print(console_table(run.results, title))
        out_console().print(f"results: {run.out_dir / 'bench.json'}, "
                            f"{run.out_dir / 'bench.csv'}")


@user_errors
def bench_point_worker() -> None:
    """Measure one point described by JSON on stdin; print its result as JSON (for --isolate)."""
    from bigbench import devices
    from bigbench.benchmark.matrix import Plan, Point
    from bigbench.benchmark.runner import run_point, saved_model_measure, with_gpu_snapshots
    from bigbench.config.schema import MeasureConfig
    from bigbench.errors import ConfigError
    from bigbench.measurement import energy_monitor

    try:
        request = json.loads(sys.stdin.read())
        point, plan = Point.from_dict(request["point"]), Plan(**request["plan"])
        measure = MeasureConfig(**request["measure"])
        device = devices.resolve(request["device"])
        model_from = request.get("model_from")
        snapshot_uuid = request.get("gpu_snapshot_uuid")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"_bench-point: not a point request on stdin ({exc}); this is an "
                          "internal command of bigbench bench --isolate") from None
    snapshot = None
    if snapshot_uuid:  # the parent set this point's GPU settings: read them at window edges
        from bigbench.measuring.energy.power_limits import snapshot_reader

        snapshot = snapshot_reader(snapshot_uuid)
    energy = energy_monitor(measure, device)
    energy.start()
    try:
        result = run_point(point, plan, device, energy,
                           measure=with_gpu_snapshots(saved_model_measure(model_from), snapshot))
    finally:
        energy.stop()
    sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
