"""The ``optimize:`` section: which compressed variants ``bigbench optimize`` builds and measures.

Each variant is one recipe applied to the base model (the weights of ``--from RUN_DIR``, or the
model trained from the config first): ``prune`` (magnitude pruning, unstructured or whole
channels), ``quantize`` (torchao int8/int4) or ``distill`` (a smaller student trained from the
base as teacher). Every variant is then measured on the same device, interleaved with the base.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from bigbench.config.registries import ModelConfig
from bigbench.strict import StrictModel

#: Variant names become folder names under ``variants/``.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._%-]{0,63}$"


def _percent(amount: float) -> str:
    """0.5 → '50%', 0.125 → '12.5%' (for default variant names)."""
    return f"{amount * 100:g}%"


class PruneVariant(StrictModel):
    """Magnitude pruning: the smallest weights (or channels) are removed."""

    kind: Literal["prune"] = Field(description="Prune the base model.")
    name: str | None = Field(None, pattern=NAME_PATTERN,
                             description="Variant name; null: derived (prune-50%, "
                             "structured-50%). A list of amounts appends each amount.")
    method: Literal["unstructured", "structured"] = Field(
        "unstructured",
        description="'unstructured': global L1 magnitude over every conv/linear/recurrent "
        "weight (zeros in dense tensors: smaller when compressed, not faster on dense kernels); "
        "'structured': removes whole conv channels and hidden neurons by L1 norm and rebuilds a "
        "smaller dense model (cnn family).")
    amount: float | list[float] = Field(
        description="Fraction of weights (unstructured) or of channels/neurons per layer "
        "(structured) to remove, in (0, 1); a list builds one variant per amount.")
    finetune_steps: int = Field(
        0, ge=0, le=10**7,
        description="Training steps after pruning (same data, optimizer and seed as the base); "
        "pruned weights stay zero.")

    @field_validator("amount")
    @classmethod
    def _fractions(cls, amount: float | list[float]) -> float | list[float]:
        amounts = amount if isinstance(amount, list) else [amount]
        if not amounts:
            raise ValueError("give at least one amount")
        for value in amounts:
            if not 0.0 < value < 1.0:
                raise ValueError(f"amount {value} is outside (0, 1); e.g. 0.5 removes half")
        return amount

    def amounts(self) -> list[float]:
        """The amount(s) as a list."""
        return self.amount if isinstance(self.amount, list) else [self.amount]


class QuantizeVariant(StrictModel):
    """Quantization with torchao."""

    kind: Literal["quantize"] = Field(description="Quantize the base model.")
    name: str | None = Field(None, pattern=NAME_PATTERN,
                             description="Variant name; null: the method with - for _ "
                             "(int8-dynamic).")
    method: Literal["int8_dynamic", "int8_static", "int8_weight_only", "int4_weight_only"] = Field(
        description="'int8_dynamic': int8 weights, activations quantized per batch at run time "
        "(Linear layers); 'int8_static': int8 weights and activations with ranges calibrated "
        "beforehand (conv and linear layers; CPU, runs through torch.compile); "
        "'int8_weight_only' / 'int4_weight_only': weight-only (CUDA).")
    calibration_batches: int = Field(
        8, ge=1, le=10_000, description="int8_static: training batches that set the "
                                        "activation ranges.")


class DistillVariant(StrictModel):
    """Knowledge distillation: a student learns from the base model's soft targets."""

    kind: Literal["distill"] = Field(description="Train a student from the base as teacher.")
    name: str | None = Field(None, pattern=NAME_PATTERN,
                             description="Variant name; null: distill-<student model>.")
    student: ModelConfig = Field(
        description="The student's model section (name and arguments, as under model:), "
        "built for the same data as the teacher.")
    temperature: float = Field(4.0, gt=0.0, le=100.0,
                               description="Softmax temperature T of the soft targets.")
    alpha: float = Field(0.5, ge=0.0, le=1.0,
                         description="Weight of the soft-target loss (times T²); 1 − alpha "
                         "weighs the hard-label loss.")
    steps: int | None = Field(
        None, ge=1, le=10**9,
        description="Student training steps; null: as many as the base config trains.")
    baseline: bool = Field(
        True, description="Also train the same student without the teacher (same steps, data "
        "order and seed), reported as <name>-baseline.")


Variant = Annotated[Union[PruneVariant, QuantizeVariant, DistillVariant],  # noqa: UP007
                    Field(discriminator="kind")]


class OptimizeConfig(StrictModel):
    """Variants of the base model, measured side by side on one device."""

    variants: list[Variant] = Field(
        min_length=1, max_length=64,
        description="Recipes applied to the base model (kind: prune, quantize or distill).")
    batch_size: int | None = Field(
        None, ge=1, le=1_000_000,
        description="The bench batch size (variants are also measured at batch 1); null: "
        "train.batch_size.")
    steps: int = Field(30, ge=1, le=10**6, description="Measured steps per repeat and batch size.")
    warmup: int = Field(5, ge=0, le=10**6, description="Warm-up steps before each repeat.")
    repeats: int = Field(3, ge=1, le=100,
                         description="Measured repeats per variant; each round measures every "
                         "variant once; pairs of rounds run forwards then backwards from different "
                         "starts, so drift favours none.")

    @model_validator(mode="after")
    def _unique_names(self) -> OptimizeConfig:
        names = variant_names(self)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must differ; '{repeated[0]}' is used twice "
                             "(set name: on one of them)")
        if "base" in names:
            raise ValueError("'base' names the unmodified model; choose another variant name")
        return self


def variant_names(config: OptimizeConfig) -> list[str]:
    """The name of every variant the section builds, in order (a list of amounts expands)."""
    names: list[str] = []
    for variant in config.variants:
        if isinstance(variant, PruneVariant):
            stem = variant.name or ("prune" if variant.method == "unstructured" else "structured")
            amounts = variant.amounts()
            if variant.name and len(amounts) == 1:
                names.append(variant.name)
            else:
                names += [f"{stem}-{_percent(a)}" for a in amounts]
        elif isinstance(variant, QuantizeVariant):
            names.append(variant.name or variant.method.replace("_", "-"))
        else:
            names.append(variant.name or f"distill-{variant.student.name}")
            if variant.baseline:
                names.append(f"{names[-1]}-baseline")
    return names
