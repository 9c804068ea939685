"""What a benchmark runs: points (one configuration each), suites, and matrix expansion.

Torch-free, so the matrix can be validated and listed before anything heavy is imported.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError, did_you_mean, one_of
from bigbench.models.registry import MODELS

PRECISIONS = ("fp32", "bf16", "fp16")
MODES = ("train", "infer")


@dataclass(frozen=True)
class Point:
    """One configuration to measure.

    Attributes:
        model: Registry name.
        mode: ``train`` or ``infer``.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        batch_size: Samples per step.
        compile: Run under ``torch.compile``.
        channels_last: Use the channels_last memory format.
        model_args: Model arguments beyond the defaults (from a CONFIG), as sorted pairs.
        sample_shape: Shape of one input sample.
        num_classes: Number of classes of the synthetic labels.
        vocab_size: Token vocabulary when inputs are tokens.
    """

    model: str
    mode: str
    precision: str
    batch_size: int
    compile: bool = False
    channels_last: bool = False
    model_args: tuple[tuple[str, Any], ...] = ()
    sample_shape: tuple[int, ...] = ()
    num_classes: int = 10
    vocab_size: int | None = None

    @property
    def id(self) -> str:
        """A readable unique name, e.g. ``cnn/train/fp32/bs64``."""
        parts = [self.model, self.mode, self.precision, f"bs{self.batch_size}"]
        if self.compile:
            parts.append("compile")
        if self.channels_last:
            parts.append("channels_last")
        return "/".join(parts)

    def settings(self) -> dict[str, Any]:
        """What identifies the point when two results are compared."""
        return {"model": self.model, "mode": self.mode, "precision": self.precision,
                "batch_size": self.batch_size, "compile": self.compile,
                "channels_last": self.channels_last, "model_args": self.model_kwargs(),
                "sample_shape": list(self.sample_shape)}

    def model_kwargs(self) -> dict[str, Any]:
        """The model arguments as the config schema wants them (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_args}

    def data_info(self) -> DataInfo:
        """The synthetic data's shape facts."""
        return DataInfo(sample_shape=self.sample_shape, num_classes=self.num_classes,
                        vocab_size=self.vocab_size)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (to hand a point to an isolated subprocess)."""
        out = asdict(self)
        out["model_args"] = [list(pair) for pair in self.model_args]
        out["sample_shape"] = list(self.sample_shape)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        """Inverse of :meth:`as_dict`."""
        values = dict(data)
        values["model_args"] = tuple((k, _freeze(v)) for k, v in values["model_args"])
        values["sample_shape"] = tuple(values["sample_shape"])
        return cls(**values)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass
class Matrix:
    """The axes of a benchmark; :func:`expand` turns them into points."""

    models: list[str]
    batch_sizes: list[int]
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    modes: list[str] = field(default_factory=lambda: ["train", "infer"])
    compile: bool = False
    channels_last: bool = False
    model_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, DataInfo] = field(default_factory=dict)


#: The optimizer of training points when no CONFIG names one (SGD with momentum: the most
#: common baseline, and cheap enough that the step's cost is the model's).
DEFAULT_OPTIMIZER: dict[str, Any] = {"name": "sgd", "lr": 1e-3, "momentum": 0.9,
                                     "weight_decay": 0.0}


@dataclass
class Plan:
    """How each point is measured.

    Attributes:
        steps: Measured steps per repeat (unless ``duration_s``).
        duration_s: Measured seconds per repeat (at least).
        warmup: Warm-up steps before the repeats.
        repeats: Measured repeats per point.
        optimizer: Optimizer config of training points (a CONFIG's, else DEFAULT_OPTIMIZER).
        energy_min_window: When energy is measured, lengthen each repeat to the shortest
            window whose energy can reach quality "ok" (off: faster, J/sample marked low).
    """

    steps: int | None = 50
    duration_s: float | None = None
    warmup: int = 10
    repeats: int = 3
    optimizer: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIMIZER))
    energy_min_window: bool = True


#: Named suites: the matrix and the measurement plan of each.
SUITES: dict[str, tuple[Matrix, Plan]] = {
    # Small enough to finish in well under a minute on 2 CPU cores; CI runs it.
    # Repeats are time-bound so fast points are not measured over a few milliseconds.
    # It keeps its short repeats where energy is measured too (J/sample then marked low).
    "smoke": (Matrix(models=["cnn", "rnn"], batch_sizes=[16, 64]),
              Plan(steps=None, duration_s=0.25, warmup=3, repeats=3, energy_min_window=False)),
    # The reference CNN and RNN plus LSTM and GRU at a few batch sizes, both modes.
    "standard": (Matrix(models=["cnn", "rnn", "lstm", "gru"], batch_sizes=[32, 128, 512]),
                 Plan(steps=None, duration_s=1.0, warmup=10, repeats=3)),
}


def reference_data(model: str) -> DataInfo:
    """The input a model is benchmarked on when no CONFIG says otherwise."""
    return MODELS.get(model).extras["reference_data"]


def expand(matrix: Matrix) -> list[Point]:
    """Every combination of the matrix's axes, in a stable order (model, mode, precision,
    batch size)."""
    points = []
    for model, mode, precision, batch in itertools.product(
            matrix.models, matrix.modes, matrix.precisions, matrix.batch_sizes):
        info = matrix.data.get(model) or reference_data(model)
        args = tuple(sorted((k, _freeze(v)) for k, v in matrix.model_args.get(model, {}).items()))
        points.append(Point(model=model, mode=mode, precision=precision, batch_size=batch,
                            compile=matrix.compile, channels_last=matrix.channels_last,
                            model_args=args, sample_shape=tuple(info.sample_shape),
                            num_classes=info.num_classes, vocab_size=info.vocab_size))
    return points


def parse_list(option: str, text: str, allowed: tuple[str, ...] | list[str] | None = None
               ) -> list[str]:
    """Split ``a,b,c``; with ``allowed``, every item must be one of them."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{option} {text!r}: give a comma-separated list")
    for item in items:
        if allowed is not None and item not in allowed:
            raise ConfigError(f"{option}: '{item}' is not allowed{did_you_mean(item, allowed)}; "
                              f"choose from {one_of(list(allowed))}")
    return list(dict.fromkeys(items))


def parse_batch_sizes(text: str) -> list[int]:
    """``32,64`` → [32, 64]; every size a positive integer."""
    sizes = []
    for item in parse_list("--batch-sizes", text):
        if not item.isdigit() or int(item) < 1:
            raise ConfigError(f"--batch-sizes: '{item}' is not a positive integer")
        sizes.append(int(item))
    return sizes
