"""``bigbench bench`` (and the hidden ``_bench-point`` worker used by ``--isolate``)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from bigbench.cli.common import err_console, out_console, print_json, user_errors
from bigbench.cli.config_cmd import SET_OPTION


class Suite(str, Enum):
    """Named benchmark suites."""

    smoke = "smoke"
    standard = "standard"


@user_errors
def bench(
    config: Path | None = typer.Argument(None, help="Benchmark around this experiment config "
                                         "(its model, data shape and bench: section).",
                                         show_default=False),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    suite: Suite | None = typer.Option(None, "--suite", help="Named suite when no CONFIG: "
                                       "smoke (under a minute on 2 CPU cores) or standard "
                                       "\\[default: standard]."),
    models: str | None = typer.Option(None, "--models", help="Comma-separated model names."),
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="e.g. 32,64,128."),
    precision: str | None = typer.Option(None, "--precision", help="fp32,bf16,fp16 "
                                         "(bf16/fp16 under autocast)."),
    mode: str | None = typer.Option(None, "--mode", help="train,infer."),
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
    out: Path | None = typer.Option(None, "--out", help="Output directory (new or empty) "
                                    "\\[default: runs/<UTC time>-bench-<suite>]."),
    json_: bool = typer.Option(False, "--json", help="Print bench.json to stdout."),
    markdown_: bool = typer.Option(False, "--markdown", help="Print a Markdown table to stdout."),
    set_: list[str] = SET_OPTION,
) -> None:
    """Benchmark a matrix of models, batch sizes, precisions and modes on one device.

    Each point trains (or infers) a fresh model on synthetic data already on the device: warm-up
    outside the measured window, then --repeats measured windows reported as median and IQR
    (flagged noisy when the IQR exceeds 10% of the median). Writes bench.json and bench.csv.
    Exit code 1 when a point failed (out of memory and skipped points are results, not failures).

    Examples:

      bigbench bench --device cpu --suite smoke

      bigbench bench --device cuda --models cnn,lstm --batch-sizes 64,256 --precision fp32,bf16

      bigbench bench configs/cnn.yaml --mode train --repeats 5 --markdown
    """
    from bigbench.bench.matrix import MODES, PRECISIONS, parse_batch_sizes, parse_list
    from bigbench.bench.session import (
        Overrides,
        apply_overrides,
        matrix_from_config,
        suite_matrix,
    )
    from bigbench.config import check_device_string, load_config
    from bigbench.errors import ConfigError
    from bigbench.models.registry import MODELS
    from bigbench.results import check_out_dir, create_run_dir

    try:
        check_device_string(device)
    except ValueError as exc:
        raise ConfigError(f"--device: {exc}") from None
    if config is not None and suite is not None:
        raise ConfigError("give either CONFIG or --suite, not both")
    if out is not None:
        check_out_dir(out)
    cfg = load_config(config, set_) if config is not None else None
    if cfg is not None:
        matrix, plan = matrix_from_config(cfg)
        label = cfg.name
    else:
        name = (suite or Suite.standard).value
        matrix, plan = suite_matrix(name)
        label = name
    flags = Overrides(
        models=parse_list("--models", models, MODELS.names()) if models else None,
        batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes else None,
        precisions=parse_list("--precision", precision, PRECISIONS) if precision else None,
        modes=parse_list("--mode", mode, MODES) if mode else None,
        compile=compile_, channels_last=channels_last, steps=steps, duration_s=duration,
        warmup=warmup, repeats=repeats)
    matrix, plan = apply_overrides(matrix, plan, flags)

    from bigbench import devices, environment
    from bigbench.bench.matrix import expand

    torch_device = devices.resolve(device)
    if find_max_batch and torch_device.type != "cuda":
        raise ConfigError("--find-max-batch needs a CUDA device: on the CPU an allocation that "
                          "does not fit ends the process (the kernel's OOM killer) instead of "
                          "raising an error bigbench could record")
    from bigbench.config.schema import MeasureConfig

    _run(_Session(
        points=expand(matrix), plan=plan, device=torch_device,
        isolated=torch_device.type == "cuda" if isolate is None else isolate,
        find_max=find_max_batch,
        out_dir=create_run_dir(Path(cfg.output.dir if cfg else "runs"), f"bench-{label}", out),
        label=label, measure=cfg.measure if cfg else MeasureConfig(),
        env=environment.collect(torch_device)), json_, markdown_)


@dataclass
class _Session:
    """One ``bigbench bench`` invocation, resolved."""

    points: list[Any]
    plan: Any
    device: Any
    isolated: bool
    find_max: bool
    out_dir: Path
    label: str
    measure: Any
    env: dict[str, Any]


def _run(session: _Session, json_: bool, markdown_: bool) -> None:
    from rich.live import Live

    from bigbench.bench.output import console_table
    from bigbench.bench.runner import run_isolated, run_point
    from bigbench.bench.session import run_points, start_run
    from bigbench.interrupt import graceful_stop
    from bigbench.measure.energy.setup import build_monitor

    points, plan, device = session.points, session.plan, session.device
    run = start_run(session.out_dir, points, plan, session.env, session.label, session.isolated)
    energy = None if session.isolated else build_monitor(session.measure, device)
    if energy is not None and hasattr(energy, "start"):
        energy.start()

    def measure_one(point: Any) -> dict[str, Any]:
        if session.isolated:
            return run_isolated(point, plan, str(device), session.measure.model_dump())
        return run_point(point, plan, device, energy, session.env["device"]["name"])

    console = err_console()
    title = (f"bigbench bench — {session.label} on {session.env['device']['name']} "
             f"({len(points)} points)")
    with graceful_stop() as stop:
        try:
            with Live(console_table([], title), console=console, transient=True,
                      refresh_per_second=4) as live:
                status = run_points(run, measure_one, lambda: stop.requested,
                                    lambda _: live.update(console_table(run.results, title)))
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            if energy is not None and hasattr(energy, "stop"):
                energy.stop()
    if session.find_max and status == "completed":
        run.document["max_batch"] = _max_batches(points, plan, str(device), session.measure)
    run.finish(status)
    _print_result(run, title, json_, markdown_)
    if status == "interrupted":
        console.print(f"interrupted: {len(run.results)} of {len(points)} points measured; "
                      f"results kept in {session.out_dir}")
        raise typer.Exit(stop.exit_code or 130)
    failed = [r["id"] for r in run.results if r["status"] == "failed"]
    if failed:
        console.print(f"[red]failed points:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def _print_result(run: Any, title: str, json_: bool, markdown_: bool) -> None:
    """bench.json, a Markdown table or the console table, on stdout."""
    from bigbench.bench.output import console_table, markdown

    if json_:
        print_json(run.document)
    elif markdown_:
        sys.stdout.write(markdown(run.document))
    else:
        out_console().print(console_table(run.results, title))
        out_console().print(f"results: {run.out_dir / 'bench.json'}, "
                            f"{run.out_dir / 'bench.csv'}")


def _max_batches(points: list[Any], plan: Any, device: str, measure_cfg: Any
                 ) -> list[dict[str, Any]]:
    """The largest batch that fits, per model/mode/precision, each trial isolated."""
    from dataclasses import replace

    from bigbench.bench.matrix import Plan
    from bigbench.bench.runner import find_max_batch, run_isolated

    trial_plan = Plan(steps=2, warmup=1, repeats=1)
    found, seen = [], set()
    for point in points:
        key = (point.model, point.mode, point.precision, point.compile, point.channels_last)
        if key in seen:
            continue
        seen.add(key)

        def trial(size: int, point: Any = point) -> str:
            return run_isolated(replace(point, batch_size=size), trial_plan, device,
                                measure_cfg.model_dump())["status"]

        result = find_max_batch(trial, start=point.batch_size)
        found.append({"model": point.model, "mode": point.mode, "precision": point.precision,
                      "compile": point.compile, "channels_last": point.channels_last,
                      **{**result, "tried": {str(k): v for k, v in result["tried"].items()}}})
    return found


@user_errors
def bench_point_worker() -> None:
    """Measure one point described by JSON on stdin; print its result as JSON (for --isolate)."""
    from bigbench import devices
    from bigbench.bench.matrix import Plan, Point
    from bigbench.bench.runner import run_point
    from bigbench.config.schema import MeasureConfig
    from bigbench.errors import ConfigError
    from bigbench.measure.energy.setup import build_monitor

    try:
        request = json.loads(sys.stdin.read())
        point, plan = Point.from_dict(request["point"]), Plan(**request["plan"])
        measure = MeasureConfig(**request["measure"])
        device = devices.resolve(request["device"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"_bench-point: not a point request on stdin ({exc}); this is an "
                          "internal command of bigbench bench --isolate") from None
    energy = build_monitor(measure, device)
    if hasattr(energy, "start"):
        energy.start()
    try:
        result = run_point(point, plan, device, energy, devices.describe(device).name)
    finally:
        if hasattr(energy, "stop"):
            energy.stop()
    sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
