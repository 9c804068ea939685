"""Benchmarks: a matrix of models × batch sizes × precisions × modes, each point measured.

Owns: the matrix and plan (``matrix``, torch-free), building them from suites, configs and flags
(``session``), measuring one point through the workload's step builder (``point``), running
points in or out of process with statuses (``runner``), and the library call that runs a whole
benchmark and writes bench.json/bench.csv as it goes (``run``); their rendering (``output``);
points at GPU power limits and locked clocks, set through the measuring layer's
``PowerLimiter`` and always restored (``gpu_settings``).
Must never import: the CLI, or anything that prints to a console.
"""
