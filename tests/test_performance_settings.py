"""The speed settings: recorded in run.json, each can be turned off, each changes the run."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_CNN, load_run


def test_defaults_are_recorded(cli, write_config, tmp_path) -> None:
    assert cli("train", write_config(TINY_CNN), "--out", tmp_path / "r").exit_code == 0
    performance = load_run(tmp_path / "r")["performance"]
    assert performance["channels_last"] is True  # 'auto' for a 2-D CNN
    assert performance["precision"] == "fp32" and performance["compile"] is False
    assert performance["threads"] == torch.get_num_threads()
    assert performance["zero_grad_set_to_none"] is True
    assert "device-side" in performance["input_pipeline"]


def test_settings_can_be_turned_off_and_on(cli, write_config, tmp_path) -> None:
    config = write_config(TINY_CNN)
    result = cli("train", config, "--out", tmp_path / "r", "--set", "train.channels_last=false",
                 "--set", "train.precision=bf16", "--set", "train.threads=1")
    assert result.exit_code == 0, result.stderr
    performance = load_run(tmp_path / "r")["performance"]
    assert performance["channels_last"] is False and performance["precision"] == "bf16"
    assert performance["threads"] == 1


def _workload(write_config, *overrides: str):
    from bigbench.config import load_config
    from bigbench.workload.build import build_workload

    return build_workload(load_config(write_config(TINY_CNN), list(overrides)))


def _last_conv_weight(workload) -> torch.Tensor:
    return [m for m in workload.model.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight


def _dtype_seen_by_the_model(workload) -> torch.dtype:
    """Run one training step and return the dtype the first convolution produced."""
    from bigbench.workload.steps import build_step

    seen = []
    conv = next(m for m in workload.model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    build_step(workload, "train")(next(iter(workload.batcher.epoch(0))))
    handle.remove()
    return seen[0]


def test_each_setting_changes_how_the_model_runs(write_config) -> None:
    fast = _workload(write_config, "train.precision=bf16", "train.threads=1")
    weight = _last_conv_weight(fast)  # 4 input channels: the two layouts really differ
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    assert _dtype_seen_by_the_model(fast) == torch.bfloat16
    assert torch.get_num_threads() == 1
    plain = _workload(write_config, "train.channels_last=false", "train.threads=2")
    weight = _last_conv_weight(plain)
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
    assert _dtype_seen_by_the_model(plain) == torch.float32
    assert torch.get_num_threads() == 2


def test_matmul_precision_sets_torch_and_is_recorded(write_config) -> None:
    workload = _workload(write_config, "train.matmul_precision=high")
    assert torch.get_float32_matmul_precision() == "high"
    assert workload.performance["matmul_precision"] == "high"
    assert workload.performance["matmul_tf32"] is None  # CPU: no TF32 units to report
    _workload(write_config)
    assert torch.get_float32_matmul_precision() == "highest"


def test_recurrent_models_never_use_channels_last(cli, write_config, tmp_path) -> None:
    config = write_config("""\
        model: {name: rnn}
        data: {name: tokens, size: 64, test_size: 0}
        train: {max_steps: 4, batch_size: 8, warmup_steps: 1}
        device: cpu
        """)
    assert cli("train", config, "--out", tmp_path / "r").exit_code == 0
    assert load_run(tmp_path / "r")["performance"]["channels_last"] is False


def test_compile_reports_its_cost_and_payback(cli, write_config, tmp_path) -> None:
    config = write_config(TINY_CNN.replace("max_steps: 12", "max_steps: 20"))
    result = cli("train", config, "--out", tmp_path / "r", "--set", "train.compile=true")
    assert result.exit_code == 0, result.stderr
    record = load_run(tmp_path / "r")
    section = record["compile"]
    assert record["windows"]["compile"]["steps"] == 1
    assert section["first_step_s"] > 0 and section["eager_step_s"] > 0
    assert section["compiled_step_s"] == record["throughput"]["step_time_s"]["p50"]
    assert section["overhead_s"] == pytest.approx(section["first_step_s"] -
                                                  section["compiled_step_s"])
    if section["payback_steps"] is None:
        assert "never pays back" in section["reasons"]["payback_steps"]
    else:
        saving = section["eager_step_s"] - section["compiled_step_s"]
        assert section["payback_steps"] * saving >= section["overhead_s"]
