"""The recurrent family: rnn, lstm and gru classifiers.

With default arguments ``rnn`` is the reference RNN: embedding(10 → 50) → 1-layer RNN(50,
batch_first) → linear(50 → 2) on the last time step (5,702 parameters). A common version of
this network passes an LSTM-style ``(h0, c0)`` tuple to ``nn.RNN``, which accepts only ``h0``
and fails; here every cell starts from torch's zero state, which is what those zeros meant.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models.build import resolve_num_classes
from bigbench.models.specs import RecurrentArgs

_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentClassifier(nn.Module):
    """Classify a sequence from the final hidden state of its last recurrent layer.

    Inputs: ``(N, T)`` integer tokens (with an embedding), or ``(N, T)`` / ``(N, T, F)`` real
    features.
    """

    def __init__(self, cell: str, vocab_size: int | None, input_features: int,
                 embedding_dim: int | None, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, num_classes: int) -> None:
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if vocab_size else None
        width = embedding_dim if vocab_size else input_features
        self.rnn = _CELLS[cell](width, hidden_size, num_layers, batch_first=True,
                                dropout=dropout, bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        self.fc = nn.Linear(hidden_size * self.directions, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        if self.embedding is not None:
            x = self.embedding(x)
        elif x.dim() == 2:
            x = x.unsqueeze(-1)
        _, state = self.rnn(x)
        final = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # h_n is (layers * directions, N, H); the last layer's directions are at the end.
        # For one direction this equals output[:, -1], the usual choice.
        last = final[-self.directions:]
        return self.fc(torch.cat(list(last), dim=-1))


def _build(cell: str, args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    mode = args.input
    if mode == "auto":
        mode = "tokens" if data.is_tokens else "features"
    shape = data.sample_shape
    if mode == "tokens":
        if not data.is_tokens:
            raise ConfigError(f"model.input is 'tokens' but the data holds real values of shape "
                              f"{tuple(shape)}; use input: features")
        if len(shape) != 1:
            raise ConfigError(
                f"token sequences must have shape (T,) per sample, got {tuple(shape)}")
        vocab = args.vocab_size if args.vocab_size is not None else data.vocab_size
        if vocab < data.vocab_size:  # type: ignore[operator]
            raise ConfigError(
                f"model.vocab_size is {vocab} but the data's tokens go up to "
                f"{data.vocab_size - 1}; set it to at least {data.vocab_size} or null")
        features, embedding_dim = 0, args.embedding_dim or args.hidden_size
    else:
        if data.is_tokens:
            raise ConfigError("model.input is 'features' but the data holds integer tokens; "
                              "use input: tokens")
        if len(shape) not in (1, 2):
            raise ConfigError(f"feature sequences must have shape (T,) or (T, F) per sample, "
                              f"got {tuple(shape)}")
        vocab, embedding_dim = None, None
        features = shape[1] if len(shape) == 2 else 1
    resolved = {
        "input": mode, "vocab_size": vocab, "embedding_dim": embedding_dim,
        "hidden_size": args.hidden_size, "num_layers": args.num_layers,
        "bidirectional": args.bidirectional, "dropout": args.dropout,
        "num_classes": resolve_num_classes(args.num_classes, data),
    }
    module = RecurrentClassifier(
        cell=cell, vocab_size=vocab, input_features=features, embedding_dim=embedding_dim,
        hidden_size=args.hidden_size, num_layers=args.num_layers,
        bidirectional=args.bidirectional, dropout=args.dropout,
        num_classes=resolved["num_classes"],
    )
    if mode == "features":
        resolved["input_features"] = features
    return module, resolved


def build_rnn(args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """Elman RNN (tanh) classifier."""
    return _build("rnn", args, data)


def build_lstm(args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """LSTM classifier."""
    return _build("lstm", args, data)


def build_gru(args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """GRU classifier."""
    return _build("gru", args, data)
