"""``bigbench sweep``: real training runs over batch size × precision × GPU power limit, and
the compute/energy frontier of their results.

Owns: the sweep plan (combinations and their interleaved order), the trials' figures read from
their run.json, the per-combination medians, the GPU power limit and cooldown around each
trial, sweep.json, and its table. The Pareto set and the eta-optimal point are computed by
bigbench.frontier; the training runs by bigbench.trainer.
Must never import: bigbench.cli. Importing this package imports nothing heavy (torch is loaded
by the modules that train).
"""
