"""Where this process stands in a (possibly distributed) job: the one place ranks live.

A single process is world size 1, rank 0, local rank 0. Only rank 0 writes files and prints;
each rank measures its own device; CPU packages are measured once per host, by local rank 0.
"""

from __future__ import annotations

from dataclasses import dataclass


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


#: The rank of a single-process run.
SINGLE = Rank()
