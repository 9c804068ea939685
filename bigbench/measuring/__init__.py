"""Measurement: timing, memory, FLOPs and energy, grouped in named windows by :class:`Meter`.

Owns: named windows (``meter``), step timing (``timing``), memory peaks, FLOP counting of a
given module (``flops``), the peak table and MFU (``peaks``, ``mfu``), statistics, and the
energy meters (``energy``). Meters never know what a model is.
Must never import: the config schema, the model or dataset registries, workloads, bench, CLI.
"""
