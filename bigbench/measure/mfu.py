"""Model FLOPs utilisation: achieved FLOP/s against the dense peak of the math actually used.

Which peak: bf16 and fp16 runs against their own peaks. An fp32 run on CUDA is held against the
TF32 peak when TF32 was allowed for matmuls (``matmul_precision`` high/medium) or convolutions
(cuDNN's flag, on by default) and the GPU has TF32 units, else against the true fp32 peak; the
``peak_basis`` field says which and why. The peak figures come from :mod:`bigbench.measure.peaks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bigbench.measure.peaks import peak_flops


def fp32_peak_dtype(math: Mapping[str, Any]) -> tuple[str, str]:
    """``tf32`` or ``fp32`` for an fp32 run, and the sentence that explains the choice.

    Args:
        math: ``matmul_tf32`` and ``conv_tf32`` as in force during the run (see
            :func:`bigbench.speed.fp32_math`).
    """
    matmul, conv = bool(math.get("matmul_tf32")), bool(math.get("conv_tf32"))
    if matmul and conv:
        return "tf32", "matmuls and convolutions may use TF32 tensor cores"
    if conv:
        return "tf32", ("convolutions may use TF32 (cuDNN's default) while matmuls run in fp32 "
                        "(matmul_precision highest): held against the higher, TF32 peak so MFU "
                        "is never overstated")
    if matmul:
        return "tf32", ("matmuls may use TF32 (matmul_precision high/medium) while convolutions "
                        "run in fp32: held against the higher, TF32 peak so MFU is never "
                        "overstated")
    return "fp32", "matmuls and convolutions run in true fp32"


def mfu_figures(achieved_flops_per_s: float | None, device_type: str, device_name: str,
                precision: str, math: Mapping[str, Any]) -> dict[str, Any]:
    """MFU of an achieved FLOP/s against the dense peak for the math the run used.

    An MFU above 1 can only come from a wrong FLOP count, throughput or peak figure: it is
    recorded as ``mfu_invalid`` with the reason, ``mfu`` stays null, and the run goes on.

    Returns:
        ``mfu``, ``peak_flops_per_s``, ``peak_dtype``, ``peak_basis``, ``peak_source`` and,
        when MFU is null, ``reason``.
    """
    out: dict[str, Any] = {"mfu": None, "peak_flops_per_s": None, "peak_dtype": None,
                           "peak_basis": None, "peak_source": None}
    if device_type != "cuda":
        out["reason"] = "no peak FLOP/s figure for CPUs: MFU is reported for known GPUs only"
        return out
    dtype, basis = precision, f"{precision} autocast"
    if precision == "fp32":
        dtype, basis = fp32_peak_dtype(math)
    peak, source = peak_flops(device_name, dtype)
    if peak is None and dtype == "tf32":
        fp32, why = peak_flops(device_name, "fp32")
        if fp32 is not None:
            dtype, peak, source, basis = "fp32", fp32, why, "this GPU has no TF32 math mode"
    out.update(peak_dtype=dtype, peak_flops_per_s=peak, peak_basis=basis)
    if peak is None:
        out["reason"] = source
        return out
    out["peak_source"] = source
    if achieved_flops_per_s is None:
        out["reason"] = "no measured throughput"
        return out
    mfu = achieved_flops_per_s / peak
    if mfu > 1:
        out["mfu_invalid"] = mfu
        out["reason"] = (f"invalid: MFU {mfu:.2f} > 1 against {source} ({dtype}); a FLOP "
                         "count, throughput or peak figure is wrong")
        return out
    out["mfu"] = mfu
    return out
