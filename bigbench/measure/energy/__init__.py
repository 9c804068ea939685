"""Energy meters. Only ``nvml.py`` imports pynvml; only ``rapl.py`` reads powercap sysfs."""
