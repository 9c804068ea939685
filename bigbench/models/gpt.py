"""The transformer family: ``gpt``, a decoder-only language model in the GPT-2 layout.

token embedding (+ learned position embedding, or rotary embeddings on q/k) → dropout →
``n_layer`` pre-LayerNorm blocks [x + attn(ln_1(x)); x + mlp(ln_2(x))] → final LayerNorm →
LM head (tied to the token embedding by default). Attention is causal and runs through
``torch.nn.functional.scaled_dot_product_attention``, so GPUs use the flash / memory-efficient
kernels. With GPT-2 small's geometry (12 layers, 12 heads, width 768, context 1024) and GPT-2's
50,257-token vocabulary it has GPT-2's 124,439,808 parameters.

Decoding reuses past keys and values through a :class:`KVCache` (``GPT.make_cache``): a prompt is
prefilled in one call, then each new token costs one position instead of the whole prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models.specs import GPT_SIZES, GPTArgs

#: Base of the rotary frequencies (RoFormer, Su et al. 2021; also GPT-NeoX and Llama).
ROPE_BASE = 10_000.0
#: Standard deviation of GPT-2's weight initialisation.
INIT_STD = 0.02

LM_DATA_HINT = ("model 'gpt' is a language model: use data corpus, text, or npz holding a 1-D "
                "token array")


def analytic_param_count(n_layer: int, d_model: int, vocab_size: int, context: int,
                         bias: bool = True, rope: bool = False, tie_weights: bool = True) -> int:
    """Parameters of a :class:`GPT` with this geometry, counted by formula (no model built).

    Per block: attention ``4·d²`` (q, k, v and output projections) and MLP ``8·d²`` (d → 4d → d)
    weights; with ``bias`` also ``9·d`` Linear biases and ``2·d`` LayerNorm biases; two LayerNorm
    weights ``2·d``. Around them: the token embedding ``V·d``, the learned position table
    ``context·d`` (none with ``rope``), the final LayerNorm and, when untied, the LM head ``V·d``
    (no bias, as in GPT-2).
    """
    d = d_model
    norm = 2 * d if bias else d
    block = 12 * d * d + (9 * d if bias else 0) + 2 * norm
    total = vocab_size * d + n_layer * block + norm
    if not rope:
        total += context * d
    if not tie_weights:
        total += vocab_size * d
    return total


def train_flops_per_token(n_params: int, n_layer: int, context: int, d_model: int) -> int:
    """Training FLOPs per token (forward + backward): ``6·N + 12·n_layer·context·d_model``.

    ``6·N``: each parameter does a multiply-add (2 FLOPs) per token forward and twice that
    backward. ``12·L·T·d``: the attention scores and weighted sums, which have no parameters.
    This is the estimate of PaLM (Chowdhery et al. 2022, appendix B) that nanoGPT's
    ``estimate_mfu`` uses; ``N`` is whatever parameter count the caller chooses (nanoGPT leaves
    out the position table).
    """
    return 6 * n_params + 12 * n_layer * context * d_model


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, per layer, for incremental decoding.

    Attributes:
        keys: One ``(batch, n_head, max_tokens, head_dim)`` buffer per layer.
        values: Same shapes as ``keys``.
        length: Tokens already written (positions ``0 … length-1``); the next forward writes
            its tokens at ``length …`` and advances it.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0

    @property
    def batch_size(self) -> int:
        """Sequences decoded together."""
        return self.keys[0].shape[0]

    @property
    def max_tokens(self) -> int:
        """Capacity in positions."""
        return self.keys[0].shape[2]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype keys and values are stored in."""
        return self.keys[0].dtype

    def reset(self) -> None:
        """Forget every token (the buffers are reused)."""
        self.length = 0


def rope_tables(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, each ``(T, head_dim)`` in float32.

    Computed per forward from the absolute ``positions`` (cheap: ``T·head_dim/2`` products), so
    there is no buffer to keep in step with the device or with positions beyond ``context``.
    """
    exponents = torch.arange(0, head_dim, 2, device=positions.device,
                             dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (ROPE_BASE ** exponents)
    angles = torch.outer(positions.to(torch.float32), inv_freq)  # (T, head_dim / 2)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (``(B, H, T, head_dim)``) by the angles, in the "rotate half" layout."""
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection."""

    def __init__(self, d_model: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.n_head = n_head
        self.head_dim = d_model // n_head
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """``(B, T, d_model)`` → ``(B, T, d_model)``; with a cache, attend to its past too."""
        batch, steps, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, steps, self.n_head, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))  # (B, H, T, head_dim)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        dropout_p = self.dropout if self.training else 0.0
        if cache is None:
            y = functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p,
                                                        is_causal=True)
        else:
            start, end = cache.length, cache.length + steps
            # The assignment casts to the cache's dtype (e.g. bf16 under autocast → fp32 cache).
            cache.keys[layer][:, :, start:end] = k
            cache.values[layer][:, :, start:end] = v
            k = cache.keys[layer][:, :, :end].to(q.dtype)
            v = cache.values[layer][:, :, :end].to(q.dtype)
            mask = None
            if steps > 1 and start > 0:
                # Query i sits at position start + i and may see keys 0 … start + i. SDPA's
                # is_causal aligns the triangle top-left, which is wrong once there is a past.
                key_pos = torch.arange(end, device=x.device)
                query_pos = torch.arange(start, end, device=x.device)
                mask = key_pos[None, :] <= query_pos[:, None]
            y = functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p,
                # An empty cache is plain causal attention; one new token sees everything.
                is_causal=steps > 1 and start == 0)
        y = y.transpose(1, 2).contiguous().view(batch, steps, width)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """d → 4d → GELU → d, then dropout."""

    def __init__(self, d_model: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, d_model)`` → ``(B, T, d_model)``."""
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, d_model: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = CausalSelfAttention(d_model, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = MLP(d_model, dropout, bias)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """``(B, T, d_model)`` → ``(B, T, d_model)``."""
        x = x + self.attn(self.ln_1(x), rope, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer language model.

    Input ``(B, T)`` token ids (int64), output ``(B, T, vocab_size)`` next-token logits; position
    ``t`` sees tokens ``0 … t`` only.
    """

    def __init__(self, vocab_size: int, context: int, n_layer: int, n_head: int, d_model: int,
                 dropout: float = 0.0, bias: bool = True, rope: bool = False,
                 tie_weights: bool = True, checkpoint_activations: bool = False) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} is not divisible by n_head {n_head}")
        self.vocab_size = vocab_size
        self.context = context
        self.n_layer = n_layer
        self.n_head = n_head
        self.d_model = d_model
        self.head_dim = d_model // n_head
        self.rope = rope
        self.checkpoint_activations = checkpoint_activations
        self.wte = _embedding(vocab_size, d_model)
        self.wpe = None if rope else _embedding(context, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model, bias=bias)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.wte.weight
        # On the meta device (parameter counting) there is nothing to initialise, and normal_
        # there imports torch._dynamo (about a second), which `bigbench models` cannot afford.
        if self.wte.weight.device.type != "meta":
            self.apply(_init_gpt2)
            # GPT-2: each block adds two residual branches, so their output projections start
            # smaller (std / sqrt(2·n_layer)) to keep the residual stream's variance from
            # growing with depth.
            residual_std = INIT_STD / math.sqrt(2 * n_layer)
            for block in self.blocks:
                for layer in (block.attn.proj, block.mlp.proj):
                    nn.init.normal_(layer.weight, mean=0.0, std=residual_std)

    def make_cache(self, batch_size: int, max_tokens: int,
                   dtype: torch.dtype | None = None) -> KVCache:
        """Allocate an empty :class:`KVCache` on the model's device.

        Decode under ``torch.no_grad()`` or ``torch.inference_mode()`` (the cache is written in
        place); a cache made inside inference mode can only be used inside it.

        Args:
            batch_size: Sequences decoded together (every forward must pass this many).
            max_tokens: Positions it holds: prompt plus generated tokens. With learned
                positions it may not exceed ``context``.
            dtype: Storage dtype of keys and values; the model's parameter dtype when ``None``.

        Raises:
            ValueError: a size below 1, or ``max_tokens`` beyond the learned position table.
        """
        if batch_size < 1 or max_tokens < 1:
            raise ValueError(f"batch_size and max_tokens must be >= 1, got {batch_size} and "
                             f"{max_tokens}")
        if self.wpe is not None and max_tokens > self.context:
            raise ValueError(f"max_tokens {max_tokens} exceeds the model's context "
                             f"{self.context} (learned positions)")
        weight = self.wte.weight
        dtype = dtype or weight.dtype
        shape = (batch_size, self.n_head, max_tokens, self.head_dim)
        keys = [torch.zeros(shape, dtype=dtype, device=weight.device) for _ in self.blocks]
        values = [torch.zeros(shape, dtype=dtype, device=weight.device) for _ in self.blocks]
        return KVCache(keys, values)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits ``(B, T, vocab_size)`` for tokens ``idx`` ``(B, T)``.

        With a ``cache`` the tokens continue the cached ones: they take positions
        ``cache.length …``, attend to the cached keys and values, are appended to them, and
        ``cache.length`` advances by ``T``. ``last_only`` computes the logits of the last
        position alone, ``(B, 1, vocab_size)`` — all that generation needs after a prompt
        (the output head is about a third of a GPT-2 small forward pass).

        Raises:
            ValueError: ``idx`` is not 2-D, its batch differs from the cache's, or the tokens
                would pass the cache's ``max_tokens`` or the learned positions' ``context``.
        """
        if idx.dim() != 2:
            raise ValueError(f"GPT expects token ids of shape (B, T), got {tuple(idx.shape)}")
        batch, steps = idx.shape
        start = 0
        if cache is not None:
            start = cache.length
            if batch != cache.batch_size:
                raise ValueError(f"batch of {batch} sequences but the cache holds "
                                 f"{cache.batch_size}")
            if start + steps > cache.max_tokens:
                raise ValueError(f"{start} cached + {steps} new tokens exceed the cache's "
                                 f"max_tokens {cache.max_tokens}")
        end = start + steps
        if self.wpe is not None and end > self.context:
            raise ValueError(f"position {end - 1} is past the model's context {self.context} "
                             f"(learned positions)")
        positions = torch.arange(start, end, device=idx.device)
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(positions)
        x = self.drop(x)
        rope = rope_tables(positions, self.head_dim) if self.rope else None
        recompute = (self.checkpoint_activations and self.training and cache is None
                     and torch.is_grad_enabled())
        for layer, block in enumerate(self.blocks):
            if recompute:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope, cache, layer)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(self.ln_f(x))
        if cache is not None:
            cache.length = end
        return logits


def _embedding(rows: int, width: int) -> nn.Embedding:
    """An embedding left uninitialised: ``_init_gpt2`` sets it (N(0, 1) first would be wasted,
    and on the meta device it would import torch._dynamo)."""
    return nn.Embedding(rows, width, _weight=torch.empty(rows, width))


def _init_gpt2(module: nn.Module) -> None:
    """GPT-2 initialisation: N(0, 0.02) weights for Linear and Embedding, zero biases."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def resolve_geometry(args: GPTArgs) -> dict[str, int]:
    """n_layer, n_head, d_model and context: the size preset, overridden by explicit values
    (:func:`build_gpt` grows a preset's context to the data's window)."""
    preset = dict(zip(("n_layer", "n_head", "d_model", "context"), GPT_SIZES[args.size],
                      strict=True))
    return {key: getattr(args, key) if getattr(args, key) is not None else value
            for key, value in preset.items()}


def build_gpt(args: GPTArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """Build a :class:`GPT` for language-modelling ``data``; returns it and the resolved args.

    Raises:
        ConfigError: the data is not language modelling, the geometry does not split into heads,
            or the data's window is longer than an explicitly set context.
    """
    if data.task != "language_modeling" or data.vocab_size is None:
        raise ConfigError(LM_DATA_HINT)
    geometry = resolve_geometry(args)
    n_head, d_model, context = geometry["n_head"], geometry["d_model"], geometry["context"]
    if d_model % n_head:
        raise ConfigError(f"model.d_model {d_model} is not divisible by model.n_head {n_head} "
                          f"(size '{args.size}' unless set); choose n_head dividing d_model")
    head_dim = d_model // n_head
    if args.rope and head_dim % 2:
        raise ConfigError(f"model.rope needs an even head dimension, but d_model {d_model} / "
                          f"n_head {n_head} = {head_dim}; change d_model or n_head")
    if len(data.sample_shape) != 1:
        raise ConfigError(f"model 'gpt' needs token windows of shape (T,) per sample, got "
                          f"{tuple(data.sample_shape)}")
    window = data.sample_shape[0]
    if args.context is None and window > context:
        context = geometry["context"] = window  # a preset's context grows to fit the data
    if window > context:
        raise ConfigError(f"the data's windows hold {window} tokens but model.context is "
                          f"{context} (size '{args.size}' unless set); set model.context to at "
                          f"least {window} or use a shorter data.context")
    vocab = args.vocab_size if args.vocab_size is not None else data.vocab_size
    if vocab < data.vocab_size:
        raise ConfigError(f"model.vocab_size is {vocab} but the data's tokens go up to "
                          f"{data.vocab_size - 1}; set it to at least {data.vocab_size} or null")
    resolved: dict[str, Any] = {
        "size": args.size, **geometry, "head_dim": head_dim, "vocab_size": vocab,
        "dropout": args.dropout, "bias": args.bias, "rope": args.rope,
        "tie_weights": args.tie_weights, "checkpoint_activations": args.checkpoint_activations,
        "num_classes": vocab, "output": "per_token",
    }
    module = GPT(vocab_size=vocab, context=context, n_layer=geometry["n_layer"], n_head=n_head,
                 d_model=d_model, dropout=args.dropout, bias=args.bias, rope=args.rope,
                 tie_weights=args.tie_weights,
                 checkpoint_activations=args.checkpoint_activations)
    return module, resolved
