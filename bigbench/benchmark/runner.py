"""Run a list of points: status for every point (ok | oom | skipped | failed), never a crash.

Points run in this process, or each in a fresh subprocess (``isolate``) so one point's allocator
state, compiled graphs or hard crash cannot touch the next.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bigbench.benchmark.matrix import Plan, Point
from bigbench.errors import ConfigError
from bigbench.measuring.memory import oom_memory_figures

OOM_MARKERS = ("out of memory", "can't allocate memory", "CUDA error: out of memory")


def is_oom(exc: BaseException) -> bool:
    """CUDA OOM, or the CPU allocator refusing an allocation."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in OOM_MARKERS)


def run_point(point: Point, plan: Plan, device: Any, energy: Any,
              measure: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Measure one point in this process and return its result record (never raises)."""
    import torch

    from bigbench.benchmark.point import measure_point, skip_reason

    result: dict[str, Any] = {"id": point.id, "settings": point.settings(), "status": "ok",
                              "reason": None, "error": None}
    reason = skip_reason(point, device)
    if reason is not None:
        return {**result, "status": "skipped", "reason": reason}
    started = time.perf_counter()
    try:
        result.update((measure or measure_point)(point, plan, device, energy))
    except ConfigError as exc:  # the model cannot run this way (e.g. channels_last)
        result.update(status="skipped", reason="; ".join(exc.problems))
    except Exception as exc:
        if is_oom(exc):
            result.update(status="oom", error=str(exc).strip().splitlines()[0][:500],
                          reason=f"out of memory at batch size {point.batch_size}",
                          memory=oom_memory_figures(device))
        else:
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result["wall_s"] = time.perf_counter() - started
    return result


def run_isolated(point: Point, plan: Plan, device: str, measure_config: dict[str, Any],
                 timeout_s: float | None = None, model_from: str | None = None,
                 gpu_uuid: str | None = None) -> dict[str, Any]:
    """Measure one point in a fresh ``python -m bigbench _bench-point`` subprocess (of the
    model saved in ``model_from`` when given; reading GPU ``gpu_uuid``'s settings at the
    measured window's edges when given)."""
    request = {"point": point.as_dict(), "plan": plan.__dict__, "device": device,
               "measure": measure_config, "model_from": model_from,
               "gpu_snapshot_uuid": gpu_uuid}
    base = {"id": point.id, "settings": point.settings(), "reason": None}
    try:
        proc = subprocess.run([sys.executable, "-m", "bigbench", "_bench-point"],
                              input=json.dumps(request), capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**base, "status": "failed", "error": f"timed out after {timeout_s} s"}
    if proc.returncode == 0:
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            pass
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {**base, "status": "failed",
            "error": f"subprocess exited with {proc.returncode}: " + " | ".join(tail)}


def find_max_batch(trial: Callable[[int], str], start: int, limit: int = 1 << 20
                   ) -> dict[str, Any]:
    """Largest batch size for which ``trial`` returns "ok" (others: "oom" or a failure).

    Doubles from ``start`` until the first OOM, then bisects between the last fit and it.
    Returns the answer and every size tried, so the search is auditable.
    """
    tried: dict[int, str] = {}

    def attempt(size: int) -> str:
        tried[size] = trial(size)
        return tried[size]

    size = max(1, start)
    while attempt(size) == "ok":
        if size >= limit:
            return {"max_batch_size": size, "limited_by": f"search limit {limit}",
                    "tried": tried}
        size = min(size * 2, limit)
    if tried[size] != "oom":
        return {"max_batch_size": None, "limited_by": f"batch {size} {tried[size]}",
                "tried": tried}
    fits = max((s for s, status in tried.items() if status == "ok"), default=0)
    fails = size
    while fails - fits > 1:
        middle = (fits + fails) // 2
        if attempt(middle) == "ok":
            fits = middle
        else:
            fails = middle
    return {"max_batch_size": fits or None, "limited_by": f"out of memory at {fails}",
            "tried": tried}


def saved_model_measure(model_from: str | None) -> Callable[..., dict[str, Any]] | None:
    """How each point measures the model saved in ``model_from`` (None: a fresh registry
    model): a fresh copy per point, so a training point cannot leak into the next; a
    quantized model's training points are skipped, and one whose int8 kernels need inductor
    runs compiled (the warm-up absorbs the compilation)."""
    if model_from is None:
        return None
    import copy
    import dataclasses
    from pathlib import Path

    from bigbench.benchmark.point import measure_point
    from bigbench.optimize.artifacts import load_source

    loaded = load_source(Path(model_from))

    def measure(point: Point, plan: Plan, device: Any, energy: Any,
                gpu_snapshot: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
        import torch

        if point.mode == "train" and loaded.recipe.get("kind") == "quantize":
            raise ConfigError(f"a {loaded.recipe.get('method')} model is measured for "
                              "inference only (its integer weights have no gradients)")
        module = copy.deepcopy(loaded.built.module)
        if loaded.needs_compile:
            module = torch.compile(module)
        result = measure_point(point, plan, device, energy,
                               model=dataclasses.replace(loaded.built, module=module),
                               flops_model=loaded.float_twin, gpu_snapshot=gpu_snapshot)
        result["model"]["recipe"] = loaded.recipe
        return result

    return measure


def with_gpu_snapshots(measure: Callable[..., dict[str, Any]] | None,
                       gpu_snapshot: Callable[[], dict[str, Any]] | None
                       ) -> Callable[..., dict[str, Any]] | None:
    """``measure`` (None: a fresh registry model's) reading ``gpu_snapshot()`` at its measured
    window's edges; ``measure`` itself when there is nothing to read."""
    if gpu_snapshot is None:
        return measure
    if measure is None:
        from bigbench.benchmark.point import measure_point

        measure = measure_point
    return functools.partial(measure, gpu_snapshot=gpu_snapshot)
