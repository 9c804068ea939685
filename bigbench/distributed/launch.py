"""Start a distributed job from ``bigbench train --nproc-per-node N``: torchrun's launcher.

The launcher (``torch.distributed.launcher.api.elastic_launch``, the engine behind torchrun)
starts N worker processes on this node, each ``python -m bigbench train`` with RANK,
WORLD_SIZE and LOCAL_RANK set; it watches them, and when one fails it stops the others and
raises, so a failed rank ends the job instead of hanging it. bigbench only checks what it can
before anything starts (devices, the rendezvous port), creates the run directory (rank 0
writes into it) and reports the failed rank's error.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bigbench.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    from bigbench.config.schema import ExperimentConfig


@dataclass
class JobResult:
    """How a launched job ended: its run directory, exit code and the failed ranks' errors."""

    run_dir: Path
    exit_code: int
    failures: dict[int, str]


def free_port() -> int:
    """A TCP port free on this host right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host if host not in ("localhost",) else "127.0.0.1", port))
        except OSError:
            return True
    return False


def _reachable(host: str, port: int, timeout_s: float) -> bool:
    """Whether something answers at host:port within ``timeout_s`` (node 0 may start later:
    a refused connection is retried until the deadline)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout_s)):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)


def check_launch(config: ExperimentConfig, device_type: str) -> str:
    """Everything that can be checked before any process starts; returns the endpoint.

    Raises:
        DeviceError: more ranks on this node than GPUs. ConfigError: the rendezvous port is
            taken (node 0) or unreachable (other nodes).
    """
    dist = config.distributed
    if device_type == "cuda":
        import torch

        count = torch.cuda.device_count()
        if dist.nproc_per_node > count:
            raise DeviceError(f"--nproc-per-node {dist.nproc_per_node} needs as many GPUs but "
                              f"this node has {count}; use --nproc-per-node {count} or fewer")
    if dist.rdzv_endpoint is None:
        return f"127.0.0.1:{free_port()}"
    host, _, port = dist.rdzv_endpoint.rpartition(":")
    host = host.strip("[]")
    if dist.node_rank == 0 and _port_in_use(host if _is_local(host) else "0.0.0.0", int(port)):
        raise ConfigError(f"--rdzv-endpoint {dist.rdzv_endpoint}: port {port} is already in use "
                          "on this node; choose another port")
    if dist.node_rank > 0 and not _reachable(host, int(port), timeout_s=30.0):
        raise ConfigError(f"--rdzv-endpoint {dist.rdzv_endpoint}: nothing answers there after "
                          "30 s; start node 0 first and check the address and firewall")
    return dist.rdzv_endpoint


def _is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", socket.gethostname())


def launch(config: ExperimentConfig, run_dir: Path, endpoint: str,
           resume: bool = False, json_output: bool = False) -> JobResult:
    """Run the job's ranks on this node and wait for them; rank 0 writes into ``run_dir``
    and prints the summary (or run.json).

    The workers read the resolved config from a file (every override applied once, here),
    or continue ``run_dir`` with ``resume``.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from bigbench.config.render import config_yaml

    dist = config.distributed
    config = _cpu_threads_per_rank(config)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="bigbench-job-",
                                     delete=False) as handle:
        handle.write(config_yaml(config))
    args = ["-u", "-m", "bigbench", "train", handle.name]
    # The resolved config (every override applied) goes with a resume too.
    args += ["--resume", str(run_dir), "--force"] if resume else ["--out", str(run_dir)]
    if json_output:  # rank 0 prints run.json instead of the summary
        args.append("--json")
    launch_config = LaunchConfig(
        min_nodes=dist.nnodes, max_nodes=dist.nnodes, nproc_per_node=dist.nproc_per_node,
        # Every node's launcher must name the same run: derived from the shared endpoint.
        run_id="bigbench-" + "".join(c if c.isalnum() else "-" for c in endpoint),
        rdzv_backend="static", rdzv_endpoint=endpoint,
        rdzv_configs={"rank": dist.node_rank, "timeout": int(dist.timeout_s)},
        max_restarts=0, monitor_interval=0.1, start_method="spawn",
        # A stopping rank finishes its step, checkpoint and run.json before it is killed.
        shutdown_timeout=int(dist.timeout_s) + 30)
    try:
        elastic_launch(launch_config, sys.executable)(*args)
        return JobResult(run_dir, 0, {})
    except ChildFailedError as exc:
        failures = {rank: _failure_text(failure) for rank, failure in exc.failures.items()}
        return JobResult(run_dir, _exit_code(exc), failures)
    except SignalException as exc:  # Ctrl-C / SIGTERM: the launcher passed it to every rank,
        # which stop together after the same step, checkpoint and write run.json.
        return JobResult(run_dir, 128 + int(exc.sigval), {})
    finally:
        Path(handle.name).unlink(missing_ok=True)


def _cpu_threads_per_rank(config: ExperimentConfig) -> ExperimentConfig:
    """On a CPU, ranks share this node's cores: unless train.threads says otherwise, each rank
    gets its share (physical cores ÷ ranks, at least 1) instead of torch's default of all of
    them, which would run ranks × cores threads on the cores and measure the contention."""
    from bigbench import devices

    if config.train.threads is not None or devices.resolve(config.device).type != "cpu":
        return config
    import psutil

    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    share = max(1, cores // config.distributed.nproc_per_node)
    return config.model_copy(update={"train": config.train.model_copy(
        update={"threads": share})})


def _failure_text(failure: object) -> str:
    """A failed rank's error: its message, or its exit code and signal."""
    message = getattr(failure, "message", None)
    while isinstance(message, dict):  # torchelastic's error file nests {"message": {...}}
        message = message.get("message") or json.dumps(message)[:500]
    exitcode = getattr(failure, "exitcode", None)
    signal_name = getattr(failure, "signal_name", lambda: None)()
    text = str(message or "").strip()
    if not text or text.startswith("To enable traceback"):
        return f"exit code {exitcode}" + (f" ({signal_name})" if signal_name else "")
    return text.splitlines()[0][:500]  # the error's own line, not a traceback's tail


def _exit_code(exc: BaseException) -> int:
    """The job's exit code: the first failed rank's (130/143 for a stop), else 1."""
    for failure in getattr(exc, "failures", {}).values():
        code = getattr(failure, "exitcode", None)
        if isinstance(code, int) and code > 0:
            return code
    return 1


def record_failures(run_dir: Path, failures: dict[int, str]) -> None:
    """Add the failed ranks' errors to run.json (when rank 0 wrote one)."""
    from bigbench.results import write_json

    path = run_dir / "run.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    record["rank_failures"] = [{"rank": rank, "error": text}
                               for rank, text in sorted(failures.items())]
    if record.get("status") == "completed":
        record["status"] = "failed"
    write_json(path, record)


def record_rank_error(exc: BaseException) -> None:
    """Write this rank's error where its launcher reads it (TORCHELASTIC_ERROR_FILE), so the
    launcher can say which rank failed and why."""
    from torch.distributed.elastic.multiprocessing.errors import get_error_handler

    handler = get_error_handler()
    handler.initialize()
    handler.record_exception(exc)
