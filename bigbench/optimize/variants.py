"""Build each variant of the base model: prune, quantize or distill it, then save it.

A :class:`Variant` is what the measurement needs (the module to run, its float twin for FLOP
counting) and what optimize.json records about how it was made. Building one never touches the
base model: every recipe works on a copy. Training (fine-tuning after pruning, the student of a
distillation) runs THE training step (``build_step``) on the base config's data, batch size,
optimizer and seed.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bigbench.data.info import DataInfo
from bigbench.data.tensors import Batcher, Dataset
from bigbench.models import BuiltModel, build_model
from bigbench.optimize import artifacts, distill, prune, quantize
from bigbench.workload.build import seed_everything, workload_from_module
from bigbench.workload.steps import build_step
from bigbench.workload.task import task_for

if TYPE_CHECKING:
    from bigbench.config.optimize import DistillVariant, PruneVariant, QuantizeVariant
    from bigbench.config.schema import ExperimentConfig


@dataclass
class Variant:
    """One model to measure and what is known about how it was made.

    Attributes:
        name: Unique name (the folder under ``variants/``).
        kind: ``base``, ``prune``, ``quantize`` or ``distill``.
        recipe: The settings that made it (recorded in variant.json and optimize.json).
        built: The model to run (None when it was not built: skipped or failed).
        flops_twin: A float model doing the same multiply-adds, where the module itself cannot
            be counted (quantized tensors, a traced graph).
        needs_compile: Runs as int8 only under ``torch.compile``.
        status: ``ok``, ``skipped`` (the device cannot run it) or ``failed``.
        reason: Why it was skipped or failed.
        facts: Recorded figures known at build time (sparsity, layers quantized, training).
        weights_bytes: Size of the saved weights file.
    """

    name: str
    kind: str
    recipe: dict[str, Any]
    built: BuiltModel | None = None
    flops_twin: BuiltModel | None = None
    needs_compile: bool = False
    status: str = "ok"
    reason: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    weights_bytes: int | None = None
    weights_file: str | None = None


class BuildInterruptedError(Exception):
    """The user asked to stop while a variant was being built (it is not recorded)."""


@dataclass
class BuildContext:
    """What every recipe builds from: the base, the data and the training settings.

    ``should_stop`` is polled after every training step, so a Ctrl-C while a student trains
    stops within a step.
    """

    base: BuiltModel
    info: DataInfo
    data: Dataset
    config: ExperimentConfig
    device: torch.device
    folder: Path  # variants/ of the optimize run
    should_stop: Callable[[], bool] = lambda: False

    def batches(self) -> Callable[[], Any]:
        """A fresh, seeded stream of training batches (the base config's order)."""
        train = self.config.train

        def stream() -> Any:
            batcher = Batcher(self.data.train, train.batch_size, train.drop_last, train.seed)
            return itertools.chain.from_iterable(batcher.epoch(e) for e in itertools.count())

        return stream


def train_steps(built: BuiltModel, context: BuildContext, steps: int,
                task: Any = None) -> dict[str, Any]:
    """Train ``built`` for ``steps`` optimizer steps with THE training step (in place).

    The learning rate is ``train.optimizer``'s, constant (no warm-up or schedule): fine-tuning
    and a student's training are short runs of their own, the same for every variant.

    Returns:
        Steps, wall time in seconds and the last batch's loss (one host sync at the end).

    Raises:
        BuildInterruptedError: ``context.should_stop()`` turned true.
    """
    workload = workload_from_module(built, context.info, context.device,
                                    precision=context.config.train.precision,
                                    optimizer=context.config.train.optimizer, task=task)
    workload.grad_clip = context.config.train.grad_clip
    step = build_step(workload, "train")
    built.module.train()
    batches = context.batches()()
    started = time.perf_counter()
    loss = None
    for _ in range(steps):
        if context.should_stop():
            raise BuildInterruptedError
        loss = step(next(batches))
    last = float(loss.detach()) if loss is not None else None  # the one host sync
    elapsed = time.perf_counter() - started
    built.module.eval()
    return {"steps": steps, "time_s": elapsed, "final_loss": last}


def _copy_of(base: BuiltModel) -> BuiltModel:
    return replace(base, module=copy.deepcopy(base.module))


def build_prune(spec: PruneVariant, amount: float, name: str, context: BuildContext) -> Variant:
    """Unstructured (global L1, masks kept while fine-tuning) or structured pruning."""
    recipe = {"kind": "prune", "method": spec.method, "amount": amount,
              "finetune_steps": spec.finetune_steps}
    facts: dict[str, Any] = {}
    if spec.method == "unstructured":
        built = _copy_of(context.base)
        targets = prune.prune_unstructured(built.module, amount)
        if spec.finetune_steps:
            facts["train"] = train_steps(built, context, spec.finetune_steps)
        prune.make_permanent(targets)
    else:
        built = prune.prune_structured(context.base, context.info, amount)
        built.module.to(context.device)
        facts["structure"] = prune.structured_summary(context.base, built)
        if spec.finetune_steps:
            facts["train"] = train_steps(built, context, spec.finetune_steps)
    built.module.eval()
    facts["sparsity"] = prune.sparsity(built.module)
    variant = Variant(name, "prune", recipe, built, facts=facts)
    _save(variant, context)
    return variant


def build_quantize(spec: QuantizeVariant, name: str, context: BuildContext) -> Variant:
    """A torchao recipe on a copy of the base (skipped with the reason where unsupported)."""
    recipe = {"kind": "quantize", "method": spec.method}
    reason = quantize.unsupported_reason(spec.method, context.device)
    if reason is not None:
        return Variant(name, "quantize", recipe, status="skipped", reason=reason)
    base = context.base
    if spec.method == "int8_static":
        recipe["calibration_batches"] = spec.calibration_batches
        batches = context.batches()()
        calibration = [next(batches)[0] for _ in range(spec.calibration_batches)]
        result, ranges = quantize.quantize_static(base.module.eval(), calibration)
        tensors = {**result.module.state_dict(),
                   **{artifacts.RANGES_PREFIX + k: v for k, v in ranges.items()}}
        metadata: dict[str, str] = {}
        weights_format = "safetensors+pt2e"
        # Compile now, on a calibration batch: a machine that cannot compile (no C++
        # compiler for inductor) fails this variant here, not the evaluation of all.
        result.module = quantize.compiled(result.module, calibration[0])
    else:
        result = quantize.quantize_in_place(base.module, spec.method)
        tensors, metadata = quantize.quantized_state(result.module)
        weights_format = "safetensors+torchao"
    built = replace(base, module=result.module)
    variant = Variant(name, "quantize", recipe, built, flops_twin=base,
                      needs_compile=result.needs_compile,
                      facts={"quantized_layers": result.quantized_layers,
                             "float_layers": result.float_layers,
                             "compiled": result.needs_compile})
    _save(variant, context, tensors, metadata, weights_format)
    return variant


def check_student(spec: DistillVariant, teacher: BuiltModel, info: DataInfo) -> None:
    """Refuse a student whose classes or vocabulary differ from the teacher's (on the meta
    device: nothing is allocated)."""
    from bigbench.errors import ConfigError

    with torch.device("meta"):
        student = build_model(spec.student, info)
    for key in ("num_classes", "vocab_size"):
        ours, theirs = student.args.get(key), teacher.args.get(key)
        if ours is not None and theirs is not None and ours != theirs:
            raise ConfigError(f"optimize: the student's {key} is {ours} but the teacher's is "
                              f"{theirs}; a student must predict the teacher's classes")


def build_distill(spec: DistillVariant, name: str, context: BuildContext,
                  steps: int) -> list[Variant]:
    """The distilled student and (unless turned off) the same student trained without the
    teacher: same initial weights, steps, data order and seed."""
    recipe = {"kind": "distill", "student": spec.student.model_dump(mode="json"),
              "temperature": spec.temperature, "alpha": spec.alpha, "steps": steps}
    base_task = task_for(context.info)
    out = []
    runs = [(name, True)] + ([(f"{name}-baseline", False)] if spec.baseline else [])
    for variant_name, with_teacher in runs:
        started = time.perf_counter()
        seed_everything(context.config.train.seed)  # the same initial student both times
        student = build_model(spec.student, context.info)
        student.module.to(context.device)
        if with_teacher:
            teacher = context.base.module.eval()
            pair = distill.TeacherStudent(student.module, teacher)
            trainer = replace(student, module=pair)
            task = distill.DistillationTask(base_task, spec.temperature, spec.alpha)
            facts = {"train": train_steps(trainer, context, steps, task)}
            variant_recipe = recipe
        else:
            facts = {"train": train_steps(student, context, steps)}
            variant_recipe = {**recipe, "alpha": 0.0, "teacher": None}
        student.module.eval()
        variant = Variant(variant_name, "distill", variant_recipe, student, facts=facts)
        _save(variant, context)
        variant.facts["build_s"] = time.perf_counter() - started
        out.append(variant)
    return out


def _save(variant: Variant, context: BuildContext, tensors: dict[str, torch.Tensor] | None = None,
          metadata: dict[str, str] | None = None, weights_format: str = "safetensors") -> None:
    assert variant.built is not None
    folder = context.folder / variant.name
    variant.weights_bytes = artifacts.save_variant(
        folder, variant.name, variant.built, context.info, variant.recipe, tensors, metadata,
        weights_format)
    variant.weights_file = str(folder / artifacts.WEIGHTS_FILE)
