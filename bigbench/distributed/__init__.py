"""Distributed training on torch.distributed, launched by torchrun's launcher.

Owns: reading this process's place in a job from the environment torchrun or SLURM set
(env.py), the process group and the ranks' agreement on when to stop (group.py), wrapping the
model for the strategy (strategy.py), starting a job from ``bigbench train --nproc-per-node``
(launch.py) and combining the ranks' figures on rank 0 (aggregate.py). bigbench never brings
a launcher or a collective of its own. Must never import ``bigbench.cli``.
"""
