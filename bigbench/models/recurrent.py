"""The recurrent family: rnn, lstm and gru classifiers and language models.

With default arguments ``rnn`` is the reference RNN: embedding(10 → 50) → 1-layer RNN(50,
batch_first) → linear(50 → 2) on the last time step (5,702 parameters). A common version of
this network passes an LSTM-style ``(h0, c0)`` tuple to ``nn.RNN``, which accepts only ``h0``
and fails; here every cell starts from torch's zero state, which is what those zeros meant.

On language-modelling data (``DataInfo.task == "language_modeling"``) the same layers predict
the next token at every position: the head maps each step's output to vocabulary logits.
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
    """Classify a sequence from its last recurrent layer, or predict every next token.

    Inputs: ``(N, T)`` integer tokens (with an embedding), or ``(N, T)`` / ``(N, T, F)`` real
    features. ``readout`` chooses what a classifier's head sees (``last``: the final hidden
    state; ``mean``: the outputs averaged over time; ``concat``: every step's output, so ``T``
    is fixed at ``seq_len``). With ``per_token`` the head runs on every step's output instead
    (language modelling; unidirectional, so step ``t`` sees tokens ``0 … t`` only).
    """

    def __init__(self, cell: str, vocab_size: int | None, input_features: int,
                 embedding_dim: int | None, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, num_classes: int,
                 readout: str = "last", seq_len: int | None = None,
                 per_token: bool = False) -> None:
        super().__init__()
        if readout == "concat" and seq_len is None:
            raise ValueError("readout 'concat' needs the sequence length seq_len")
        if per_token and (bidirectional or readout != "last"):
            raise ValueError("per-token outputs need a unidirectional model and readout 'last'")
        self.cell = cell
        self.readout = readout
        self.per_token = per_token
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if vocab_size else None
        width = embedding_dim if vocab_size else input_features
        self.rnn = _CELLS[cell](width, hidden_size, num_layers, batch_first=True,
                                dropout=dropout, bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        features = hidden_size * self.directions
        if readout == "concat":
            features *= seq_len  # type: ignore[operator]
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)``, or ``(N, T, num_classes)`` with ``per_token``."""
        if self.embedding is not None:
            x = self.embedding(x)
        elif x.dim() == 2:
            x = x.unsqueeze(-1)
        output, state = self.rnn(x)  # output: (N, T, H · directions), last layer only
        if self.per_token:
            return self.fc(output)
        if self.readout == "mean":
            return self.fc(output.mean(dim=1))
        if self.readout == "concat":
            return self.fc(output.flatten(1))
        final = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # h_n is (layers * directions, N, H); the last layer's directions are at the end.
        # For one direction this equals output[:, -1], the usual choice; for two, the backward
        # direction's final state is its state after reading step 0, which output[:, -1] lacks.
        last = final[-self.directions:]
        return self.fc(torch.cat(list(last), dim=-1))


def _build(cell: str, args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    language_model = data.task == "language_modeling"
    if language_model and args.bidirectional:
        raise ConfigError(f"model '{cell}' with bidirectional: true would see the tokens it "
                          "has to predict; language modelling needs bidirectional: false")
    if language_model and args.readout != "last":
        raise ConfigError(f"model.readout '{args.readout}' applies to classification; language "
                          "modelling predicts at every position, so leave readout unset")
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
    if language_model and args.num_classes is None:
        num_classes = vocab  # one logit per vocabulary entry (it may exceed the data's)
    else:
        num_classes = resolve_num_classes(args.num_classes, data)
    resolved = {
        "input": mode, "vocab_size": vocab, "embedding_dim": embedding_dim,
        "hidden_size": args.hidden_size, "num_layers": args.num_layers,
        "bidirectional": args.bidirectional, "dropout": args.dropout,
        "num_classes": num_classes,
        "output": "per_token" if language_model else "per_sequence",
    }
    if not language_model:
        resolved["readout"] = args.readout
    module = RecurrentClassifier(
        cell=cell, vocab_size=vocab, input_features=features, embedding_dim=embedding_dim,
        hidden_size=args.hidden_size, num_layers=args.num_layers,
        bidirectional=args.bidirectional, dropout=args.dropout, num_classes=num_classes,
        readout=args.readout, seq_len=shape[0], per_token=language_model,
    )
    if mode == "features":
        resolved["input_features"] = features
    return module, resolved


def build_rnn(args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """Elman RNN (tanh) classifier or language model."""
    return _build("rnn", args, data)


def build_lstm(args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """LSTM classifier or language model."""
    return _build("lstm", args, data)


def build_gru(args: RecurrentArgs, data: DataInfo) -> tuple[nn.Module, dict[str, Any]]:
    """GRU classifier or language model."""
    return _build("gru", args, data)
