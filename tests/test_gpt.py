"""The gpt model: parameter counts, causality, initial loss, KV cache, checkpointing, presets."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models import MODELS, build_model
from bigbench.models.gpt import GPT, analytic_param_count, train_flops_per_token
from bigbench.models.specs import GPT_SIZES


def _lm_data(window: int = 16, vocab: int = 256) -> DataInfo:
    return DataInfo(sample_shape=(window,), num_classes=vocab, vocab_size=vocab,
                    task="language_modeling")


def _gpt(data: DataInfo, **args):
    return build_model(MODELS.get("gpt").config_class(name="gpt", **args), data)


def _small(**kwargs) -> GPT:
    torch.manual_seed(0)
    geometry = {"vocab_size": 50, "context": 32, "n_layer": 2, "n_head": 4, "d_model": 32}
    return GPT(**{**geometry, **kwargs}).eval()


@pytest.mark.parametrize(
    "geometry",
    [
        {"n_layer": 2, "d_model": 64, "vocab_size": 256, "context": 128},
        {"n_layer": 3, "d_model": 48, "vocab_size": 101, "context": 40, "bias": False},
        {"n_layer": 1, "d_model": 32, "vocab_size": 77, "context": 64, "rope": True},
        {"n_layer": 2, "d_model": 32, "vocab_size": 77, "context": 64, "tie_weights": False},
        {"n_layer": 2, "d_model": 16, "vocab_size": 9, "context": 8, "bias": False,
         "rope": True, "tie_weights": False},
    ],
)
def test_parameter_count_matches_the_formula(geometry) -> None:
    with torch.device("meta"):
        model = GPT(n_head=4, **geometry)
    assert sum(p.numel() for p in model.parameters()) == analytic_param_count(**geometry)


def test_gpt2_small_geometry_has_gpt2s_parameter_count() -> None:
    with torch.device("meta"):
        built = _gpt(_lm_data(1024, 50257), size="124m")
    assert built.params == 124_439_808
    assert analytic_param_count(12, 768, 50257, 1024) == 124_439_808
    # PaLM / nanoGPT: 6N + 12·L·T·d.
    assert train_flops_per_token(124_439_808, 12, 1024, 768) == (
        6 * 124_439_808 + 12 * 12 * 1024 * 768)


def test_presets_are_counted_on_the_meta_device_and_tiny_is_small() -> None:
    for size, (n_layer, _, d_model, context) in GPT_SIZES.items():
        with torch.device("meta"):
            built = _gpt(_lm_data(context, 256), size=size)
        assert built.params == analytic_param_count(n_layer, d_model, 256, context)
        assert next(built.module.parameters()).device.type == "meta"
    assert _gpt(_lm_data(128, 256)).params < 1_000_000


def test_one_training_step_reaches_every_parameter() -> None:
    built = _gpt(_lm_data(16, 64), dropout=0.1)
    built.module.train()
    x = torch.randint(0, 64, (3, 16))
    logits = built.module(x)
    assert logits.shape == (3, 16, 64) and torch.isfinite(logits).all()
    functional.cross_entropy(logits.reshape(-1, 64), x.roll(-1, 1).reshape(-1)).backward()
    missing = [n for n, p in built.module.named_parameters() if p.grad is None]
    assert not missing
    assert built.module.lm_head.weight is built.module.wte.weight


@pytest.mark.parametrize("rope", [False, True])
def test_causal_a_position_never_sees_later_tokens(rope) -> None:
    model = _small(rope=rope)
    x = torch.randint(0, 50, (2, 20))
    changed = x.clone()
    changed[:, 12:] = torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_initial_loss_is_near_uniform() -> None:
    torch.manual_seed(0)
    built = _gpt(_lm_data(128, 256))
    x = torch.randint(0, 256, (8, 128))
    with torch.no_grad():
        logits = built.module.eval()(x)
    loss = functional.cross_entropy(logits.reshape(-1, 256), x.roll(-1, 1).reshape(-1))
    assert abs(loss.item() - math.log(256)) < 0.1 * math.log(256)


@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_decoding_matches_the_full_forward(rope) -> None:
    model = _small(rope=rope)
    x = torch.randint(0, 50, (2, 14))
    with torch.no_grad():
        full = model(x)
        cache = model.make_cache(batch_size=2, max_tokens=20)
        pieces = [model(x[:, :5], cache)]                 # prefill on an empty cache
        pieces += [model(x[:, t:t + 1], cache) for t in range(5, 9)]  # token by token
        pieces.append(model(x[:, 9:14], cache))           # a chunk on a non-empty cache
    assert cache.length == 14
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_refuses_to_overflow() -> None:
    model = _small()
    cache = model.make_cache(batch_size=1, max_tokens=4)
    with torch.no_grad():
        model(torch.zeros(1, 3, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="max_tokens 4"):
            model(torch.zeros(1, 2, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="batch of 2"):
            model(torch.zeros(2, 1, dtype=torch.long), cache)
        with pytest.raises(ValueError, match="context 32"):
            model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="context 32"):
        model.make_cache(batch_size=1, max_tokens=33)
    # Rotary positions have no table, so a RoPE model may decode past its context.
    rope = _small(rope=True)
    with torch.no_grad():
        assert rope(torch.zeros(1, 40, dtype=torch.long), rope.make_cache(1, 40)).shape[1] == 40


def test_kv_cache_under_bf16_autocast_keeps_its_dtype() -> None:
    model = _small()
    x = torch.randint(0, 50, (2, 10))
    for dtype in (None, torch.bfloat16):
        cache = model.make_cache(2, 10, dtype=dtype)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            reference = model(x).float()
            decoded = torch.cat([model(x[:, :6], cache), model(x[:, 6:7], cache),
                                 model(x[:, 7:], cache)], dim=1).float()
        assert cache.dtype == (dtype or torch.float32)
        torch.testing.assert_close(decoded, reference, atol=0.1, rtol=0.05)


def test_checkpointing_gives_the_same_loss_and_gradients(monkeypatch) -> None:
    import torch.utils.checkpoint as checkpoint_module

    model = _small(dropout=0.0).train()
    x = torch.randint(0, 50, (2, 16))

    def loss_and_grads():
        model.zero_grad()
        logits = model(x)
        loss = functional.cross_entropy(logits.reshape(-1, 50), x.roll(-1, 1).reshape(-1))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    plain_loss, plain_grads = loss_and_grads()
    calls = []
    real = checkpoint_module.checkpoint
    monkeypatch.setattr(checkpoint_module, "checkpoint",
                        lambda *a, **k: calls.append(k) or real(*a, **k))
    model.checkpoint_activations = True
    loss, grads = loss_and_grads()
    assert len(calls) == model.n_layer and calls[0]["use_reentrant"] is False
    torch.testing.assert_close(loss, plain_loss, atol=1e-6, rtol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-6, rtol=1e-5)
    calls.clear()
    with torch.no_grad():
        model(x)  # no gradients, nothing to save: no recompute
    model.eval()(x)
    assert not calls


def test_presets_resolve_and_explicit_values_win() -> None:
    built = _gpt(_lm_data(256, 300), size="mini")
    assert {k: built.args[k] for k in ("size", "n_layer", "n_head", "d_model", "context",
                                       "vocab_size", "head_dim")} == {
        "size": "mini", "n_layer": 4, "n_head": 4, "d_model": 128, "context": 256,
        "vocab_size": 300, "head_dim": 32}
    assert set(built.args) >= {"dropout", "bias", "rope", "tie_weights",
                               "checkpoint_activations", "num_classes", "output"}
    with torch.device("meta"):
        custom = _gpt(_lm_data(512, 300), size="small", n_layer=2, context=512, vocab_size=320)
    assert (custom.args["n_layer"], custom.args["n_head"], custom.args["d_model"],
            custom.args["context"], custom.args["vocab_size"]) == (2, 6, 384, 512, 320)


def test_a_preset_context_grows_to_the_data_window() -> None:
    assert _gpt(_lm_data(256)).args["context"] == 256  # tiny's preset is 128
    assert _gpt(_lm_data(64)).args["context"] == 128


@pytest.mark.parametrize(
    ("data", "args", "message"),
    [
        (_lm_data(16), {"d_model": 100, "n_head": 3}, "not divisible by model.n_head 3"),
        (_lm_data(16), {"d_model": 6, "n_head": 2, "rope": True}, "even head dimension"),
        (_lm_data(256), {"context": 128}, "windows hold 256 tokens but model.context is 128"),
        (_lm_data(16, 300), {"vocab_size": 256}, "vocab_size is 256"),
        (DataInfo((16,), 2, vocab_size=10), {}, "model 'gpt' is a language model"),
        (DataInfo((1, 28, 28), 10), {}, "use data corpus, text, or npz"),
    ],
)
def test_mismatches_are_config_errors(data, args, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _gpt(data, **args)


def test_models_command_lists_the_gpt_sizes(cli) -> None:
    rows = {row["name"]: row for row in json.loads(cli("models", "--json").stdout)}
    gpt = rows["gpt"]
    assert gpt["family"] == "transformer"
    sizes = {s["size"]: s for s in gpt["sizes"]}
    assert list(sizes) == list(GPT_SIZES)
    assert sizes["124m"]["params"] == 124_439_808
    assert (sizes["1.3b"]["n_layer"], sizes["1.3b"]["d_model"], sizes["1.3b"]["context"]) == (
        24, 2048, 2048)
    assert gpt["params"] == sizes["tiny"]["params"]
    table = cli("models")
    assert table.exit_code == 0 and "124,439,808" in table.stdout


def test_last_only_logits_equal_the_last_position_of_the_full_forward() -> None:
    model = _small().eval()
    idx = torch.randint(0, 50, (2, 12))
    with torch.inference_mode():
        full = model(idx)
        last = model(idx, last_only=True)
        cache = model.make_cache(2, 12)
        cached_last = model(idx, cache=cache, last_only=True)
    assert last.shape == (2, 1, 50)
    torch.testing.assert_close(last[:, 0], full[:, -1])
    torch.testing.assert_close(cached_last[:, 0], full[:, -1], atol=1e-5, rtol=1e-5)
    assert cache.length == 12  # the whole prompt was cached, not just the last position
