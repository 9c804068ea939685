"""rnn / lstm / gru as language models, and the classification readouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models import MODELS, build_model

LM = DataInfo(sample_shape=(12,), num_classes=30, vocab_size=30, task="language_modeling")
TOKENS = DataInfo(sample_shape=(7,), num_classes=3, vocab_size=5)


def _recurrent(name: str, info: DataInfo, **args):
    return build_model(MODELS.get(name).config_class(name=name, **args), info)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_predicts_every_position(cell) -> None:
    built = _recurrent(cell, LM, num_layers=2)
    assert built.args["num_classes"] == 30 and built.args["output"] == "per_token"
    assert "readout" not in built.args
    x = torch.randint(0, 30, (4, 12))
    logits = built.module(x)
    assert logits.shape == (4, 12, 30)
    nn.functional.cross_entropy(logits.reshape(-1, 30), x.roll(-1, 1).reshape(-1)).backward()
    assert all(p.grad is not None for p in built.module.parameters())


def test_language_model_is_causal() -> None:
    torch.manual_seed(0)
    module = _recurrent("lstm", LM).module.eval()
    x = torch.randint(0, 30, (2, 12))
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 30
    with torch.no_grad():
        a, b = module(x), module(changed)
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_language_model_vocabulary_may_exceed_the_data() -> None:
    built = _recurrent("gru", LM, vocab_size=40)
    assert built.args["num_classes"] == 40
    assert built.module(torch.randint(0, 30, (2, 12))).shape == (2, 12, 40)


def test_language_model_refusals() -> None:
    with pytest.raises(ConfigError, match="bidirectional: false"):
        _recurrent("rnn", LM, bidirectional=True)
    with pytest.raises(ConfigError, match="readout 'mean' applies to classification"):
        _recurrent("gru", LM, readout="mean")
    with pytest.raises(ConfigError, match="num_classes is 10"):
        _recurrent("lstm", LM, num_classes=10)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_readouts(bidirectional) -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 5, (2, 7))
    directions = 2 if bidirectional else 1
    mean = _recurrent("gru", TOKENS, readout="mean", bidirectional=bidirectional)
    assert mean.args["readout"] == "mean" and mean.args["output"] == "per_sequence"
    module = mean.module
    output, _ = module.rnn(module.embedding(x))
    torch.testing.assert_close(module(x), module.fc(output.mean(dim=1)))
    concat = _recurrent("lstm", TOKENS, readout="concat", bidirectional=bidirectional,
                        hidden_size=8)
    assert concat.module.fc.in_features == 7 * 8 * directions
    assert concat.module(x).shape == (2, 3)


def test_last_readout_is_the_reference_model() -> None:
    """Same parameters, names, order and initial values as the model before readouts."""
    torch.manual_seed(0)
    built = _recurrent("rnn", DataInfo((20,), 2, vocab_size=10))
    torch.manual_seed(0)
    reference = nn.ModuleDict({"embedding": nn.Embedding(10, 50),
                               "rnn": nn.RNN(50, 50, 1, batch_first=True),
                               "fc": nn.Linear(50, 2)})
    ours, theirs = built.module.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert built.params == 5_702 and built.args["readout"] == "last"
    x = torch.randint(0, 10, (3, 20))
    out, _ = reference["rnn"](reference["embedding"](x))
    assert torch.equal(built.module(x), reference["fc"](out[:, -1]))
