"""Model FLOPs utilisation: achieved FLOP/s against the dense peak of the math actually used.

Which peak: bf16 and fp16 runs against their own peaks. An fp32 run on CUDA is held against the
TF32 peak when TF32 was allowed for the kernels its FLOPs run in — matmuls
(``matmul_precision`` high/medium), or cuDNN's convolutions and recurrent layers (cuDNN's flag,
on by default) — and the GPU has TF32 units, else against the true fp32 peak; the
``peak_basis`` field says which and why. The peak figures come from :mod:`bigbench.measuring.peaks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bigbench.measuring.peaks import peak_flops


def fp32_peak_dtype(math: Mapping[str, Any], cudnn_share: float | None = None
                    ) -> tuple[str, str]:
    """``tf32`` or ``fp32`` for an fp32 run, and the sentence that explains the choice.

    Args:
        math: ``matmul_tf32`` and ``conv_tf32`` (cuDNN's switch) as in force during the run
            (see :func:`bigbench.speed.fp32_math`).
        cudnn_share: Fraction of the counted FLOPs that run in cuDNN (convolutions, recurrent
            layers); the rest are matmuls. None when unknown: either switch then counts.
    """
    uses_cudnn = cudnn_share is None or cudnn_share > 0
    uses_matmul = cudnn_share is None or cudnn_share < 1
    cudnn_tf32 = uses_cudnn and bool(math.get("conv_tf32"))
    matmul_tf32 = uses_matmul and bool(math.get("matmul_tf32"))
    if not (cudnn_tf32 or matmul_tf32):
        return "fp32", "every counted FLOP runs in true fp32 (TF32 off for the kernels used)"
    if (cudnn_tf32 or not uses_cudnn) and (matmul_tf32 or not uses_matmul):
        return "tf32", "every counted FLOP may use TF32 tensor cores"
    which = "cuDNN kernels (convolutions, recurrent layers)" if cudnn_tf32 else "matmuls"
    other = "matmuls" if cudnn_tf32 else "cuDNN kernels"
    return "tf32", (f"{which} may use TF32 while {other} run in fp32: held against the "
                    "higher, TF32 peak so MFU is never overstated")


def throughput_figures(flops_per_sample: int | None, samples_per_s: float | None,
                       device_type: str, device_name: str, precision: str,
                       math: Mapping[str, Any], cudnn_share: float | None = None
                       ) -> dict[str, Any]:
    """Achieved FLOP/s (FLOPs per sample × samples/s) and its MFU, or nulls with the reason.

    The one place both ``train`` and ``bench`` turn a FLOP count and a throughput into
    FLOP/s and MFU.

    Returns:
        ``achieved_flops_per_s``, the :func:`mfu_figures` keys, and ``reasons`` for each null.
    """
    achieved = flops_per_sample * samples_per_s \
        if flops_per_sample is not None and samples_per_s else None
    out = {"achieved_flops_per_s": achieved,
           **mfu_figures(achieved, device_type, device_name, precision, math, cudnn_share)}
    why = out.pop("reason", None)
    reasons = {k: str(why) for k, v in out.items() if v is None and why is not None}
    if achieved is None:
        reasons["achieved_flops_per_s"] = "no FLOP count" if flops_per_sample is None else \
            "no measured throughput"
    out["reasons"] = reasons
    return out


def mfu_figures(achieved_flops_per_s: float | None, device_type: str, device_name: str,
                precision: str, math: Mapping[str, Any], cudnn_share: float | None = None
                ) -> dict[str, Any]:
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
        dtype, basis = fp32_peak_dtype(math, cudnn_share)
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
