"""Where this process stands in a job, read from the environment its launcher set.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR / MASTER_PORT); ``srun`` sets
SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID. A process with neither is a single process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from bigbench.errors import ConfigError
from bigbench.rank import SINGLE, Rank

#: (rank, world size, local rank) variables of each launcher, in the order they are tried.
LAUNCHERS = {
    "torchrun": ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
    "slurm": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
}


def rank_from_env(environ: Mapping[str, str] | None = None) -> tuple[Rank, str | None]:
    """This process's rank and the launcher that set it (None: a single process).

    Raises:
        ConfigError: the variables are present but inconsistent (a rank outside the world).
    """
    env = os.environ if environ is None else environ
    for launcher, names in LAUNCHERS.items():
        if all(name in env for name in names):
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
    return SINGLE, None


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
