"""Every registered model: shapes, finite outputs, a gradient for every parameter."""

from __future__ import annotations

import pytest
import torch

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models import MODELS, build_model
from bigbench.workload.task import task_for


def _inputs(info: DataInfo, n: int = 3) -> torch.Tensor:
    if info.is_tokens:
        return torch.randint(0, info.vocab_size, (n, *info.sample_shape))
    return torch.randn(n, *info.sample_shape)


@pytest.mark.parametrize("spec", list(MODELS), ids=lambda s: s.name)
def test_every_model_trains_one_step(spec) -> None:
    torch.manual_seed(0)
    info = spec.extras["reference_data"]
    built = build_model(spec.config_class(name=spec.name), info)
    logits = built.module(_inputs(info))
    # A language model predicts at every position; a classifier once per sample.
    per_sample = (*info.sample_shape,) if info.task == "language_modeling" else ()
    assert logits.shape == (3, *per_sample, info.num_classes)
    assert torch.isfinite(logits).all()
    task = task_for(info)
    task.loss(logits, task.synthetic_targets(3, info, None, torch.device("cpu"))).backward()
    missing = [n for n, p in built.module.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert built.params == sum(p.numel() for p in built.module.parameters())


def test_default_parameter_counts_match_the_reference_models() -> None:
    cnn = MODELS.get("cnn")
    rnn = MODELS.get("rnn")
    assert build_model(cnn.config_class(name="cnn"), cnn.extras["reference_data"]).params == 333_526
    assert build_model(rnn.config_class(name="rnn"), rnn.extras["reference_data"]).params == 5_702


def test_reference_cnn_layout() -> None:
    spec = MODELS.get("cnn")
    module = build_model(spec.config_class(name="cnn"), spec.extras["reference_data"]).module
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    # The classic bug: sizing it for 64*28*28 inputs; after two 2x2 pools a 28x28 image is 7x7.
    shapes = [(lin.in_features, lin.out_features) for lin in linears]
    assert shapes == [(64 * 7 * 7, 100), (100, 10)]


def _cnn(info: DataInfo, **args):
    return build_model(MODELS.get("cnn").config_class(name="cnn", **args), info)


@pytest.mark.parametrize(
    ("sample_shape", "args", "conv_dims", "in_channels"),
    [
        ((32,), {}, 1, 1),                      # (N, L): 1-D, one channel
        ((3, 32), {"conv_dims": 1}, 1, 3),      # (N, C, L): 1-D with channels
        ((28, 28), {}, 2, 1),                   # (N, H, W): 2-D, one channel
        ((3, 16, 16), {}, 2, 3),                # (N, C, H, W)
    ],
)
def test_cnn_shape_conventions(sample_shape, args, conv_dims, in_channels) -> None:
    info = DataInfo(sample_shape=sample_shape, num_classes=4)
    built = _cnn(info, **args)
    assert built.args["conv_dims"] == conv_dims and built.args["in_channels"] == in_channels
    assert built.module(torch.randn(2, *sample_shape)).shape == (2, 4)


def test_cnn_configurable_layers() -> None:
    info = DataInfo(sample_shape=(1, 28, 28), num_classes=10)
    built = _cnn(info, channels=[8, 16, 32], kernel_size=5, pool_type="avg", hidden=[64, 32],
                 dropout=0.1)
    assert built.args["padding"] == 2
    assert built.module(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    ("info", "args", "message"),
    [
        (DataInfo((1, 8, 8), 10), {"channels": [4, 4, 4, 4]}, "shrinks to nothing"),
        (DataInfo((1, 28, 28), 10), {"in_channels": 3}, "in_channels is 3"),
        (DataInfo((1, 28, 28), 10), {"num_classes": 5}, "num_classes is 5"),
        (DataInfo((20,), 2, vocab_size=10), {}, "integer tokens"),
        (DataInfo((2, 3, 4, 5), 2), {}, "needs samples of shape"),
    ],
)
def test_cnn_mismatches_are_config_errors(info, args, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _cnn(info, **args)


def _recurrent(name: str, info: DataInfo, **args):
    return build_model(MODELS.get(name).config_class(name=name, **args), info)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(
    ("info", "inputs"),
    [
        (DataInfo((7,), 3, vocab_size=5), lambda: torch.randint(0, 5, (2, 7))),   # (N, T) tokens
        (DataInfo((7,), 3), lambda: torch.randn(2, 7)),                            # (N, T) floats
        (DataInfo((7, 4), 3), lambda: torch.randn(2, 7, 4)),                       # (N, T, F)
    ],
)
def test_recurrent_shape_conventions(cell, info, inputs) -> None:
    built = _recurrent(cell, info, num_layers=2, dropout=0.1, bidirectional=True)
    assert built.module(inputs()).shape == (2, 3)


def test_unidirectional_uses_the_last_time_step() -> None:
    torch.manual_seed(0)
    built = _recurrent("rnn", DataInfo((6,), 2, vocab_size=4))
    module = built.module
    x = torch.randint(0, 4, (3, 6))
    out, _ = module.rnn(module.embedding(x))
    assert torch.allclose(module(x), module.fc(out[:, -1, :]))


def test_recurrent_mismatches_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="vocab_size is 3"):
        _recurrent("rnn", DataInfo((6,), 2, vocab_size=10), vocab_size=3)
    with pytest.raises(ConfigError, match="input is 'tokens'"):
        _recurrent("gru", DataInfo((6,), 2), input="tokens")
    with pytest.raises(ConfigError, match="shape"):
        _recurrent("lstm", DataInfo((6, 2, 2), 2))
