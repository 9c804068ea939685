"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's soft targets.

The loss per batch is ``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)``:
the T² factor keeps the soft term's gradients on the scale of the hard term's as T grows. For a
language model every position is one prediction (KL and CE are means over tokens).

The student trains through THE training step (``build_step``): the step sees a
:class:`TeacherStudent` module (its forward returns both logits; the teacher is frozen and in
eval mode) and a :class:`DistillationTask` whose loss is the one above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from bigbench.workload.task import Task


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
                      hard_loss: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """``alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · hard_loss``.

    Args:
        student, teacher: Logits ``(..., classes)`` of the same shape; every leading position
            is one prediction (``batchmean`` over them).
        targets: Unused here (the hard loss is computed by the task); kept for symmetry.
        hard_loss: The task's loss of the student's logits against the labels.
        temperature: T > 0; alpha: in [0, 1].
    """
    del targets
    if alpha == 0.0:
        return hard_loss
    classes = student.shape[-1]
    log_student = functional.log_softmax(student.reshape(-1, classes).float() / temperature, -1)
    log_teacher = functional.log_softmax(teacher.reshape(-1, classes).float() / temperature, -1)
    soft = functional.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard_loss


class TeacherStudent(nn.Module):
    """Runs the trainable student and the frozen teacher on the same inputs.

    The teacher is held outside the module tree, so ``parameters()`` (what the optimizer and
    gradient clipping see) is the student's alone and the teacher's weights are never touched;
    it runs in eval mode (dropout off, deterministic soft targets) under ``no_grad``.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher)  # not a submodule (see above)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's logits (with grad) and the teacher's (without)."""
        was_training = self.teacher.training
        self.teacher.eval()
        with torch.no_grad():
            teacher = self.teacher(inputs)
        self.teacher.train(was_training)
        return self.student(inputs), teacher


@dataclass
class DistillationTask:
    """The base task's targets and metrics with the distillation loss (see module docs)."""

    base: Task
    temperature: float
    alpha: float

    @property
    def name(self) -> str:
        """The base task's name (what is learned does not change)."""
        return self.base.name

    @property
    def metrics(self) -> tuple[str, ...]:
        """The base task's metrics."""
        return self.base.metrics

    def loss(self, outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor
             ) -> torch.Tensor:
        """Distillation loss of (student, teacher) logits against the labels."""
        student, teacher = outputs
        return distillation_loss(student, teacher, targets, self.base.loss(student, targets),
                                 self.temperature, self.alpha)

    def __getattr__(self, name: str) -> Any:
        # evaluate, synthetic_targets, items_per_sample: the base task's.
        return getattr(self.base, name)


def output_width(module: nn.Module, example: torch.Tensor) -> int:
    """Classes (or vocabulary) the module predicts: the last dimension of its logits."""
    with torch.no_grad():
        was_training = module.training
        module.eval()
        width = int(module(example).shape[-1])
        module.train(was_training)
    return width
