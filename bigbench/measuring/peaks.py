"""Dense peak FLOP/s of known GPUs, per math mode, from the vendors' datasheets.

Every figure is *dense* (NVIDIA datasheets quote tensor-core figures "with sparsity", twice the
dense rate; those are halved here). Entries are per product variant — SXM, PCIe and NVL boards
of one chip differ in clocks and power, so in peak FLOP/s — and a device name must equal one of
an entry's names (as ``torch.cuda.get_device_name()`` reports it, e.g. "NVIDIA H100 80GB HBM3",
"NVIDIA A100-SXM4-80GB", "Tesla T4"). A name not listed gets no peak, and so no MFU: never a
sibling's figure, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    """Peak FLOP/s of one GPU variant per math mode (None where the mode does not exist)."""

    names: tuple[str, ...]  # device names exactly as torch/NVML report them
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float | None
    source: str


T = 1e12
PEAKS = [
    # H200 datasheet, SXM: FP32 67; TF32 989, BF16/FP16 1,979 TFLOPS with sparsity (halved).
    Peak(("NVIDIA H200",), 67 * T, 494.5 * T, 989.5 * T, 989.5 * T,
         "NVIDIA H200 datasheet (H200 SXM)"),
    # H200 datasheet, NVL: FP32 60; TF32 835, BF16/FP16 1,671 TFLOPS with sparsity (halved).
    Peak(("NVIDIA H200 NVL",), 60 * T, 417.5 * T, 835.5 * T, 835.5 * T,
         "NVIDIA H200 datasheet (H200 NVL)"),
    # H100 datasheet, SXM5: FP32 67; TF32 989, BF16/FP16 1,979 TFLOPS with sparsity (halved).
    Peak(("NVIDIA H100 80GB HBM3",), 67 * T, 494.5 * T, 989.5 * T, 989.5 * T,
         "NVIDIA H100 datasheet (H100 SXM)"),
    # H100 datasheet, PCIe: FP32 51; TF32 756, BF16/FP16 1,513 TFLOPS with sparsity (halved).
    Peak(("NVIDIA H100 PCIe",), 51 * T, 378 * T, 756.5 * T, 756.5 * T,
         "NVIDIA H100 datasheet (H100 PCIe)"),
    # H100 datasheet, NVL (per GPU): FP32 60; TF32 835, BF16/FP16 1,671 with sparsity (halved).
    Peak(("NVIDIA H100 NVL",), 60 * T, 417.5 * T, 835.5 * T, 835.5 * T,
         "NVIDIA H100 datasheet (H100 NVL)"),
    # A100 datasheet, 40/80 GB, SXM and PCIe alike: FP32 19.5; TF32 156; BF16/FP16 312 dense.
    Peak(("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB",
          "NVIDIA A100 80GB PCIe"), 19.5 * T, 156 * T, 312 * T, 312 * T,
         "NVIDIA A100 datasheet"),
    # L40S datasheet: FP32 91.6; TF32 183 (366 sparse); BF16/FP16 362.05 (733 sparse).
    Peak(("NVIDIA L40S",), 91.6 * T, 183 * T, 362.05 * T, 362.05 * T, "NVIDIA L40S datasheet"),
    # L4 datasheet: FP32 30.3; TF32 120, BF16/FP16 242 TFLOPS with sparsity (halved).
    Peak(("NVIDIA L4",), 30.3 * T, 60 * T, 121 * T, 121 * T, "NVIDIA L4 datasheet"),
    # A10 datasheet: FP32 31.2; TF32 62.5, BF16/FP16 125 dense (125/250 with sparsity).
    Peak(("NVIDIA A10",), 31.2 * T, 62.5 * T, 125 * T, 125 * T, "NVIDIA A10 datasheet"),
    # V100 datasheet, SXM2: FP32 15.7; tensor (FP16) 125; no TF32/BF16.
    Peak(("Tesla V100-SXM2-16GB", "Tesla V100-SXM2-32GB"), 15.7 * T, None, None, 125 * T,
         "NVIDIA V100 datasheet (V100 SXM2)"),
    # V100 datasheet, PCIe: FP32 14; tensor (FP16) 112; no TF32/BF16.
    Peak(("Tesla V100-PCIE-16GB", "Tesla V100-PCIE-32GB"), 14 * T, None, None, 112 * T,
         "NVIDIA V100 datasheet (V100 PCIe)"),
    # V100S datasheet, PCIe: FP32 16.4; tensor (FP16) 130; no TF32/BF16.
    Peak(("Tesla V100S-PCIE-32GB",), 16.4 * T, None, None, 130 * T,
         "NVIDIA V100 datasheet (V100S PCIe)"),
    # T4 datasheet: FP32 8.1; mixed precision (FP16/FP32) 65; no TF32/BF16.
    Peak(("Tesla T4",), 8.1 * T, None, None, 65 * T, "NVIDIA T4 datasheet"),
]


def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()


_BY_NAME = {_normal(name): peak for peak in PEAKS for name in peak.names}


def find_peak(device_name: str) -> Peak | None:
    """The table entry whose names include ``device_name`` (case and spacing aside), or None."""
    return _BY_NAME.get(_normal(device_name))


def peak_flops(device_name: str, dtype: str) -> tuple[float | None, str]:
    """Peak FLOP/s for ``dtype`` (fp32, tf32, bf16, fp16) and where it comes from or why not."""
    peak = find_peak(device_name)
    if peak is None:
        return None, (f"no peak FLOP/s figure for '{device_name}' in the peak table (entries "
                      "match exact variants, since SXM, PCIe and NVL boards differ)")
    value = getattr(peak, dtype)
    if value is None:
        return None, f"{device_name} has no {dtype} math mode"
    return value, peak.source
