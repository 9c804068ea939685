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
#: What ``infer`` becomes for a language model: prompt processing and token-by-token decoding.
LM_INFER_MODES = ("prefill", "decode")
#: Generated tokens per decode point when no --gen-tokens is given.
DEFAULT_GEN_TOKENS = 32


@dataclass(frozen=True)
class Point:
    """One configuration to measure.

    Attributes:
        model: Registry name.
        mode: ``train`` or ``infer``; for language models ``prefill`` (a forward over the
            prompt filling the KV cache) or ``decode`` (one new token per sequence per step,
            against a KV cache holding the prompt).
        precision: ``fp32``, ``bf16`` or ``fp16``.
        batch_size: Samples per step.
        compile: Run under ``torch.compile``.
        channels_last: Use the channels_last memory format.
        model_args: Model arguments beyond the defaults (from a CONFIG), as sorted pairs.
        sample_shape: Shape of one input sample.
        num_classes: Number of classes of the synthetic labels.
        vocab_size: Token vocabulary when inputs are tokens.
        task: ``classification`` or ``language_modeling`` (the synthetic targets' kind).
        gen_tokens: Decode points: tokens generated per sequence before the cache is rewound
            to the prompt (steps cycle over these positions).
        seq_axis: The sequence length is an axis of the matrix (``--seq-lens``), so it is part
            of the id; always for language models.
        power_limit_w: The GPU power limit the point runs at, W (``--power-limits``); None:
            the GPU's own setting, untouched.
        sm_clock_mhz: The SM clock the point runs locked at, MHz (``--sm-clocks``); None:
            not locked.
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
    task: str = "classification"
    gen_tokens: int | None = None
    seq_axis: bool = False
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None

    @property
    def id(self) -> str:
        """A readable unique name: ``cnn/train/fp32/bs64``, ``gpt/decode/bf16/bs8/seq128/gen32``,
        ``cnn/train/fp32/bs64/pl300W/sm1410MHz``."""
        parts = [self.model, self.mode, self.precision, f"bs{self.batch_size}"]
        if self.seq_len is not None:
            parts.append(f"seq{self.seq_len}")
        if self.gen_tokens is not None:
            parts.append(f"gen{self.gen_tokens}")
        if self.compile:
            parts.append("compile")
        if self.channels_last:
            parts.append("channels_last")
        if self.power_limit_w is not None:
            parts.append(f"pl{self.power_limit_w:g}W")
        if self.sm_clock_mhz is not None:
            parts.append(f"sm{self.sm_clock_mhz}MHz")
        return "/".join(parts)

    def settings(self) -> dict[str, Any]:
        """What identifies the point when two results are compared."""
        return {"model": self.model, "mode": self.mode, "precision": self.precision,
                "batch_size": self.batch_size, "compile": self.compile,
                "channels_last": self.channels_last, "model_args": self.model_kwargs(),
                "sample_shape": list(self.sample_shape), "seq_len": self.seq_len,
                "gen_tokens": self.gen_tokens, **self.gpu_settings()}

    def gpu_settings(self) -> dict[str, Any]:
        """The GPU settings the point runs at (only those set: results without them compare
        as before)."""
        out: dict[str, Any] = {}
        if self.power_limit_w is not None:
            out["power_limit_w"] = self.power_limit_w
        if self.sm_clock_mhz is not None:
            out["sm_clock_mhz"] = self.sm_clock_mhz
        return out

    @property
    def seq_len(self) -> int | None:
        """The sequence (window, prompt) length when it identifies the point, else None."""
        if self.task == "language_modeling" or self.seq_axis:
            return self.sample_shape[0]
        return None

    def model_kwargs(self) -> dict[str, Any]:
        """The model arguments as the config schema wants them (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_args}

    def data_info(self) -> DataInfo:
        """The synthetic data's shape facts."""
        return DataInfo(sample_shape=self.sample_shape, num_classes=self.num_classes,
                        vocab_size=self.vocab_size, task=self.task)  # type: ignore[arg-type]

    def tokens_per_sample(self) -> int | None:
        """Tokens one sample of a language-model point holds: a window (train), a prompt
        (prefill), or one new token (decode); None for other tasks."""
        if self.task != "language_modeling":
            return None
        return 1 if self.mode == "decode" else self.sample_shape[0]

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
    seq_lens: list[int] | None = None
    gen_tokens: list[int] = field(default_factory=lambda: [DEFAULT_GEN_TOKENS])
    #: GPU power limits as given (watts, or "min", "default", "max"): resolved to watts only
    #: once the GPU is open (see bigbench.benchmark.gpu_settings).
    power_limits: list[str | float] | None = None
    #: Locked SM clocks, MHz.
    sm_clocks: list[int] | None = None


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
        threads: CPU threads for torch (a CONFIG's ``train.threads``); None keeps torch's
            default.
    """

    steps: int | None = 50
    duration_s: float | None = None
    warmup: int = 10
    repeats: int = 3
    optimizer: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIMIZER))
    energy_min_window: bool = True
    threads: int | None = None


#: What a language model is benchmarked on without a CONFIG: 128-token windows of a byte
#: vocabulary (a CPU-sized default; --seq-lens changes the length).
LM_BENCH_DATA = DataInfo(sample_shape=(128,), num_classes=256, vocab_size=256,
                         task="language_modeling")

#: Named suites: the matrix and the measurement plan of each.
SUITES: dict[str, tuple[Matrix, Plan]] = {
    # Small enough to finish in well under a minute on 2 CPU cores; CI runs it.
    # Repeats are time-bound so fast points are not measured over a few milliseconds.
    # It keeps its short repeats where energy is measured too (J/sample then marked low).
    "smoke": (Matrix(models=["cnn", "rnn"], batch_sizes=[16, 64]),
              Plan(steps=None, duration_s=0.25, warmup=3, repeats=3, energy_min_window=False)),
    # The reference CNN and RNN plus LSTM and GRU and the tiny GPT at a few batch sizes.
    "standard": (Matrix(models=["cnn", "rnn", "lstm", "gru", "gpt"], batch_sizes=[32, 128, 512],
                        data={"gpt": LM_BENCH_DATA}),
                 Plan(steps=None, duration_s=1.0, warmup=10, repeats=3)),
    # Language models: training, prefill and decode tokens/s and J/token at two context
    # lengths (the CPU version; see CUDA_SUITES for the GPU one).
    "lm": (Matrix(models=["gpt"], batch_sizes=[4, 16], seq_lens=[64, 256], gen_tokens=[16],
                  data={"gpt": LM_BENCH_DATA}),
           Plan(steps=None, duration_s=0.5, warmup=3, repeats=3, energy_min_window=False)),
}

#: Suites that run a larger matrix on a CUDA GPU.
CUDA_SUITES: dict[str, tuple[Matrix, Plan]] = {
    # GPT-2 small geometry and vocabulary in bf16 at two context lengths.
    # Prompts leave room for the generated tokens inside GPT-2's 1024 positions.
    "lm": (Matrix(models=["gpt"], batch_sizes=[8, 32], precisions=["bf16"], seq_lens=[512, 896],
                  gen_tokens=[128], model_args={"gpt": {"size": "124m"}},
                  data={"gpt": DataInfo(sample_shape=(1024,), num_classes=50257,
                                        vocab_size=50257, task="language_modeling")}),
           Plan(steps=None, duration_s=2.0, warmup=5, repeats=3)),
}


def reference_data(model: str) -> DataInfo:
    """The input a model is benchmarked on when no CONFIG says otherwise."""
    return MODELS.get(model).extras["reference_data"]


def expand(matrix: Matrix) -> list[Point]:
    """Every combination of the matrix's axes, in a stable order (model, mode, precision,
    sequence length, batch size, generated tokens).

    For a language model with a KV cache ``infer`` becomes a ``prefill`` point and one
    ``decode`` point per generation length; ``seq_lens`` sets the window (prompt) length of
    sequence models.
    """
    points = []
    for model, mode, precision in itertools.product(matrix.models, matrix.modes,
                                                    matrix.precisions):
        info = matrix.data.get(model) or reference_data(model)
        args = tuple(sorted((k, _freeze(v)) for k, v in matrix.model_args.get(model, {}).items()))
        family = MODELS.get(model).extras["family"]
        shapes = [tuple(info.sample_shape)]
        if matrix.seq_lens and family.sequence_input:
            shapes = [(n, *info.sample_shape[1:]) for n in matrix.seq_lens]
        runs: list[tuple[str, int | None]] = [(mode, None)]
        if info.task == "language_modeling" and family.kv_cache and mode == "infer":
            runs = [("prefill", None), *(("decode", g) for g in matrix.gen_tokens)]
        for shape, batch, (point_mode, gen) in itertools.product(
                shapes, matrix.batch_sizes, runs):
            points.append(Point(model=model, mode=point_mode, precision=precision,
                                batch_size=batch, compile=matrix.compile,
                                channels_last=matrix.channels_last, model_args=args,
                                sample_shape=shape, num_classes=info.num_classes,
                                vocab_size=info.vocab_size, task=info.task, gen_tokens=gen,
                                seq_axis=bool(matrix.seq_lens and family.sequence_input)))
    return points


def _items(label: str, value: object, problems: list[str]) -> list[object] | None:
    """A list argument's items: a comma-separated string (a command-line flag) or a sequence
    (the Python API); None when it is neither, with the problem added."""
    if isinstance(value, str):
        items: list[object] = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        problems.append(f"{label}: give a list or a comma-separated string, not "
                        f"{type(value).__name__} {value!r}")
        return None
    if not items:
        problems.append(f"{label} {value!r}: give at least one value")
    return items


def check_names(label: str, value: object, allowed: tuple[str, ...] | list[str] | None,
                problems: list[str]) -> list[str]:
    """``a,b`` or ``["a", "b"]`` → the names, each one of ``allowed`` (any when None).

    Every problem is added to ``problems``; the names are de-duplicated in order.
    """
    names = []
    for item in _items(label, value, problems) or []:
        if not isinstance(item, str):
            problems.append(f"{label}: {item!r} is not a name (a string)")
        elif allowed is not None and item not in allowed:
            problems.append(f"{label}: '{item}' is not allowed{did_you_mean(item, allowed)}; "
                            f"choose from {one_of(list(allowed))}")
        else:
            names.append(item)
    return list(dict.fromkeys(names))


def check_sizes(label: str, value: object, maximum: int, problems: list[str]) -> list[int]:
    """``32,64``, ``[32, 64]`` or ``32`` → the sizes, each a positive integer up to ``maximum``
    (batch sizes, sequence lengths, generated tokens); every problem added to ``problems``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    sizes = []
    for item in _items(label, value, problems) or []:
        if isinstance(item, str) and item.isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= maximum:
            shown = f"'{item}'" if isinstance(item, str) else repr(item)
            problems.append(f"{label}: {shown} is not a positive integer up to {maximum}")
        else:
            sizes.append(item)
    return list(dict.fromkeys(sizes))


def parse_list(option: str, text: str, allowed: tuple[str, ...] | list[str] | None = None
               ) -> list[str]:
    """Split ``a,b,c``; with ``allowed``, every item must be one of them.

    Raises:
        ConfigError: every item that is not allowed.
    """
    problems: list[str] = []
    names = check_names(option, text, allowed, problems)
    if problems:
        raise ConfigError(*problems)
    return names


#: Named power limits: the GPU's lowest and highest allowed limit, and its default.
NAMED_POWER_LIMITS = ("min", "default", "max")


def check_power_limits(label: str, value: object, problems: list[str]) -> list[str | float]:
    """``200,300,max`` or ``[200, "max"]`` → the limits: watts (positive numbers) or a name of
    NAMED_POWER_LIMITS; every problem added to ``problems``. Whether a limit is inside the GPU's
    range is checked once the GPU is open."""
    limits: list[str | float] = []
    for item in _items(label, value, problems) or []:
        if isinstance(item, str) and item.lower() in NAMED_POWER_LIMITS:
            limits.append(item.lower())
            continue
        try:
            watts = float(item) if not isinstance(item, bool) else float("nan")
        except (TypeError, ValueError):
            watts = float("nan")
        if not 0 < watts < float("inf"):
            shown = f"'{item}'" if isinstance(item, str) else repr(item)
            problems.append(f"{label}: {shown} is not a power limit; give watts (e.g. 250) or "
                            f"{one_of(list(NAMED_POWER_LIMITS))}")
        else:
            limits.append(watts)
    return list(dict.fromkeys(limits))


#: Longest --seq-lens / --gen-tokens value (the longest data window a dataset accepts).
MAX_SEQUENCE = 65_536
#: Largest --batch-sizes value.
MAX_BATCH = 10_000_000
#: Largest --sm-clocks value, MHz (no GPU clocks near it; it only catches typos early).
MAX_SM_CLOCK = 10_000
