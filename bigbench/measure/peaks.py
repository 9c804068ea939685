"""Dense peak FLOP/s of known GPUs, per math mode, from the vendors' datasheets.

Every figure is *dense* (NVIDIA datasheets quote tensor-core figures "with sparsity", twice the
dense rate; those are halved here). A device not listed gets no peak, and so no MFU — never a
guess. Names are matched against ``torch.cuda.get_device_name()``, e.g. "NVIDIA H100 80GB
HBM3", "NVIDIA A100-SXM4-80GB", "Tesla T4".
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    """Peak FLOP/s of one GPU model per math mode (None where the mode does not exist)."""

    match: tuple[str, ...]  # every part must occur in the device name as a whole word
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float | None
    source: str


T = 1e12
PEAKS = [
    # NVIDIA H200 datasheet (SXM): FP32 67 TF; TF32 989, BF16/FP16 1,979 TF with sparsity.
    Peak(("H200",), 67 * T, 494.5 * T, 989.5 * T, 989.5 * T, "NVIDIA H200 datasheet (SXM)"),
    # NVIDIA H100 datasheet, SXM5 ("H100 80GB HBM3"): FP32 67; TF32 989, BF16 1,979 sparse.
    Peak(("H100", "HBM3"), 67 * T, 494.5 * T, 989.5 * T, 989.5 * T, "NVIDIA H100 datasheet (SXM)"),
    # NVIDIA H100 datasheet, PCIe: FP32 51; TF32 756, BF16/FP16 1,513 TF with sparsity.
    Peak(("H100", "PCIe"), 51 * T, 378 * T, 756.5 * T, 756.5 * T, "NVIDIA H100 datasheet (PCIe)"),
    # NVIDIA A100 datasheet (SXM and PCIe): FP32 19.5; TF32 156; BF16/FP16 312 (dense).
    Peak(("A100",), 19.5 * T, 156 * T, 312 * T, 312 * T, "NVIDIA A100 datasheet"),
    # NVIDIA L40S datasheet: FP32 91.6; TF32 366, BF16/FP16 733 TF with sparsity.
    Peak(("L40S",), 91.6 * T, 183 * T, 366.5 * T, 366.5 * T, "NVIDIA L40S datasheet"),
    # NVIDIA L4 datasheet: FP32 30.3; TF32 120, BF16/FP16 242 TF with sparsity.
    Peak(("L4",), 30.3 * T, 60 * T, 121 * T, 121 * T, "NVIDIA L4 datasheet"),
    # NVIDIA A10 datasheet: FP32 31.2; TF32 125, BF16/FP16 250 TF with sparsity.
    Peak(("A10",), 31.2 * T, 62.5 * T, 125 * T, 125 * T, "NVIDIA A10 datasheet"),
    # NVIDIA V100 datasheet (SXM2): FP32 15.7; FP16 tensor 125; no TF32/BF16.
    Peak(("V100",), 15.7 * T, None, None, 125 * T, "NVIDIA V100 datasheet (SXM2)"),
    # NVIDIA T4 datasheet: FP32 8.1; FP16 tensor 65; no TF32/BF16.
    Peak(("T4",), 8.1 * T, None, None, 65 * T, "NVIDIA T4 datasheet"),
]


def find_peak(device_name: str) -> Peak | None:
    """The table entry for a device name, or None when unknown."""
    for peak in PEAKS:
        # Whole words, so that "A10" does not match an A100 nor "L4" an L40.
        if all(re.search(rf"\b{re.escape(part)}\b", device_name) for part in peak.match):
            return peak
    return None


def peak_flops(device_name: str, dtype: str) -> tuple[float | None, str]:
    """Peak FLOP/s for ``dtype`` (fp32, tf32, bf16, fp16) and where it comes from or why not."""
    peak = find_peak(device_name)
    if peak is None:
        return None, f"no peak FLOP/s figure for '{device_name}' in the peak table"
    value = getattr(peak, dtype)
    if value is None:
        return None, f"{device_name} has no {dtype} math mode"
    return value, peak.source


def mfu_figures(achieved_flops_per_s: float | None, device_type: str, device_name: str,
                precision: str) -> dict[str, object]:
    """MFU of an achieved FLOP/s against the dense peak for the math the run used.

    fp32 on CUDA is held against the TF32 peak where TF32 is enabled (cuDNN enables it by
    default) and the GPU has it, else the fp32 peak; bf16 and fp16 against their own peaks.

    Returns:
        ``mfu``, ``peak_flops_per_s``, ``peak_dtype``, ``peak_source`` and, when MFU is null,
        ``reason``.

    Raises:
        MeasurementError: an MFU above 1, which only a wrong FLOP count, throughput or peak
            figure can produce.
    """
    out: dict[str, object] = {"mfu": None, "peak_flops_per_s": None, "peak_dtype": None,
                              "peak_source": None}
    if device_type != "cuda":
        out["reason"] = "no peak FLOP/s figure for CPUs: MFU is reported for known GPUs only"
        return out
    import torch

    dtype = precision
    if precision == "fp32" and (torch.backends.cuda.matmul.allow_tf32
                                or torch.backends.cudnn.allow_tf32):
        dtype = "tf32"
    peak, source = peak_flops(device_name, dtype)
    if peak is None and dtype == "tf32":
        dtype = "fp32"
        peak, source = peak_flops(device_name, dtype)
    out.update(peak_dtype=dtype, peak_flops_per_s=peak)
    if peak is None:
        out["reason"] = source
        return out
    out["peak_source"] = source
    if achieved_flops_per_s is None:
        out["reason"] = "no measured throughput"
        return out
    mfu = achieved_flops_per_s / peak
    if mfu > 1:
        from bigbench.measure.flops import MeasurementError

        raise MeasurementError(f"MFU {mfu:.2f} > 1 against {source}: a FLOP count, "
                               "throughput or peak figure is wrong")
    out["mfu"] = mfu
    return out
