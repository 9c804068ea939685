"""Where this process stands in a (possibly distributed) job: the one place ranks live.

A single process is world size 1, rank 0, local rank 0. Launchers describe a process through
the environment (``torchrun``: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; SLURM: ``SLURM_PROCID``/
``SLURM_NTASKS``/``SLURM_LOCALID``). Only rank 0 writes files and prints; each rank measures its
own device; CPU packages are measured once per host, by local rank 0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bigbench.errors import ConfigError

_LAUNCHERS = (("RANK", "WORLD_SIZE", "LOCAL_RANK"),
              ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"))


@dataclass(frozen=True)
class Rank:
    """This process's place in the job.

    Attributes:
        rank: Global rank, 0 … world_size - 1.
        world_size: Number of processes in the job.
        local_rank: Rank on this host (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def writes(self) -> bool:
        """True for the one process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def measures_host(self) -> bool:
        """True for the one process per host that measures CPU packages and DRAM."""
        return self.local_rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Rank:
        """The rank a launcher gave this process, or the single-process default.

        Raises:
            ConfigError: when the launcher's variables are not integers or are inconsistent.
        """
        env = os.environ if env is None else env
        for rank_key, world_key, local_key in _LAUNCHERS:
            if rank_key in env and world_key in env:
                try:
                    rank = cls(int(env[rank_key]), int(env[world_key]),
                               int(env.get(local_key, "0")))
                except ValueError:
                    raise ConfigError(f"${rank_key}={env[rank_key]!r}, ${world_key}="
                                      f"{env[world_key]!r}: not integers") from None
                if not 0 <= rank.rank < rank.world_size or rank.local_rank < 0:
                    raise ConfigError(f"${rank_key}={rank.rank} is outside 0 … "
                                      f"${world_key}-1 ({rank.world_size - 1})")
                return rank
        return cls()


#: The rank of a single-process run.
SINGLE = Rank()
