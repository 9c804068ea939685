"""FLOP counts against hand formulas, and MFU against the peak table."""

from __future__ import annotations

import pytest
import torch

from bigbench.data.info import DataInfo
from bigbench.measuring.flops import recurrent_forward_flops
from bigbench.measuring.mfu import throughput_figures
from bigbench.measuring.peaks import find_peak, peak_flops
from bigbench.models import MODELS, build_model
from bigbench.record import flops_section
from bigbench.workload.build import workload_from_module
from bigbench.workload.steps import step_flops

CPU = torch.device("cpu")
FP32_MATH = {"matmul_tf32": False, "conv_tf32": True}  # torch's CUDA defaults


def count_flops(args, info: DataInfo) -> dict:
    """FLOPs of the model ``args`` builds, counted as every command counts them."""
    return step_flops(workload_from_module(build_model(args, info), info, CPU))


def _section(counts, rate, energy_j, device_type, device_name, precision="fp32",
             math=FP32_MATH):
    figures = throughput_figures(counts["train_step_per_sample"], rate, device_type,
                                 device_name, precision, math, counts.get("cudnn_share"))
    return flops_section(counts, None, figures, energy_j, 1000)


def test_reference_cnn_forward_flops_by_hand() -> None:
    spec = MODELS.get("cnn")
    counts = count_flops(spec.config_class(name="cnn"), spec.extras["reference_data"])
    conv1 = 2 * 28 * 28 * 32 * (1 * 9)
    conv2 = 2 * 14 * 14 * 64 * (32 * 9)
    fc = 2 * 3136 * 100 + 2 * 100 * 10
    assert counts["forward_per_sample"] == conv1 + conv2 + fc
    # Backward is about twice the forward; the first conv needs no input gradient.
    assert 2.5 < counts["train_step_per_sample"] / counts["forward_per_sample"] <= 3.0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_recurrent_flops_match_the_analytic_formula(cell, layers, bidirectional) -> None:
    info = DataInfo(sample_shape=(12,), num_classes=3, vocab_size=7)
    args = MODELS.get(cell).config_class(name=cell, hidden_size=16, num_layers=layers,
                                         bidirectional=bidirectional)
    counts = count_flops(args, info)
    directions = 2 if bidirectional else 1
    head = 2 * 16 * directions * 3
    expected = recurrent_forward_flops(cell, 16, 16, layers, directions, 12) + head
    assert counts["forward_per_sample"] == expected


def test_peak_table_matching_and_unknown_devices() -> None:
    assert find_peak("NVIDIA A10") is not find_peak("NVIDIA A100-SXM4-80GB")
    assert find_peak("NVIDIA L40") is None and find_peak("AMD EPYC") is None
    value, source = peak_flops("NVIDIA H100 80GB HBM3", "bf16")
    assert value == pytest.approx(989.5e12) and "datasheet" in source
    assert peak_flops("Tesla T4", "bf16")[0] is None


def test_mfu_and_flops_per_joule() -> None:
    counts = {"forward_per_sample": 1e9, "train_step_per_sample": 3e9, "method": "x"}
    section = _section(counts, 1000.0, 600.0, "cuda", "NVIDIA A100-PCIE-40GB")
    assert section["achieved_flops_per_s"] == pytest.approx(3e12)
    assert section["peak_dtype"] == "tf32" and section["mfu"] == pytest.approx(3e12 / 156e12)
    assert section["flops_per_j"] == pytest.approx(3e9 * 1000 / 600.0)


def test_unknown_gpu_and_cpu_have_no_mfu() -> None:
    counts = {"forward_per_sample": 1, "train_step_per_sample": 3, "method": "x"}
    unknown = _section(counts, 10.0, None, "cuda", "Mystery GPU")
    assert unknown["mfu"] is None and "Mystery GPU" in unknown["reasons"]["mfu"]
    assert unknown["flops_per_j"] is None and unknown["reasons"]["flops_per_j"]
    cpu = _section(counts, 10.0, None, "cpu", "AMD EPYC")
    assert cpu["mfu"] is None and "CPU" in cpu["reasons"]["mfu"]


def test_mfu_above_one_is_recorded_as_invalid_not_raised() -> None:
    counts = {"forward_per_sample": 1e12, "train_step_per_sample": 3e12, "method": "x"}
    section = _section(counts, 1000.0, None, "cuda", "Tesla T4")
    assert section["mfu"] is None and section["mfu_invalid"] == pytest.approx(3e15 / 8.1e12)
    assert "invalid" in section["reasons"]["mfu"]


def test_peak_follows_the_precision_and_falls_back_without_tf32() -> None:
    counts = {"forward_per_sample": 1e9, "train_step_per_sample": 3e9, "method": "x"}
    bf16 = _section(counts, 1000.0, None, "cuda", "NVIDIA A100-PCIE-40GB",
                         precision="bf16")
    assert bf16["peak_dtype"] == "bf16" and bf16["mfu"] == pytest.approx(3e12 / 312e12)
    t4 = _section(counts, 1000.0, None, "cuda", "Tesla T4")
    assert t4["peak_dtype"] == "fp32" and t4["mfu"] == pytest.approx(3e12 / 8.1e12)


def test_a_model_changed_in_memory_is_counted_as_it_is() -> None:
    """A smaller layer swapped in (as structured pruning does) changes the count."""
    spec = MODELS.get("cnn")
    info = spec.extras["reference_data"]
    built = build_model(spec.config_class(name="cnn"), info)
    before = step_flops(workload_from_module(built, info, CPU))["forward_per_sample"]
    built.module.features[0] = torch.nn.Conv2d(1, 32, kernel_size=1)  # was 3×3
    after = step_flops(workload_from_module(built, info, CPU))["forward_per_sample"]
    assert before - after == 2 * 28 * 28 * 32 * (9 - 1)


@pytest.mark.parametrize(("name", "expected"), [("cnn", (0.5, 0.99)), ("rnn", (1.0, 1.0))])
def test_the_share_of_flops_in_cudnn_kernels(name, expected) -> None:
    """Convolutions (CNN) and recurrent layers (RNN) run in cuDNN on CUDA; the head does not."""
    spec = MODELS.get(name)
    info = spec.extras["reference_data"]
    share = step_flops(workload_from_module(build_model(spec.config_class(name=name), info),
                                            info, CPU))["cudnn_share"]
    assert expected[0] <= share <= expected[1]
