"""Energy meters and the energy of measurement windows.

Owns: NVML GPUs (``nvml``, the only module that imports pynvml), RAPL zones (``rapl``, the only
reader of powercap sysfs), the power sampler thread, the monitor that turns counters and samples
into window energy with method, quality and error bound (``monitor``), choosing a run's meters
from injected backends (``setup``) and the energy/carbon sections (``report``); GPU power limits
and locked SM clocks, changed only through ``power_limits`` (which uses nvml's backend) and
always restorable from its state file (``gpu_state``). A monitor with
no device is the null meter: it implements everything and reports every figure as null with its
reason. Must never import: the config schema, models, data, workloads, bench, CLI.
"""
