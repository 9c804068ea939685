"""Workloads: a model with its task, data, precision and optimizer, and the one step builder.

Owns: what is learned (``task``), the numeric precision rule (``precision``), building a
workload from a config or a module (``build``) and the training/inference step (``steps``).
Must never import: the CLI, the run writer, or anything that prints.
"""
