"""NVIDIA Management Library access: the only module that imports ``pynvml``.

Every NVML failure becomes a reason string; nothing here raises on a machine without a GPU.
The backend (the ``pynvml`` module) is injectable so tests can hand in a fake.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def load_backend() -> tuple[ModuleType | None, str | None]:
    """Import pynvml; returns ``(module, None)`` or ``(None, reason)``."""
    try:
        import pynvml
    except ImportError:
        return None, "the nvidia-ml-py package (pynvml) is not installed"
    return pynvml, None


def probe(backend: ModuleType | None = None) -> dict[str, Any]:
    """Whether NVML answers here: driver version and GPU count, or why not.

    Returns:
        ``{"available": bool, "driver_version": str | None, "device_count": int | None,
        "reason": str | None}``
    """
    reason = None
    if backend is None:
        backend, reason = load_backend()
    if backend is None:
        return {"available": False, "driver_version": None, "device_count": None, "reason": reason}
    try:
        backend.nvmlInit()
    except Exception as exc:  # NVMLError subclasses vary by version; all mean "not usable"
        return {"available": False, "driver_version": None, "device_count": None,
                "reason": f"NVML did not initialise ({_describe(exc)}); no NVIDIA driver here?"}
    try:
        driver = backend.nvmlSystemGetDriverVersion()
        count = backend.nvmlDeviceGetCount()
    except Exception as exc:
        return {"available": False, "driver_version": None, "device_count": None,
                "reason": f"NVML query failed ({_describe(exc)})"}
    finally:
        try:
            backend.nvmlShutdown()
        except Exception:
            pass
    if isinstance(driver, bytes):
        driver = driver.decode()
    return {"available": True, "driver_version": driver, "device_count": int(count),
            "reason": None}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
