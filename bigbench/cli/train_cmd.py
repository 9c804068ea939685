"""``bigbench train``."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from bigbench.cli.common import err_console, out_console, print_json, user_errors
from bigbench.cli.completion import complete_device
from bigbench.cli.config_cmd import SET_OPTION


@user_errors
def train(
    config: Path | None = typer.Argument(None, help="Experiment config (YAML); optional with "
                                         "--resume.", show_default=False),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu, cuda or cuda:N (overrides the config's device).",
        autocompletion=complete_device),
    set_: list[str] = SET_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="Use this (new or empty) directory as the run directory instead of "
        "output.dir/<UTC time>-<name>."),
    seed: int | None = typer.Option(None, "--seed", help="Override train.seed."),
    log_to: str | None = typer.Option(
        None, "--log-to", metavar="LOGGERS", help="Experiment trackers, comma-separated: "
        "tensorboard, mlflow, csv (overrides output.loggers; each tracker's package is an "
        "extra, e.g. pip install 'bigbench\\[mlflow]')."),
    json_: bool = typer.Option(False, "--json", help="Print run.json to stdout instead of the "
                               "summary table."),
    resume: Path | None = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="Continue an interrupted run from its last "
        "checkpoint, to its configured end."),
    force: bool = typer.Option(False, "--force", help="With --resume: accept a config that "
                               "differs from the run's."),
    nproc_per_node: int | None = typer.Option(
        None, "--nproc-per-node", min=1, help="Ranks on this node: above 1 the job starts "
        "through torchrun's launcher, one process per rank (distributed.nproc_per_node)."),
    nnodes: int | None = typer.Option(None, "--nnodes", min=1,
                                      help="Nodes in the job (distributed.nnodes)."),
    node_rank: int | None = typer.Option(None, "--node-rank", min=0,
                                         help="This node's rank (distributed.node_rank)."),
    rdzv_endpoint: str | None = typer.Option(
        None, "--rdzv-endpoint", metavar="HOST:PORT", help="Where the nodes meet "
        "(distributed.rdzv_endpoint; default: this host, a free port)."),
) -> None:
    """Train a model from a YAML config and report what the run cost.

    Writes a run directory with config.yaml, run.json, metrics.jsonl and model.safetensors.
    Ctrl-C (or SIGTERM) stops after the current step, saves a checkpoint and writes run.json
    with status "interrupted" (exit 130 / 143); --resume RUN_DIR continues from it.

    Examples:

      bigbench train configs/cnn.yaml
      bigbench train configs/rnn.yaml --device cpu --set train.epochs=1 --json
      bigbench train --resume runs/20261129T143012Z-cnn-digits
      bigbench train configs/cnn.yaml --device cpu --nproc-per-node 2
      torchrun --nproc-per-node 4 -m bigbench train configs/cnn.yaml --device cuda
    """
    from bigbench.results import check_out_dir
    from bigbench.train_setup import resolve_training, shorthand_overrides

    sets = shorthand_overrides(set_, device, seed, log_to) + _distributed_overrides(
        nproc_per_node, nnodes, node_rank, rdzv_endpoint)
    cfg, resume_info = resolve_training(config, sets, resume=resume, force=force, out=out)
    if out is not None and resume is None:
        check_out_dir(out)  # fail before any expensive work
    from bigbench.distributed.env import rank_from_env

    rank, launcher = rank_from_env()
    if rank.world_size == 1 and cfg.distributed.world_size > 1:
        _launch(cfg, out, resume, json_)
    if rank.world_size > 1 and cfg.distributed.world_size not in (1, rank.world_size):
        from bigbench.errors import ConfigError

        raise ConfigError(f"{launcher} started this process as rank {rank.rank} of "
                          f"{rank.world_size}, but the config asks for "
                          f"{cfg.distributed.world_size} ranks (nproc_per_node × nnodes): "
                          f"under {launcher} the launcher sets the ranks; drop "
                          "--nproc-per-node / --nnodes")

    result = _train_here(cfg, rank, out, resume_info)
    if rank.writes:  # the other ranks stay quiet unless they fail
        _report(result, json_)
    raise typer.Exit(result.exit_code)


def _train_here(cfg: Any, rank: Any, out: Path | None, resume_info: Any) -> Any:
    """Train in this process (a single process, or one rank of a job) with a progress bar on
    rank 0; a second Ctrl-C stops at once (exit 130)."""
    from bigbench.cli.progress import TrainProgress
    from bigbench.distributed.group import process_group
    from bigbench.interrupt import graceful_stop
    from bigbench.trainer import run_training

    console = err_console()
    with graceful_stop() as stop, _job(cfg, rank) as (backend, timeout_s, device):
        try:
            with process_group(rank, backend, timeout_s, device), \
                    TrainProgress(console, f"train {cfg.name}", enabled=rank.writes) as progress:
                return run_training(cfg, out=out, stop=stop, callbacks=progress.callbacks(),
                                    resume=resume_info, rank=rank)
        except Exception as exc:
            if rank.world_size > 1:  # the launcher reports which rank failed, and why
                from bigbench.distributed.launch import record_rank_error

                record_rank_error(exc)
            raise
        except KeyboardInterrupt:
            console.print("interrupted twice: stopped at once; files on disk are complete")
            raise typer.Exit(130) from None


def _report(result: Any, json_: bool) -> None:
    """Warnings, then run.json or the summary table, how the run ended and the report
    command."""
    from pydantic import ValidationError

    from bigbench.cli.summary import print_summary

    console = err_console()
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    try:
        if json_:
            print_json(result.record)
        else:
            print_summary(out_console(), result.record)
    except ValidationError:  # already warned about above; the files are written
        console.print(f"no summary table: run.json does not match its schema; see "
                      f"{result.run_dir}/run.json")
    if result.record["status"] != "completed":
        console.print(f"run {result.record['status']}: {result.record.get('stop_detail') or ''}"
                      f" — results in {result.run_dir}")
    if result.run_dir is not None:
        console.print(f"figures: bigbench report {shlex.quote(str(result.run_dir))}",
                      soft_wrap=True, highlight=False, markup=False)


def _distributed_overrides(nproc_per_node: int | None, nnodes: int | None,
                           node_rank: int | None, endpoint: str | None) -> list[str]:
    """The distributed options as config overrides (distributed.*)."""
    given = {"nproc_per_node": nproc_per_node, "nnodes": nnodes, "node_rank": node_rank,
             "rdzv_endpoint": json.dumps(endpoint) if endpoint is not None else None}
    return [f"distributed.{key}={value}" for key, value in given.items() if value is not None]


@contextlib.contextmanager
def _job(cfg: Any, rank: Any) -> Iterator[tuple[str, float, Any]]:
    """This rank's backend, collective timeout and device (a single process: unused)."""
    from bigbench import devices
    from bigbench.distributed.env import rank_from_env, slurm_rendezvous
    from bigbench.distributed.group import backend_for
    from bigbench.workload.build import rank_device

    device = rank_device(devices.resolve(cfg.device), rank)
    if rank.world_size > 1 and rank_from_env()[1] == "slurm":
        os.environ.update(slurm_rendezvous())
    backend = backend_for(cfg.distributed.backend, device.type) if rank.world_size > 1 \
        else "none"
    yield backend, cfg.distributed.timeout_s, device


def _launch(cfg: Any, out: Path | None, resume: Path | None, json_: bool) -> None:
    """Start the job's ranks through torchrun's launcher, wait, and report how it ended."""
    from bigbench import devices
    from bigbench.distributed.launch import check_launch, launch, record_failures
    from bigbench.results import create_run_dir

    console = err_console()
    device_type = devices.resolve(cfg.device).type
    backend = cfg.distributed.backend
    if backend != "auto" or device_type == "cuda":
        from bigbench.distributed.group import backend_for

        backend_for(backend, device_type)
    from bigbench.rank import Rank
    from bigbench.workload.build import check_distributed

    check_distributed(cfg, Rank(world_size=cfg.distributed.world_size))  # before any rank
    endpoint = check_launch(cfg, device_type)
    if resume is not None:
        _check_resumed_world(resume, cfg.distributed.world_size)
    if resume is not None:
        run_dir = resume
    elif cfg.distributed.node_rank > 0:  # rank 0, on node 0, writes the run
        run_dir = out or Path(cfg.output.dir) / f"{cfg.name}-node{cfg.distributed.node_rank}"
    else:
        run_dir = create_run_dir(Path(cfg.output.dir), cfg.name, out)
    console.print(f"launching {cfg.distributed.world_size} ranks "
                  f"({cfg.distributed.nproc_per_node} on this node) into {run_dir}",
                  highlight=False, markup=False)
    job = launch(cfg, run_dir, endpoint, resume=resume is not None, json_output=json_)
    from rich.markup import escape

    for rank, text in sorted(job.failures.items()):  # errors quote paths in [brackets]
        console.print(f"[red]rank {rank} failed:[/] {escape(text)}", soft_wrap=True)
    if job.failures:
        record_failures(run_dir, job.failures)
        if resume is None and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # nothing was written: leave no empty run behind
            console.print("the job failed before writing anything")
        else:
            console.print(f"the job failed; what was written is in {run_dir}")
    raise typer.Exit(job.exit_code)


def _check_resumed_world(run_dir: Path, world_size: int) -> None:
    """Refuse, before any rank starts, to resume a run on another number of ranks."""
    import torch

    from bigbench.checkpoint import find_checkpoint
    from bigbench.resume import ResumeError

    folder = find_checkpoint(run_dir)
    if folder is None:
        return  # resolve_training already said what is wrong with the run
    try:
        saved = int(torch.load(folder / "state.pt", map_location="cpu",
                               weights_only=True).get("world_size", 1))
    except Exception:  # unreadable: the ranks' own load reports it
        return
    if saved != world_size:
        raise ResumeError(f"{run_dir}: it was trained by {saved} rank(s) and would resume on "
                          f"{world_size}; each rank's data shard and position depend on the "
                          f"world size, so resume with --nproc-per-node {saved} (times the "
                          "nodes it had)")
