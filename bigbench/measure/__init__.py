"""Measurement: timing, memory and energy, grouped in named windows by :class:`Meter`."""
