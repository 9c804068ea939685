"""Where this process stands in a job, read from the environment its launcher set.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR / MASTER_PORT); ``srun`` sets
SLURM_PROCID, SLURM_STEP_NUM_TASKS (and SLURM_NTASKS) and SLURM_LOCALID in each task of a job
step. A process with neither is a single process: an ``sbatch`` batch script sets SLURM_PROCID
and SLURM_NTASKS too, but it is one process, not rank 0 of the job's tasks.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping

from bigbench.errors import ConfigError
from bigbench.rank import SINGLE, Rank

#: (rank, world size, local rank) variables of torchrun.
TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

#: SLURM numbers the job steps ``srun`` starts from 0; ids from 0xfffffff0 up
#: (SLURM_MAX_NORMAL_STEP_ID) are its special steps: the batch script (0xfffffffe before Slurm
#: 20.11, 0xfffffffb since), the extern container (0xffffffff, 0xfffffffc), the pending and the
#: interactive step.
SLURM_MAX_NORMAL_STEP_ID = 0xFFFFFFF0


def slurm_step(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a task of a job step started by ``srun``: SLURM_STEP_ID is a
    normal step's number. Unset (a batch script of an older Slurm), ``batch``, ``extern``,
    ``interactive`` or a special step's number (a batch script, the extern container) is not.
    """
    env = os.environ if environ is None else environ
    step = env.get("SLURM_STEP_ID", "").strip()
    return step.isdigit() and int(step) < SLURM_MAX_NORMAL_STEP_ID


def _rank(launcher: str, env: Mapping[str, str], names: tuple[str, str, str]
          ) -> tuple[Rank, str | None]:
    try:
        rank, world, local = (int(env[name]) for name in names)
    except ValueError:
        raise ConfigError(f"{launcher}: {', '.join(names)} must be whole numbers, got "
                          + ", ".join(f"{n}={env[n]!r}" for n in names)) from None
    if not (world >= 1 and 0 <= rank < world and local >= 0):
        raise ConfigError(f"{launcher}: rank {rank} of world size {world} (local rank "
                          f"{local}) is not a place in a job")
    if world == 1:
        return SINGLE, None
    return Rank(rank=rank, world_size=world, local_rank=local), launcher


def rank_from_env(environ: Mapping[str, str] | None = None) -> tuple[Rank, str | None]:
    """This process's rank and the launcher that set it (None: a single process).

    torchrun's variables win (torchrun started by ``srun`` sees both). SLURM's count only in a
    task of an ``srun`` job step (:func:`slurm_step`), with the step's size
    (SLURM_STEP_NUM_TASKS, else SLURM_NTASKS), SLURM_PROCID and SLURM_LOCALID.

    Raises:
        ConfigError: the variables are present but inconsistent (a rank outside the world).
    """
    env = os.environ if environ is None else environ
    if all(name in env for name in TORCHRUN):
        return _rank("torchrun", env, TORCHRUN)
    if slurm_step(env):
        world = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS"
        names = ("SLURM_PROCID", world, "SLURM_LOCALID")
        if all(name in env for name in names):
            return _rank("slurm", env, names)
    return SINGLE, None


def _count(value: str | None) -> int | None:
    """A positive whole number, else None."""
    value = (value or "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _per_node(value: str | None) -> list[int] | None:
    """SLURM's tasks per node, one entry per node: ``2(x3),1`` is [2, 2, 2, 1]; None when it
    is not in that form."""
    counts: list[int] = []
    for part in (value or "").split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:\(x(\d+)\))?\s*", part)
        if match is None:
            return None
        counts += [int(match[1])] * int(match[2] or 1)
    return counts if counts and all(counts) else None


def job_shape(world_size: int, environ: Mapping[str, str] | None = None
              ) -> tuple[int | None, int | None]:
    """(nodes, ranks per node) of the running job of ``world_size`` ranks, as its launcher
    tells; None for what cannot be known.

    - A single process (world size 1) is (1, 1).
    - torchrun: nodes = GROUP_WORLD_SIZE (the agents that joined the rendezvous, torchrun
      being started once per node), ranks per node = LOCAL_WORLD_SIZE (this node's workers).
    - a task of an ``srun`` step (:func:`slurm_step`; a batch script's variables describe the
      allocation, not a job of ranks): nodes = SLURM_STEP_NUM_NODES, else the nodes
      SLURM_STEP_TASKS_PER_NODE lists, else SLURM_JOB_NUM_NODES, else SLURM_NNODES; ranks
      per node = SLURM_STEP_TASKS_PER_NODE (``2(x3)``: 2 on each of 3 nodes; ``2,1``: uneven,
      so None), else SLURM_NTASKS_PER_NODE.
    - Any other launch: (None, None).
    - Ranks per node not given, nodes known and dividing ``world_size``: world_size // nodes.
    - Nodes × ranks per node must be ``world_size``; otherwise the nodes are uneven (torchrun
      agents with different ``--nproc-per-node``, the last node of ``srun -n 5
      --ntasks-per-node 2``) and ranks per node is None.
    """
    env = os.environ if environ is None else environ
    if world_size == 1:
        return 1, 1
    stated = False  # the launcher says how the ranks lie on the nodes
    if all(name in env for name in TORCHRUN):
        nodes, per_node = _count(env.get("GROUP_WORLD_SIZE")), _count(env.get("LOCAL_WORLD_SIZE"))
        stated = per_node is not None
    elif slurm_step(env):
        layout = _per_node(env.get("SLURM_STEP_TASKS_PER_NODE"))
        # The step's own figures first; the job's allocation may hold more nodes than the step.
        candidates = [_count(env.get("SLURM_STEP_NUM_NODES")), len(layout) if layout else None,
                      _count(env.get("SLURM_JOB_NUM_NODES")), _count(env.get("SLURM_NNODES"))]
        nodes = next((n for n in candidates if n is not None), None)
        if layout is not None:
            stated = True
            per_node = layout[0] if len(set(layout)) == 1 else None
        else:
            per_node = _count(env.get("SLURM_NTASKS_PER_NODE"))
            stated = per_node is not None
    else:
        return None, None
    if not stated and nodes is not None and world_size % nodes == 0:
        per_node = world_size // nodes
    if nodes is not None and per_node is not None and nodes * per_node != world_size:
        per_node = None
    return nodes, per_node


def slurm_rendezvous(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """MASTER_ADDR / MASTER_PORT for a job started by ``srun`` (torch.distributed's env://
    rendezvous needs both); the user's own values win.

    Raises:
        ConfigError: neither MASTER_ADDR nor SLURM_LAUNCH_NODE_IPADDR says where rank 0 is.
    """
    env = os.environ if environ is None else environ
    addr = env.get("MASTER_ADDR") or env.get("SLURM_LAUNCH_NODE_IPADDR")
    if not addr:
        raise ConfigError("srun: set MASTER_ADDR (the first node's address) and MASTER_PORT "
                          "before bigbench train; SLURM gives no rendezvous address")
    # A port derived from the job id, so two jobs on one node do not collide.
    port = env.get("MASTER_PORT") or str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)
    return {"MASTER_ADDR": addr, "MASTER_PORT": port}


def host_name() -> str:
    """This host's name (energy is keyed by host and device)."""
    return socket.gethostname()
