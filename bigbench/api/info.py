"""What this installation offers, as data: the twins of ``bigbench models``, ``bigbench data``
and ``bigbench devices``.

Each returns what the command's ``--json`` prints (:mod:`bigbench.catalog` builds both). The
names carry ``list_`` because ``bigbench.models`` and ``bigbench.devices`` are modules: an
API function of that name would be replaced the moment the module is imported.
"""

from __future__ import annotations

from typing import Any


def list_models() -> list[dict[str, Any]]:
    """Every registered model (``bigbench models``).

    Returns:
        One dict per model: ``name``, ``family``, ``params`` (on its reference input),
        ``reference_input``, ``summary`` and ``defaults`` (its arguments' defaults); ``gpt``
        also has ``sizes``, each preset's ``n_layer``, ``n_head``, ``d_model``, ``context``
        and ``params``.
    """
    from bigbench.catalog import model_catalog

    return model_catalog()


def list_datasets() -> list[dict[str, Any]]:
    """Every registered dataset (``bigbench data``).

    Returns:
        One dict per dataset: ``name``, ``summary`` and ``arguments`` (per argument its
        ``default``, ``required`` and ``description``).
    """
    from bigbench.catalog import dataset_catalog

    return dataset_catalog()


def list_devices() -> dict[str, Any]:
    """This machine's CPU and GPUs, and whether NVML answers (``bigbench devices``).

    Returns:
        ``cpu`` (``name``, ``logical_cpus``, ``torch_threads``), ``torch`` (its version),
        ``cuda_available``, ``cuda_build``, ``cuda_devices`` (``index``, ``name``,
        ``total_memory_bytes``, ``capability``, ``uuid`` …) and ``nvml`` (``available``,
        ``driver_version``, ``device_count``, ``reason``).
    """
    from bigbench.catalog import device_report

    return device_report()
