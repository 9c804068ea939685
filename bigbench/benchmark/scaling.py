"""``bigbench bench CONFIG --nproc-per-node 1,2,4``: how a training job scales with its ranks.

At each world size N the CONFIG's training job runs for the bench plan's warm-up + steps, with
the same per-rank batch (``train.batch_size`` or the one ``--batch-sizes`` value), through the
same path as ``bigbench train CONFIG --nproc-per-node N`` (torchrun's launcher above one rank),
each job in its own processes and its own run directory (``<out>/scaling/n<N>``). Its run.json
gives the job's figures: all ranks' samples over the slowest rank's measured window, pooled
step times, and J/sample with every device counted once. From them:

- speed-up = samples/s at N ÷ samples/s of the 1-rank job;
- scaling efficiency = samples/s at N ÷ (N × samples/s of the 1-rank job) = speed-up ÷ N.

bench.json's ``scaling`` section is rewritten after every size, so an interrupted run keeps the
sizes measured so far. A first Ctrl-C or SIGTERM is passed on to the running job (its ranks
stop after the same step and write an ``interrupted`` run.json); a second one ends the job and
every process it started within seconds. Choices that do not fit one training job per size are
refused before anything runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bigbench.config.schema import SCALING_MAX_RANKS
from bigbench.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch

    from bigbench.benchmark.run import BenchRun
    from bigbench.benchmark.session import BenchArgs, Overrides
    from bigbench.config.schema import ExperimentConfig
    from bigbench.records import BenchDocument, Scaling

#: The largest world size measured (also the bound of ``bench.nproc_per_node``).
MAX_RANKS = SCALING_MAX_RANKS

#: Bench choices that mean nothing for one training job per world size.
NOT_FOR_SCALING = ("model_from", "find_max_batch", "power_limits", "sm_clocks", "isolate",
                   "duration_s", "repeats", "seq_lens", "gen_tokens", "energy_min_window")

#: Table headers (console and Markdown).
HEADERS = ["ranks", "global batch", "samples/s", "speed-up", "efficiency", "J/sample",
           "step p50", "all-reduce", "status"]

_NO_BASELINE = "no 1-rank job among the world sizes: add 1 to them"


# --- the choices --------------------------------------------------------------------------------

def _given(args: BenchArgs, field_name: str) -> bool:
    value = getattr(args, field_name)
    return value is True if field_name == "find_max_batch" else value is not None


def check_scaling(args: BenchArgs, flags: Overrides, label: str, name: Callable[[str], str],
                  problems: list[str]) -> None:
    """Add a problem for every choice scaling cannot honour (it measures one setting: the
    CONFIG's training job at one per-rank batch and precision).

    Args:
        label: How the world sizes were asked for (``--nproc-per-node`` or
            ``bench.nproc_per_node``).
        name: How the caller names each choice.
    """
    if not args.has_config:
        problems.append(f"{label} measures how a CONFIG's training job scales: give "
                        f"{name('config')}")
    if args.models is not None:
        problems.append(f"{label} measures one setting, the CONFIG's model: leave out "
                        f"{name('models')}")
    for field_name in ("batch_sizes", "precisions", "modes"):
        values = getattr(flags, field_name) or []
        if len(values) > 1:
            problems.append(f"{label} measures one setting: give one {name(field_name)} value, "
                            f"not {len(values)}")
    if flags.modes and flags.modes != ["train"] and len(flags.modes) == 1:
        problems.append(f"{label} measures training jobs: {name('modes')} can only be train")
    given = [name(f) for f in NOT_FOR_SCALING if _given(args, f)]
    if given:
        verb, them = ("does", "it") if len(given) == 1 else ("do", "them")
        problems.append(f"{label} runs one training job per world size: {', '.join(given)} "
                        f"{verb} not apply; leave {them} out")


def requested_sizes(config: ExperimentConfig | None, flags: Overrides) -> list[int] | None:
    """The world sizes to measure, ascending: the flag's, else the CONFIG's
    ``bench.nproc_per_node``; None: no scaling asked for (the matrix runs)."""
    sizes = flags.nproc_per_node
    if sizes is None and config is not None and config.bench is not None:
        sizes = config.bench.nproc_per_node
    return sorted(set(sizes)) if sizes else None


# --- the session --------------------------------------------------------------------------------

@dataclass
class ScalingSession:
    """A scaling measurement, resolved.

    Attributes:
        job: The config every job trains (steps, batch, precision and device set; one node).
        config_path: Where ``job`` is written (each job reads it).
        sizes: World sizes, ascending.
        device: The device type the ranks use (rank i on cuda:i on CUDA).
        out_dir: The bench folder (bench.json; jobs under scaling/).
        label: The experiment's name.
        env: The environment record of the bench process.
        plan: bench.json's ``plan``.
        physical_cores: This host's physical CPU cores (None: unknown).
    """

    job: ExperimentConfig
    config_path: Path
    sizes: list[int]
    device: torch.device
    out_dir: Path
    label: str
    env: dict[str, Any]
    plan: dict[str, Any]
    physical_cores: int | None

    @property
    def batch_size(self) -> int:
        """Samples per step per rank."""
        return int(self.job.train.batch_size)

    @property
    def warmup_steps(self) -> int:
        """Warm-up steps of each job."""
        return int(self.job.train.warmup_steps)

    @property
    def measured_steps(self) -> int:
        """Measured steps of each job."""
        return int(self.job.train.max_steps or 0) - self.warmup_steps


def physical_cores() -> int | None:
    """This host's physical CPU cores (None when psutil cannot tell)."""
    import psutil

    return psutil.cpu_count(logical=False) or None


def _steps(config: ExperimentConfig, flags: Overrides, label: str,
           name: Callable[[str], str]) -> tuple[int, int]:
    """(warm-up steps, measured steps) of each job: the flags', else the bench: section's,
    else the bench defaults."""
    from bigbench.benchmark.matrix import Plan

    bench, default = config.bench, Plan()
    warmup = flags.warmup if flags.warmup is not None else \
        (bench.warmup if bench is not None else default.warmup)
    if flags.steps is not None:
        return warmup, flags.steps
    if bench is not None and bench.duration_s is not None:
        raise ConfigError(f"bench.duration_s is set, but {label} runs warm-up + a fixed number "
                          f"of steps per world size: give {name('steps')} (or set "
                          "bench.duration_s: null)")
    steps = bench.steps if bench is not None and bench.steps is not None else default.steps
    return warmup, int(steps or 1)


def _job_config(config: ExperimentConfig, flags: Overrides, device_type: str, warmup: int,
                steps: int) -> ExperimentConfig:
    """The config each job trains: the CONFIG's model, data and optimizer, at the per-rank
    batch and precision chosen, for warm-up + steps steps, on one node, without trackers,
    checkpoints or saved weights (it is a measurement)."""
    train: dict[str, Any] = {"max_steps": warmup + steps, "warmup_steps": warmup,
                             "checkpoint_every": None}
    if flags.batch_sizes:
        train["batch_size"] = flags.batch_sizes[0]
    if flags.precisions:
        train["precision"] = flags.precisions[0]
    if flags.compile is not None:
        train["compile"] = flags.compile
    if flags.channels_last is not None:
        train["channels_last"] = flags.channels_last
    distributed = {"nproc_per_node": 1, "nnodes": 1, "node_rank": 0, "rdzv_endpoint": None}
    return config.model_copy(update={
        "train": config.train.model_copy(update=train), "device": device_type,
        "distributed": config.distributed.model_copy(update=distributed),
        "output": config.output.model_copy(update={"save_weights": False, "loggers": []})})


def _check_device(device: torch.device, spec: str, sizes: list[int], label: str,
                  option: str) -> None:
    """On CUDA, rank i trains on cuda:i: a size needs that many GPUs."""
    if device.type != "cuda":
        return
    import torch

    if spec not in ("auto", "cuda", "cuda:0"):
        raise ConfigError(f"{label}: rank i trains on cuda:i (the 1-rank job on cuda:0); "
                          f"give {option} cuda, not {spec}")
    count = torch.cuda.device_count()
    if max(sizes) > count:
        raise DeviceError(f"{label} {max(sizes)}: {max(sizes)} ranks need as many GPUs but "
                          f"this machine has {count}; measure world sizes up to {count}")


def build_scaling(config: ExperimentConfig, args: BenchArgs, flags: Overrides,
                  out: Path | None, names: Mapping[str, str] | None = None) -> ScalingSession:
    """The scaling measurement of ``config`` at the world sizes of ``flags`` (else of its
    ``bench.nproc_per_node``), writing into ``out`` (or a new folder under ``output.dir``).

    Everything is checked before any folder is created or any job starts.

    Raises:
        ConfigError: a choice scaling cannot honour (several batch sizes, --models, …), or a
            ``bench.duration_s`` plan without ``--steps``. DeviceError: the device does not
            exist, or a world size above the GPUs on CUDA. OutputError: the output folder.
    """
    from bigbench import devices
    from bigbench.benchmark.run import bench_environment
    from bigbench.benchmark.session import _namer
    from bigbench.config.render import config_yaml
    from bigbench.results import create_run_dir

    name = _namer(names or {})
    label = name("nproc_per_node") if flags.nproc_per_node else "bench.nproc_per_node"
    sizes = requested_sizes(config, flags)
    if not sizes:
        raise ConfigError(f"{label}: no world sizes to measure")
    problems: list[str] = []
    check_scaling(args, flags, label, name, problems)
    if problems:
        raise ConfigError(*problems)
    warmup, steps = _steps(config, flags, label, name)
    device = devices.resolve(args.device)
    _check_device(device, args.device, sizes, label, name("device"))
    job = _job_config(config, flags, device.type, warmup, steps)
    out_dir = create_run_dir(Path(config.output.dir), f"bench-{config.name}-scaling", out)
    folder = out_dir / "scaling"
    folder.mkdir(exist_ok=True)
    config_path = folder / "config.yaml"
    config_path.write_text(config_yaml(job))
    plan = {"steps": steps, "duration_s": None, "warmup": warmup, "repeats": 1,
            "optimizer": job.train.optimizer.model_dump(mode="json"),
            "energy_min_window": None, "threads": job.train.threads}
    return ScalingSession(job=job, config_path=config_path, sizes=sizes, device=device,
                          out_dir=out_dir, label=config.name,
                          env=bench_environment(device, config.measure), plan=plan,
                          physical_cores=physical_cores())


# --- the figures ----------------------------------------------------------------------------------

def shares_cores(world_size: int, device_type: str, cores: int | None) -> bool:
    """Whether the ranks of a job share CPU cores: CPU ranks on one host, or more ranks than
    the host's physical cores."""
    return (device_type == "cpu" and world_size > 1) or \
        (cores is not None and world_size > cores)


def _missing_meters(energy: Mapping[str, Any]) -> str | None:
    """The meters a job's energy lacks and why, in the same words for one process and for
    several ranks (whose section sentence names hosts); else the section's own sentence."""
    missing = dict.fromkeys(f"{d.get('name') or d.get('kind')}: {d['reason']}"
                            for d in energy.get("devices") or []
                            if not d.get("measured") and d.get("reason"))
    return "; ".join(missing) or energy.get("reason") or None


def _energy_reason(energy: Mapping[str, Any]) -> str:
    """Why a job's J/sample is null."""
    missing = _missing_meters(energy)
    if energy.get("status") == "unavailable" and missing:
        return f"energy not measured: {missing}"
    return (energy.get("reasons") or {}).get("j_per_sample") or missing or \
        "energy not measured"


def job_figures(record: Mapping[str, Any]) -> dict[str, Any]:
    """A finished run.json's job figures: the ``distributed`` section's (several ranks), or
    the single process's ``throughput`` and ``energy``.

    Keys: ``samples``, ``time_s``, ``samples_per_s``, ``step_time_s``, ``global_batch_size``
    (None when run.json does not say), ``communication_share``, ``energy`` (the energy
    section), ``reasons``.
    """
    job = record.get("distributed")
    if job:
        reasons = dict(job.get("reasons") or {})
        if job.get("communication_share") is None:
            reasons.setdefault("communication_share", "not recorded in the job's run.json")
        return {"samples": job.get("samples"), "time_s": job.get("time_s"),
                "samples_per_s": job.get("samples_per_s"), "step_time_s": job.get("step_time_s"),
                "global_batch_size": job.get("global_batch_size"),
                "communication_share": job.get("communication_share"),
                "energy": job.get("energy") or {}, "reasons": reasons}
    throughput = record.get("throughput") or {}
    return {"samples": throughput.get("measured_samples"),
            "time_s": throughput.get("measured_time_s"),
            "samples_per_s": throughput.get("samples_per_s"),
            "step_time_s": throughput.get("step_time_s"),
            "global_batch_size": ((record.get("config") or {}).get("train") or {})
            .get("batch_size"),
            "communication_share": None,
            "energy": record.get("energy") or {},
            "reasons": {**{k: v for k, v in (throughput.get("reasons") or {}).items()
                           if k == "samples_per_s"},
                        "communication_share": "one rank: no gradient all-reduce"}}


_FIGURES = ("samples", "time_s", "samples_per_s", "step_time_s", "communication_share",
            "energy_status", "j_per_sample", "j_per_sample_uncertainty", "energy_quality")
_ENERGY_MARKS = ("low", "invalid")


def size_entry(world_size: int, batch_size: int, record: Mapping[str, Any] | None, *,
               status: str, error: str | None = None, run_dir: Path | str = "",
               log: Path | str | None = None, wall_s: float = 0.0, shares: bool = False
               ) -> dict[str, Any]:
    """bench.json's entry of one world size (speed-up and efficiency: :func:`add_ratios`).

    Args:
        record: The job's run.json (None: none was written).
        status: ok, failed or interrupted; figures are given only for ok.
    """
    entry: dict[str, Any] = {
        "world_size": world_size, "global_batch_size": batch_size * world_size,
        "status": status, "run_dir": str(run_dir), "log": str(log) if log else None,
        "error": error, **dict.fromkeys(_FIGURES), "energy_reason": None, "speedup": None,
        "efficiency": None,
        "torch_threads": None, "shares_cores": shares, "wall_s": wall_s, "reasons": {}}
    env = (record or {}).get("env") or {}
    if isinstance(env.get("torch_threads"), int):
        entry["torch_threads"] = env["torch_threads"]
    if status != "ok" or record is None:
        why = f"the job {status}" + (f": {error}" if error else "")
        entry["reasons"] = {k: why for k in (*_FIGURES, "speedup", "efficiency")}
        return entry
    figures = job_figures(record)
    energy = figures["energy"]
    entry.update(samples=figures["samples"], time_s=figures["time_s"],
                 samples_per_s=figures["samples_per_s"], step_time_s=figures["step_time_s"],
                 communication_share=figures["communication_share"],
                 energy_status=energy.get("status"), j_per_sample=energy.get("j_per_sample"),
                 j_per_sample_uncertainty=energy.get("j_per_sample_uncertainty"),
                 energy_quality=energy.get("quality"),
                 energy_reason=_missing_meters(energy) if energy.get("status") != "measured"
                 else None)
    if figures["global_batch_size"] is not None:
        entry["global_batch_size"] = figures["global_batch_size"]
    reasons = dict(figures["reasons"])
    if entry["j_per_sample"] is None:
        reasons["j_per_sample"] = _energy_reason(energy)
    if entry["j_per_sample_uncertainty"] is None:
        reasons["j_per_sample_uncertainty"] = (energy.get("reasons") or {}).get(
            "j_per_sample_uncertainty") or reasons.get("j_per_sample") or \
            "no error bound for the job's energy"
    if entry["energy_quality"] is None:
        reasons["energy_quality"] = reasons.get("j_per_sample") or "no device was measured"
    if entry["samples_per_s"] is None:
        reasons.setdefault("samples_per_s", "the job's measured window has no duration")
    entry["reasons"] = reasons
    return entry


def add_ratios(sizes: Sequence[dict[str, Any]]) -> None:
    """Set every entry's ``speedup`` (samples/s ÷ the 1-rank job's) and ``efficiency``
    (samples/s ÷ (world size × the 1-rank job's)), or null them with the reason."""
    base = next((s for s in sizes if s["world_size"] == 1), None)
    base_rate = base.get("samples_per_s") if base is not None and base["status"] == "ok" \
        else None
    for entry in sizes:
        reasons = entry.setdefault("reasons", {})
        rate = entry.get("samples_per_s")
        if entry["status"] != "ok":
            why = reasons.get("speedup") or f"the job {entry['status']}"
        elif rate is None:
            why = "this job's throughput was not measured"
        elif base is None:
            why = _NO_BASELINE
        elif base_rate is None or base_rate <= 0:
            why = "the 1-rank job's throughput was not measured"
        else:
            entry["speedup"] = rate / base_rate
            entry["efficiency"] = rate / (entry["world_size"] * base_rate)
            reasons.pop("speedup", None)
            reasons.pop("efficiency", None)
            continue
        entry["speedup"] = entry["efficiency"] = None
        reasons["speedup"] = reasons["efficiency"] = why


def scaling_notes(device_type: str, sizes: Sequence[Mapping[str, Any]],
                  cores: int | None) -> list[str]:
    """Notes on reading the figures: ranks sharing this host's cores, a missing 1-rank job."""
    notes = []
    shared = [s for s in sizes if s.get("shares_cores")]
    if shared:
        most = max(s["world_size"] for s in shared)
        threads = next((s["torch_threads"] for s in shared if s.get("torch_threads")), None)
        on = f"{cores} physical cores" if cores else "its cores"
        per_rank = f" with {threads} torch threads each" if threads else ""
        if device_type == "cpu":
            notes.append(f"ranks share this host's cores: up to {most} CPU ranks{per_rank} on "
                         f"{on}, so more ranks divide the same cores; these figures show that "
                         "contention, not how training scales on more devices")
        else:
            notes.append(f"ranks share this host's cores: up to {most} ranks on {on}, so the "
                         "ranks' CPU work (data, kernel launches) competes for them")
    if sizes and not any(s["world_size"] == 1 for s in sizes):
        notes.append(f"speed-up and efficiency are null: {_NO_BASELINE}")
    return notes


# --- running ------------------------------------------------------------------------------------

def _read_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _last_line(log: Path) -> str | None:
    """The last informative line of a job's stderr (its error, usually)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return None
    lines = [line for line in lines if line and not line.startswith(("figures:", "the job "))]
    failed = [line for line in lines if "failed:" in line or "error" in line.lower()]
    return ((failed or lines or [None])[-1] or "")[:500] or None


def _outcome(record: dict[str, Any] | None, returncode: int, stopped: bool, log: Path
             ) -> tuple[str, str | None]:
    """(status, error) of a finished job."""
    state = (record or {}).get("status")
    if state == "interrupted" or (stopped and state != "completed"):
        return "interrupted", None
    if record is not None and state == "completed" and returncode == 0:
        return "ok", None
    error = (record or {}).get("error") or {}
    failures = (record or {}).get("rank_failures") or []
    text = error.get("message") if isinstance(error, dict) else None
    if failures:
        text = "; ".join(f"rank {f.get('rank')}: {f.get('error')}" for f in failures)
    return "failed", (text or _last_line(log) or f"exit code {returncode}")[:500]


def _alive(procs: list[Any], timeout_s: float) -> list[Any]:
    """Those of ``procs`` (psutil processes) still running after up to ``timeout_s``. A zombie
    counts as ended: an orphan waits for init to reap it, and in a container that may never
    happen."""
    import psutil

    def running(proc: Any) -> bool:
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    deadline = time.monotonic() + timeout_s
    procs = [p for p in procs if running(p)]
    while procs and time.monotonic() < deadline:
        time.sleep(0.05)
        procs = [p for p in procs if running(p)]
    return procs


def _kill(child: subprocess.Popen[bytes], grace_s: float = 3.0) -> None:
    """End the job and every process it started: SIGTERM to all, SIGKILL to what is left
    after ``grace_s``.

    torchelastic's workers start sessions of their own, so the job's process group does not
    hold them: the whole process tree is collected, before anything is signalled (a worker
    whose parent died first is out of the tree's reach).
    """
    import psutil

    try:
        tree = psutil.Process(child.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    child.terminate()
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + grace_s
    alive = _alive(tree, grace_s)
    try:
        child.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.kill()
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _alive(alive, grace_s)
    # Last, whatever is still in the job's own process group (started after the snapshot).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def run_size(session: ScalingSession, world_size: int,
             should_stop: Callable[[], bool] = lambda: False, poll_s: float = 0.1
             ) -> dict[str, Any]:
    """Run the training job of ``world_size`` ranks and return its bench.json entry.

    The job runs in its own process group: a stop (``should_stop()``) is passed to it as one
    SIGINT (its ranks stop after the same step); a KeyboardInterrupt here (a second signal)
    ends its whole process tree (:func:`_kill`) and is raised again.
    """
    folder = session.out_dir / "scaling"
    run_dir, log = folder / f"n{world_size}", folder / f"n{world_size}.log"
    command = [sys.executable, "-m", "bigbench", "train", str(session.config_path),
               "--nproc-per-node", str(world_size), "--out", str(run_dir), "--json"]
    started, stopped = time.perf_counter(), False
    with log.open("w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                 start_new_session=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            while True:
                try:
                    child.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    if should_stop() and not stopped:
                        child.send_signal(signal.SIGINT)
                        stopped = True
        except BaseException:
            _kill(child)
            raise
    wall_s = time.perf_counter() - started
    record = _read_record(run_dir)
    status, error = _outcome(record, child.returncode, stopped or should_stop(), log)
    return size_entry(world_size, session.batch_size, record, status=status, error=error,
                      run_dir=run_dir, log=log, wall_s=wall_s,
                      shares=shares_cores(world_size, session.device.type,
                                          session.physical_cores))


def start_document(session: ScalingSession) -> dict[str, Any]:
    """bench.json of a scaling run before its first job (status running)."""
    from bigbench.records import BENCH_SCHEMA

    return {
        "schema": BENCH_SCHEMA, "status": "running", "label": session.label,
        "started_at": datetime.now(timezone.utc).isoformat(), "finished_at": None,
        "env": session.env, "plan": dict(session.plan), "isolated": True, "matrix": [],
        "points": [],
        "scaling": {
            "config": str(session.config_path), "device": session.device.type,
            "batch_size": session.batch_size, "precision": session.job.train.precision,
            "warmup_steps": session.warmup_steps, "measured_steps": session.measured_steps,
            "world_sizes": list(session.sizes), "physical_cores": session.physical_cores,
            "notes": [], "sizes": []},
    }


def run_scaling(session: ScalingSession, should_stop: Callable[[], bool] = lambda: False,
                on_size: Callable[[BenchRun], None] = lambda run: None,
                run_job: Callable[..., dict[str, Any]] = run_size) -> BenchRun:
    """Measure every world size in turn (ascending), rewriting bench.json after each.

    The document's status is "completed", or "interrupted" when ``should_stop()`` turned true
    or a second signal arrived (the sizes measured so far are kept).

    Args:
        on_size: Called after each size with the run (its ``document["scaling"]`` updated).
        run_job: How one size is measured (``run_size``; tests inject one).
    """
    from bigbench.benchmark.output import write_outputs
    from bigbench.benchmark.run import BenchRun

    run = BenchRun(session.out_dir, start_document(session))
    scaling = run.document["scaling"]
    write_outputs(session.out_dir, run.document)
    status = "completed"
    try:
        for size in session.sizes:
            if should_stop():
                status = "interrupted"
                break
            entry = run_job(session, size, should_stop)
            scaling["sizes"].append(entry)
            add_ratios(scaling["sizes"])
            scaling["notes"] = scaling_notes(session.device.type, scaling["sizes"],
                                             session.physical_cores)
            write_outputs(session.out_dir, run.document)
            on_size(run)
            if entry["status"] == "interrupted":
                status = "interrupted"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    if should_stop():
        status = "interrupted"
    run.finish(status)
    return run


def failed_sizes(document: Mapping[str, Any] | BenchDocument) -> list[str]:
    """``scaling/n<N>`` of every world size whose job failed."""
    scaling = document.get("scaling") if isinstance(document, Mapping) else document.scaling
    if scaling is None:
        return []
    sizes = scaling["sizes"] if isinstance(scaling, Mapping) else \
        [s.model_dump() for s in scaling.sizes]
    return [f"scaling/n{s['world_size']}" for s in sizes if s["status"] == "failed"]


# --- tables ----------------------------------------------------------------------------------

def _typed(scaling: Scaling | Mapping[str, Any]) -> Scaling:
    from bigbench.records import Scaling

    return scaling if isinstance(scaling, Scaling) else Scaling.model_validate(dict(scaling))


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def rows(scaling: Scaling | Mapping[str, Any]) -> list[list[str]]:
    """One row of cells per world size (see :data:`HEADERS`; "n/a": see :func:`footnotes`)."""
    typed = _typed(scaling)
    out = []
    for s in typed.sizes:
        p50 = s.step_time_s.p50 if s.step_time_s is not None else None
        j = s.j_per_sample
        energy = "n/a" if j is None else f"{j * 1000:.3f} mJ" if j < 1 else f"{j:,.3f} J"
        marks = [m for m in (s.energy_quality if s.energy_quality in _ENERGY_MARKS else None,
                             "partial" if s.energy_status == "partial" else None) if m]
        if energy != "n/a" and marks:
            energy += f" ({', '.join(marks)})"
        out.append([
            str(s.world_size), str(s.global_batch_size), _rate(s.samples_per_s),
            "n/a" if s.speedup is None else f"{s.speedup:.2f}×",
            "n/a" if s.efficiency is None else f"{s.efficiency:.0%}",
            energy, "n/a" if p50 is None else f"{p50 * 1000:.2f} ms",
            "—" if s.world_size == 1 else "n/a" if s.communication_share is None
            else f"{s.communication_share:.0%}",
            s.status + (" *" if s.shares_cores else "")])
    return out


def footnotes(scaling: Scaling | Mapping[str, Any]) -> list[str]:
    """The notes, why n/a cells are empty (each reason once) and each failed job's error."""
    typed = _typed(scaling)
    notes: dict[str, None] = {}
    if any(s.shares_cores for s in typed.sizes):
        notes["*: the job's ranks share CPU cores"] = None
    for note in typed.notes:
        notes[note] = None
    for s in typed.sizes:
        if s.status == "ok" and s.j_per_sample is None:
            notes[f"J/sample n/a: {s.reasons.get('j_per_sample', 'not measured')}"] = None
        elif s.status == "ok" and s.energy_status == "partial":
            notes[f"J/sample (partial) leaves out {s.energy_reason or 'some meters'}"] = None
        if s.status == "ok" and s.world_size > 1 and s.communication_share is None:
            notes["all-reduce n/a: " + s.reasons.get("communication_share", "not measured")] = \
                None
        if s.status == "ok" and s.speedup is None and \
                s.reasons.get("speedup") != _NO_BASELINE:
            notes[f"speed-up n/a: {s.reasons.get('speedup', 'not measured')}"] = None
        if s.status != "ok":
            notes[f"{s.world_size} ranks {s.status}"
                  + (f": {s.error}" if s.error else f" (see {s.run_dir})")] = None
    notes["efficiency = samples/s ÷ (ranks × samples/s of 1 rank); samples/s = all ranks' "
          "samples ÷ the slowest rank's measured window"] = None
    if any(s.world_size > 1 and s.communication_share is not None for s in typed.sizes):
        notes["all-reduce: share of the step time with a gradient all-reduce in flight (it "
              "overlaps the backward pass)"] = None
    return list(notes)


def _caption(document: BenchDocument) -> str:
    scaling = document.scaling
    assert scaling is not None
    return (f"{document.label} on {document.env.device.name}: batch {scaling.batch_size} per "
            f"rank, {scaling.precision}, {scaling.warmup_steps} warm-up + "
            f"{scaling.measured_steps} measured steps per job")


def markdown(document: BenchDocument | Mapping[str, Any]) -> str:
    """The scaling table in Markdown (with its notes)."""
    from bigbench.records import BenchDocument

    doc = document if isinstance(document, BenchDocument) else \
        BenchDocument.model_validate(dict(document))
    assert doc.scaling is not None
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for cells in rows(doc.scaling):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", _caption(doc) + "."]
    lines += [f"- {note}" for note in footnotes(doc.scaling)]
    return "\n".join(lines) + "\n"


def console_table(document: BenchDocument | Mapping[str, Any], title: str) -> Any:
    """A rich table of the world sizes measured so far."""
    from rich.markup import escape
    from rich.table import Table

    from bigbench.records import BenchDocument

    doc = document if isinstance(document, BenchDocument) else \
        BenchDocument.model_validate(dict(document))
    assert doc.scaling is not None
    table = Table(title=title, caption=escape("\n".join([_caption(doc),
                                                         *footnotes(doc.scaling)])),
                  caption_justify="left")
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "status" else "right")
    for cells in rows(doc.scaling):
        table.add_row(*(escape(cell) for cell in cells))
    return table


__all__ = ["HEADERS", "MAX_RANKS", "NOT_FOR_SCALING", "ScalingSession", "add_ratios",
           "build_scaling", "check_scaling", "console_table", "failed_sizes", "footnotes",
           "job_figures", "markdown", "physical_cores", "requested_sizes", "rows", "run_scaling",
           "run_size", "scaling_notes", "shares_cores", "size_entry", "start_document"]
