"""optimize.json (schema ``bigbench.optimize/1``): model variants of one base and their figures.

Rewritten after every stage (the base, each variant built, the measurement), so a document may
be ``running``, ``interrupted`` or ``failed`` with fewer variants than ``planned`` and without
the measured sections. A variant that was not built (``skipped``, ``failed``) carries its
``reason`` and nulls for what a built model would have. Each variant's folder under
``variants/<name>/`` holds its weights and variant.json (schema ``bigbench.variant/1``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from bigbench.records.common import (
    OPTIMIZE_SCHEMA,
    EnergyStatus,
    Environment,
    Part,
    Quality,
    Section,
    Spread,
    StepTimes,
    absent,
    field,
)
from bigbench.records.run import RunConfig

#: Keys every batch size's speed figures carry when it was measured (status "ok").
MEASURED_SPEED = ("rounds", "samples_per_s", "latency_s", "j_per_sample", "energy_status",
                  "energy_quality", "energy_methods", "flops_per_sample", "flops_method")
#: Sections every completed document carries.
COMPLETED_SECTIONS = ("env", "settings", "pareto")

VariantKind = Literal["base", "prune", "quantize", "distill"]
#: ``batch_<B>``: the figures of one measured batch size.
BatchKey = Annotated[str, StringConstraints(pattern=r"^batch_[1-9][0-9]*$")]


def _only_batch_keys(schema: dict[str, Any]) -> None:
    """In the JSON Schema too, a speed mapping holds nothing but ``batch_<B>`` keys."""
    for option in schema.get("anyOf", [schema]):
        if "patternProperties" in option:
            option["additionalProperties"] = False


class OptimizeConfig(RunConfig):
    """The resolved experiment config, its optimize: section included (its full schema:
    ``bigbench schema config``)."""

    optimize: dict[str, Any] = field(
        "The config's optimize: section: the variant recipes and how they are measured "
        "(batch_size, steps, warmup, repeats).")


class OptimizeBase(Part):
    """Where the base model came from."""

    source: Literal["trained", "from"] = field(
        "trained (from the config, into <out>/base) or from (--from: a training run or a "
        "variant folder).")
    path: str | None = field("The --from folder, or the base's run directory once trained "
                             "(null: not trained yet).")
    status: Literal["running", "completed", "interrupted", "failed"] | None = absent(
        "Status of the base's training run (trained bases, once training ended).")


class OptimizeSettings(Part):
    """How every variant was measured (identical for all of them)."""

    batch_sizes: list[int] = field("Measured batch sizes: 1 and the bench batch size.")
    steps: int = field("Measured steps per round.")
    warmup: int = field("Warm-up steps per round.")
    rounds: int = field("Rounds: measured repeats per variant and batch size.")
    order: str = field("Order of the variants within a round (rotated each round).")
    metric: str = field("The quality metric of the Pareto comparison: accuracy (higher is "
                        "better) or loss (language models, nats/token; lower is better).")
    device: str = field("Device every variant ran on, e.g. cpu or cuda:0.")


class VariantRecipe(Part):
    """The settings that made the variant (also in its variant.json); keys by kind."""

    kind: VariantKind = field("base, prune, quantize or distill.")
    method: str | None = absent(
        "prune: unstructured or structured; quantize: the torchao method, e.g. int8_dynamic, "
        "int8_static or int4_weight_only.")
    amount: float | None = absent("prune: fraction of the prunable weights (unstructured) or "
                                  "of the channels and neurons (structured) removed.")
    finetune_steps: int | None = absent("prune: optimizer steps of fine-tuning afterwards.")
    calibration_batches: int | None = absent(
        "quantize (int8_static): training batches that calibrated the activation ranges.")
    student: dict[str, Any] | None = absent("distill: the student's model config.")
    temperature: float | None = absent("distill: softmax temperature of the soft targets.")
    alpha: float | None = absent("distill: weight of the teacher's soft targets in the loss "
                                 "(0: the student's own labels only).")
    steps: int | None = absent("distill: optimizer steps the student trained.")
    teacher: None = field("distill baseline: always null (the same student trained without "
                          "the teacher); absent for the distilled student.", None)


class LayerSparsity(Part):
    """Zeros of one prunable weight."""

    layer: str = field("Qualified parameter name, e.g. features.0.weight.")
    params: int = field("Elements of the weight.")
    zeros: int = field("Elements that are exactly zero.")
    sparsity: float = field("zeros / params (fraction).")


class VariantSparsity(Part):
    """Zeros per prunable weight (convolution and linear layers) and over the whole model."""

    layers: list[LayerSparsity] = field("Every prunable weight.")
    prunable_weights: int = field("Elements of the prunable weights.")
    prunable_sparsity: float | None = field(
        "Zero fraction of the prunable weights (null: the model has none).")
    params: int = field("Parameters of the model.")
    nonzero_params: int = field("Parameters that are not exactly zero.")
    sparsity: float | None = field("Zero fraction over every parameter (null: no parameters).")


class VariantStructure(Part):
    """Structured pruning: the model's widths before and after."""

    channels: list[list[int] | None] = field(
        "[before, after]: the convolution channels (null: the model has none).")
    hidden: list[list[int] | None] = field(
        "[before, after]: the hidden widths (null: the model has none).")
    params_removed: float | None = field(
        "Fraction of the base's parameters removed (null: the base has none).")


class VariantTraining(Part):
    """Training done while building the variant (fine-tuning, or the student)."""

    steps: int = field("Optimizer steps.")
    time_s: float = field("Wall time of those steps, s.")
    final_loss: float | None = field("Loss of the last batch (null: no step ran).")


class SpeedFigures(Section):
    """Speed and energy at one batch size, over the rounds (inference, fp32)."""

    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"status": {"const": "ok"}}},
        "then": {"required": list(MEASURED_SPEED)}})

    status: Literal["ok", "oom", "skipped", "failed", "not_measured"] = field(
        "ok; oom, skipped or failed (the first round's point status); not_measured (stopped "
        "before a round ran).")
    reason: str | None = absent("Why it was not measured (every status but ok).")
    rounds: int | None = absent("Rounds measured.")
    samples_per_s: Spread | None = absent("Samples/s over the rounds.")
    latency_s: StepTimes | None = absent("Step times over every measured step of every "
                                         "round, s.")
    j_per_sample: Spread | None = absent(
        "J/sample over the rounds (median null and no values: energy not measured, see "
        "reasons).")
    energy_status: EnergyStatus | None = absent("measured, partial or unavailable (the last "
                                                "round's).")
    energy_quality: Quality | None = field("Worst energy quality over the rounds (null: "
                                           "energy not measured).", None)
    energy_methods: list[str] | None = absent(
        "How each device's energy was read, over the rounds, e.g. nvml_energy_counter, rapl.")
    flops_per_sample: int | None = field("FLOPs per sample of the forward pass (null: not "
                                         "counted, see reasons).", None)
    flops_method: str | None = field("How FLOPs were counted ('(float twin)': on the "
                                     "quantized model's float original).", None)

    @model_validator(mode="after")
    def _measured(self) -> SpeedFigures:
        if self.status == "ok":
            missing = [name for name in MEASURED_SPEED if name not in self.model_fields_set]
            if missing:
                raise ValueError(f"an ok speed entry needs {', '.join(missing)}")
        return self


class VariantPareto(Part):
    """Where the variant stands in the Pareto comparison."""

    dominated: bool = field("Whether another variant is at least as good in every objective "
                            "and better in one.")
    dominated_by: list[str] = field("The variants that dominate it (empty: on the front).")


class OptimizeVariant(Part):
    """One model variant: how it was made, its size, quality, speed and energy."""

    name: str = field("Unique name (its folder under variants/).")
    kind: VariantKind = field("base, prune, quantize or distill.")
    status: Literal["ok", "skipped", "failed"] = field(
        "ok; skipped (the device cannot run it) or failed (building it raised).")
    reason: str | None = field("Why it was skipped or failed (null: ok).")
    recipe: VariantRecipe = field("How it was made.")
    model: dict[str, Any] | None = field(
        "Registry model name and resolved arguments (null: not built).")
    params: int | None = field("Parameters (quantized: the float original's; null: not "
                               "built).")
    nonzero_params: int | None = field(
        "Parameters that are not exactly zero (null: not built, or quantized).")
    sparsity: VariantSparsity | None = field("Zeros per layer and overall (null: not built, "
                                             "or quantized).")
    weights_file: str | None = field("Path of the saved weights (null: not built).")
    weights_bytes: int | None = field("Size of the saved weights file, bytes (null: not "
                                      "built).")
    runtime: str = field("How it runs: eager, or 'torch.compile (inductor)' (a statically "
                         "quantized graph's int8 kernels).")
    structure: VariantStructure | None = absent("Structured pruning: widths before and after.")
    quantized_layers: list[str] | None = absent("quantize: the layers quantized.")
    float_layers: dict[str, str] | None = absent(
        "quantize: layers left in floating point → why.")
    train: VariantTraining | None = absent("Training done while building it (fine-tuning, "
                                           "distillation).")
    build_s: float | None = absent("Wall time to build and save it, s (absent for the base).")
    eval: dict[str, float | None] | None = absent(
        "Quality on the test split: metric → value (accuracy as a fraction; loss in "
        "nats/sample or nats/token; perplexity; bits_per_token); null when not finite (a "
        "diverged model), with the reason in eval_reasons.")
    eval_reasons: dict[str, str] | None = absent("Why an eval metric is null.")
    delta: dict[str, float] | None = absent(
        "eval minus the base's eval, per metric (same units), where both are finite.")
    speed: dict[BatchKey, SpeedFigures] | None = field(
        "batch_<B> → speed and energy at batch size B (null: not measured, see status; "
        "absent before the measurement).", None, json_schema_extra=_only_batch_keys)
    pareto: VariantPareto | None = field(
        "Pareto marks (null: not a candidate — not ok, or quality or batch-1 speed missing; "
        "absent before the comparison).", None)


class ParetoObjective(Part):
    """One axis of the Pareto comparison."""

    key: str = field("The figure: the quality metric (accuracy or loss), latency_p50_s, "
                     "weights_bytes or j_per_sample.")
    maximize: bool = field("Larger is better (accuracy); else smaller is better.")
    at: str | None = field("The batch_<B> it was read at (null: not a speed figure).")


class ParetoSummary(Part):
    """The Pareto comparison over the variants measured."""

    objectives: list[ParetoObjective] = field("The objectives used (every candidate has "
                                              "them).")
    front: list[str] = field("Variants no other dominates.")
    not_used: dict[str, str] = field("Objectives left out → why (e.g. j_per_sample: energy "
                                     "not measured for every variant).")


class OptimizeDocument(Part):
    """optimize.json: variants of one model (schema bigbench.optimize/1)."""

    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"status": {"const": "completed"}}},
        "then": {"required": list(COMPLETED_SECTIONS)}})

    schema_: Literal["bigbench.optimize/1"] = Field(alias="schema",
                                                    description=f"'{OPTIMIZE_SCHEMA}'.")
    status: Literal["running", "completed", "interrupted", "failed"] = field(
        "running (or killed), completed, interrupted or failed.")
    name: str = field("Experiment name.")
    started_at: str = field("UTC start, ISO 8601.")
    finished_at: str | None = field("UTC end, ISO 8601 (null while running, or failed).")
    config: OptimizeConfig = field("The resolved experiment config.")
    base: OptimizeBase = field("The base model every variant is made from: trained or "
                               "--from, and where it is.")
    planned: list[str] = field("Every variant name planned, the base first.")
    env: Environment | None = absent("Environment (as in run.json); absent before the "
                                     "measurement.")
    settings: OptimizeSettings | None = absent("How variants were measured; absent before the "
                                               "measurement.")
    variants: list[OptimizeVariant] = field("Variants built so far, in planned order.")
    pareto: ParetoSummary | None = absent("The Pareto comparison; absent before it.")
    error: str | None = absent("The error that stopped a failed run.")
    traceback: str | None = absent("Its traceback (the last frames).")
    reason: str | None = absent("Why the run stopped early, e.g. the base's training ended "
                                "interrupted.")

    @model_validator(mode="after")
    def _completed_sections(self) -> OptimizeDocument:
        if self.status == "completed":
            missing = [name for name in COMPLETED_SECTIONS if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a completed document needs {', '.join(missing)}")
        return self
