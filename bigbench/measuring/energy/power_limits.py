"""GPU power limits and locked SM clocks: changed only through here, and always put back.

The second module that talks to NVML (after :mod:`~bigbench.measuring.energy.nvml`, whose
backend loader and error wording it shares); nothing else may change a GPU's settings.

The contract of :class:`PowerLimiter`: nothing on the GPU changes until (1) the privilege to
change it was proven — by setting the power limit to the value it already has — and (2) the
state to go back to was written to a state file, atomically. From then on the original is put
back on every exit (``with`` block, ``try``/``finally``); a hard kill leaves the state file,
and :func:`restore_from_file` (``bigbench gpu restore``) puts the GPU back from it.

Units: NVML speaks milliwatts; everything here is watts (float) and MHz (int).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from bigbench.errors import OutputError

# The state file's format and PowerControlError live in gpu_state.py (no NVML there), reading
# GPU settings in nvml.py (read only); both are re-exported here so callers import everything
# about power control from one place.
from bigbench.measuring.energy.gpu_state import (
    STATE_FILE,
    STATE_SCHEMA,
    PowerControlError,
    load_state,
    refuse_unrestored,
    state_path,
    write_state,
)
from bigbench.measuring.energy.nvml import (
    _NO_PERMISSION,
    _NOT_SUPPORTED,
    THROTTLE_REASONS,
    _nvml_reason,
    _text,
    gpu_settings_of_all,
    load_backend,
    read_snapshot,
    supported_sm_clock_range,
    throttle_names,
)

_INVALID_ARGUMENT = 2  # NVML_ERROR_INVALID_ARGUMENT (nvml.h)

#: How to get the privilege (setting a power limit or locked clocks needs root on Linux).
PRIVILEGE_FIX = ("run bigbench as root (e.g. `sudo .venv/bin/bigbench ...`) with persistence "
                 "mode on (`sudo nvidia-smi -pm 1`); for clock settings an administrator may "
                 "instead allow other users with `sudo nvidia-smi -acp UNRESTRICTED` where the "
                 "driver supports it; in a container, also grant it the SYS_ADMIN capability")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _backend(backend: ModuleType | None, what: str = "change GPU settings") -> ModuleType:
    """An initialised NVML backend, or PowerControlError saying why there is none."""
    if backend is None:
        backend, reason = load_backend()
        if backend is None:
            raise PowerControlError(f"cannot {what}: {reason} (pip install nvidia-ml-py)")
    try:
        backend.nvmlInit()
    except Exception as exc:
        raise PowerControlError(f"cannot {what}: {_nvml_reason(exc, 'NVML init')}") from None
    return backend


def _refusal(exc: BaseException, what: str, gpu: str) -> PowerControlError:
    """An NVML error from a setter as one line naming the fix."""
    code = getattr(exc, "value", None)
    if code == _NO_PERMISSION:
        return PowerControlError(f"no permission to {what} on {gpu}: {PRIVILEGE_FIX}")
    if code == _NOT_SUPPORTED:
        return PowerControlError(f"{gpu} does not let NVML {what} (Not Supported: e.g. "
                                 "GeForce, laptop and virtual GPUs often do not)")
    if code == _INVALID_ARGUMENT:
        return PowerControlError(f"{gpu} refused to {what} (NVML: invalid argument)")
    return PowerControlError(f"{gpu}: could not {what} ({_nvml_reason(exc, 'NVML')})")


def _cuda_uuid(index: int) -> str | None:
    """The NVML UUID of CUDA device ``index`` when this process uses torch's CUDA (CUDA and NVML
    may number GPUs differently), else None."""
    torch = sys.modules.get("torch")  # never import torch here: a process without it has no
    if torch is None or not torch.cuda.is_available():  # CUDA index to map
        return None
    from bigbench.devices import describe

    return describe(torch.device("cuda", index)).uuid


class PowerLimiter:
    """One GPU's power limit and locked SM clocks, changed only through here and always
    restorable.

    Open it with :meth:`open`; use it as a context manager (or call :meth:`restore` in a
    ``finally``) so the original settings come back whatever happens.

    Attributes:
        index, uuid, name: The GPU (CUDA index, NVML UUID, product name).
        state_file: Where the state to go back to is written.
        original_w, default_w: The power limit before any change and the GPU's default, W.
        applied_w: The limit last applied through :meth:`apply` (None: none since the last
            restore). locked_mhz: the SM clock locked through :meth:`lock_sm_clocks`.
        warnings: Things a caller should tell the user (e.g. the original is not the default).
    """

    def __init__(self, backend: ModuleType, handle: Any, state: dict[str, Any],
                 state_file: Path, clock_range_mhz: tuple[int, int] | None) -> None:
        self._backend, self._handle = backend, handle
        self._state = state
        self.state_file = state_file
        self.index: int = state["index"]
        self.uuid: str = state["uuid"]
        self.name: str = state["name"]
        self.original_w: float = state["original_power_limit_w"]
        self.default_w: float | None = state["default_power_limit_w"]
        self._range: tuple[float, float] = tuple(state["allowed_range_w"])  # type: ignore[assignment]
        self._clock_range = clock_range_mhz
        self.applied_w: float | None = None
        self.locked_mhz: int | None = None
        self.warnings: list[str] = []
        self._changed = False  # whether the power limit may differ from the original
        self._restored = False

    @property
    def label(self) -> str:
        """``GPU 0 (NVIDIA H100 80GB HBM3)``."""
        return f"GPU {self.index} ({self.name})"

    @classmethod
    def open(cls, index: int, state_file: Path, backend: ModuleType | None = None, *,
             uuid: str | None = None) -> PowerLimiter:
        """Open CUDA device ``index``, prove the privilege to set its power limit, and write
        ``state_file`` — all before anything changes.

        Args:
            index: The CUDA device index in use.
            state_file: Where to write the state to go back to (JSON, atomically).
            backend: The pynvml module (or a fake); None imports it.
            uuid: The GPU's NVML UUID when the caller knows it (a bench records it); else it
                is found from torch's CUDA device ``index``, or ``index`` is taken as NVML's.

        Raises:
            PowerControlError: no NVML, no such GPU, no privilege (naming the fix), the GPU
                does not support power limits, or ``state_file`` holds an unrestored state.
        """
        state_file = Path(state_file)
        refuse_unrestored(state_file)
        backend = _backend(backend)
        uuid = uuid or _cuda_uuid(index)
        where = f"GPU {uuid}" if uuid else f"GPU {index}"
        try:
            handle = (backend.nvmlDeviceGetHandleByUUID(uuid.encode()) if uuid
                      else backend.nvmlDeviceGetHandleByIndex(index))
            name = _text(backend.nvmlDeviceGetName(handle))
            uuid = uuid or _text(backend.nvmlDeviceGetUUID(handle))
        except Exception as exc:
            raise PowerControlError(f"cannot open {where}: {_nvml_reason(exc, 'NVML')}") from None
        gpu = f"GPU {index} ({name})"
        try:
            current_mw = int(backend.nvmlDeviceGetPowerManagementLimit(handle))
            low_mw, high_mw = backend.nvmlDeviceGetPowerManagementLimitConstraints(handle)
        except Exception as exc:
            raise _refusal(exc, "read the power limit", gpu) from None
        try:
            default_w: float | None = \
                backend.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000.0
        except Exception:  # "default" then cannot be resolved; everything else works
            default_w = None
        try:  # the privilege check: setting the limit it already has changes nothing
            backend.nvmlDeviceSetPowerManagementLimit(handle, current_mw)
        except Exception as exc:
            raise _refusal(exc, "change the power limit", gpu) from None
        state = {"schema": STATE_SCHEMA, "uuid": uuid, "index": index, "name": name,
                 "original_power_limit_w": current_mw / 1000.0,
                 "default_power_limit_w": default_w,
                 "allowed_range_w": [low_mw / 1000.0, high_mw / 1000.0],
                 "clocks_locked": False, "restored": False, "pid": os.getpid(),
                 "created_at": _now(), "restored_at": None}
        limiter = cls(backend, handle, state, state_file,
                      supported_sm_clock_range(backend, handle))
        limiter._write_state()
        if default_w is not None and abs(current_mw / 1000.0 - default_w) > 0.5:
            limiter.warnings.append(
                f"{gpu}'s power limit was {current_mw / 1000.0:g} W, not its default "
                f"{default_w:g} W; that is what it is restored to (if an earlier run was "
                "killed, `bigbench gpu restore` its directory first)")
        return limiter

    # --- what may be set ---------------------------------------------------------------------

    def allowed_range_w(self) -> tuple[float, float]:
        """The lowest and highest power limit this GPU accepts, W."""
        return self._range

    def sm_clock_range_mhz(self) -> tuple[int, int] | None:
        """The lowest and highest supported SM clock, MHz (None: NVML does not list them)."""
        return self._clock_range

    def resolve(self, spec: str | float) -> float:
        """A power limit as given — ``"max"``, ``"min"``, ``"default"`` or watts — in watts.

        Raises:
            PowerControlError: not a limit, or outside the allowed range (which it names).
        """
        low, high = self._range
        key = spec.strip().lower() if isinstance(spec, str) else None
        if key in ("max", "min"):
            return high if key == "max" else low
        if key == "default":
            if self.default_w is None:
                raise PowerControlError(f"{self.label} does not report its default power "
                                        "limit; give the limit in watts")
            return self.default_w
        try:
            if isinstance(spec, bool):
                raise ValueError
            watts = float(spec)
        except (TypeError, ValueError):
            raise PowerControlError(f"power limit {spec!r}: give watts (e.g. 250), 'min', "
                                    "'default' or 'max'") from None
        if not math.isfinite(watts) or not low <= watts <= high:
            raise PowerControlError(f"power limit {watts:g} W is outside the range {self.label} "
                                    f"allows: {low:g}–{high:g} W")
        return watts

    def check_sm_clock(self, mhz: int) -> int:
        """``mhz`` when it is a supported SM clock (within the listed range, where listed).

        Raises:
            PowerControlError: outside the supported range, which it names.
        """
        if isinstance(mhz, bool) or not isinstance(mhz, int) or mhz < 1:
            raise PowerControlError(f"SM clock {mhz!r}: give a whole number of MHz")
        if self._clock_range and not self._clock_range[0] <= mhz <= self._clock_range[1]:
            low, high = self._clock_range
            raise PowerControlError(f"SM clock {mhz} MHz is outside the range {self.label} "
                                    f"supports: {low}–{high} MHz")
        return mhz

    # --- changing and restoring ----------------------------------------------------------------

    def apply(self, watts: float) -> None:
        """Set the power limit to ``watts`` (W; checked against the allowed range first)."""
        watts = self.resolve(watts)
        self._changed, self._restored = True, False  # from here on, restore() must act
        try:
            self._backend.nvmlDeviceSetPowerManagementLimit(self._handle, round(watts * 1000))
        except Exception as exc:
            raise _refusal(exc, f"set the power limit to {watts:g} W", self.label) from None
        self.applied_w = watts

    def lock_sm_clocks(self, mhz: int) -> None:
        """Lock the SM clock at ``mhz`` (``nvmlDeviceSetGpuLockedClocks(h, mhz, mhz)``)."""
        mhz = self.check_sm_clock(mhz)
        was_marked = self._state["clocks_locked"]
        if not was_marked:  # the state file says "unlock" before anything is locked
            self._state["clocks_locked"] = True
            self._write_state()
        self._restored = False
        try:
            self._backend.nvmlDeviceSetGpuLockedClocks(self._handle, mhz, mhz)
        except Exception as exc:
            if not was_marked:  # nothing was locked: the state need not unlock anything
                self._state["clocks_locked"] = False
                self._write_state()
            raise _refusal(exc, f"lock the SM clock at {mhz} MHz", self.label) from None
        self.locked_mhz = mhz

    @property
    def restored(self) -> bool:
        """True once the original settings are back (or nothing was changed yet)."""
        return self._restored or not self._changed

    def restore(self) -> None:
        """Put the original power limit back and unlock the clocks; mark the state file
        restored. Idempotent; signals arriving meanwhile are held until it is done.

        Raises:
            PowerControlError: a setting could not be put back (the state file then stays
                unrestored, and the message names ``bigbench gpu restore``).
        """
        if self._restored:
            return
        errors = []
        with _signals_held():
            if self._changed:
                try:
                    self._backend.nvmlDeviceSetPowerManagementLimit(
                        self._handle, round(self.original_w * 1000))
                except Exception as exc:
                    errors.append(_refusal(exc, "restore the power limit", self.label))
            if self._state["clocks_locked"]:
                try:
                    self._backend.nvmlDeviceResetGpuLockedClocks(self._handle)
                except Exception as exc:
                    errors.append(_refusal(exc, "unlock the SM clocks", self.label))
            if errors:
                raise PowerControlError(
                    "; ".join(str(e) for e in errors) + f"; then run `bigbench gpu restore "
                    f"{self.state_file}` to put back what it recorded")
            self._changed, self._restored = False, True
            self.applied_w = self.locked_mhz = None
            self._state.update(clocks_locked=False, restored=True, restored_at=_now())
            try:
                self._write_state()
            except OutputError as exc:  # the GPU is back; only the record of it is not
                self.warnings.append(f"{self.label} was restored but {exc.problems[0]}")

    def snapshot(self) -> dict[str, Any]:
        """Enforced power limit (W), SM clock (MHz), temperature (°C) and throttle reason names
        now, each null with its reason in ``reasons`` where NVML lacks it."""
        return read_snapshot(self._backend, self._handle)

    def __enter__(self) -> PowerLimiter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def _write_state(self) -> None:
        write_state(self.state_file, self._state)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the body is done, then deliver them: a restore cut in
    half by a second Ctrl-C would leave the GPU half restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = {sig: handler for sig, handler in previous.items() if handler is not None}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in held:
            signal.raise_signal(signum)


def snapshot_reader(uuid: str, backend: ModuleType | None = None
                    ) -> Callable[[], dict[str, Any]] | None:
    """A function reading :func:`read_snapshot` of GPU ``uuid`` (read-only: no privilege
    needed), or None where NVML cannot open it (an isolated bench point's subprocess uses it
    to snapshot its measured window's edges)."""
    try:
        backend = _backend(backend, "read GPU settings")
        handle = backend.nvmlDeviceGetHandleByUUID(uuid.encode())
    except Exception:  # no snapshot then; the parent records its own at the point's edges
        return None
    return lambda: read_snapshot(backend, handle)


def restore_from_file(state_file: Path, backend: ModuleType | None = None) -> dict[str, Any]:
    """Put back what ``state_file`` recorded (after a hard kill left the GPU changed).

    The GPU is found by UUID (its index may differ after a reboot or with another
    ``CUDA_VISIBLE_DEVICES``). A state already restored is left alone.

    Returns:
        ``{"state_file", "uuid", "name", "already_restored", "power_limit_w" (restored, W, or
        null), "clocks_unlocked"}``.

    Raises:
        PowerControlError: no such file, not a state file, no such GPU, or no privilege.
    """
    state = load_state(Path(state_file))
    file = state_path(Path(state_file))
    out = {"state_file": str(file), "uuid": state["uuid"], "name": state.get("name"),
           "already_restored": state["restored"], "power_limit_w": None,
           "clocks_unlocked": False}
    if state["restored"]:
        return out
    backend = _backend(backend)
    gpu = f"GPU {state['uuid']} ({state.get('name')})"
    try:
        handle = backend.nvmlDeviceGetHandleByUUID(state["uuid"].encode())
    except Exception as exc:
        raise PowerControlError(f"{file}: {gpu} is not on this machine "
                                f"({_nvml_reason(exc, 'NVML')})") from None
    watts = float(state["original_power_limit_w"])
    with _signals_held():
        try:
            backend.nvmlDeviceSetPowerManagementLimit(handle, round(watts * 1000))
        except Exception as exc:
            raise _refusal(exc, "restore the power limit", gpu) from None
        if state["clocks_locked"]:
            try:
                backend.nvmlDeviceResetGpuLockedClocks(handle)
            except Exception as exc:
                raise _refusal(exc, "unlock the SM clocks", gpu) from None
        write_state(file, {**state, "clocks_locked": False, "restored": True,
                           "restored_at": _now()})
    return {**out, "power_limit_w": watts, "clocks_unlocked": state["clocks_locked"]}


def describe_gpus(backend: ModuleType | None = None) -> list[dict[str, Any]]:
    """Every GPU NVML sees (NVML order): power limit, default, allowed range, SM clocks and a
    snapshot; each figure null with its reason in ``reasons`` where NVML lacks it.

    Raises:
        PowerControlError: NVML is not available.
    """
    return gpu_settings_of_all(_backend(backend, "read GPU settings"))

__all__ = ["PRIVILEGE_FIX", "STATE_FILE", "STATE_SCHEMA", "THROTTLE_REASONS", "PowerControlError",
           "PowerLimiter", "describe_gpus", "load_state", "read_snapshot", "restore_from_file",
           "snapshot_reader", "state_path", "throttle_names"]
