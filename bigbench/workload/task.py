"""What is learned and how it is scored.

A task owns the loss, the targets (real or synthetic), the evaluation metrics and how many items
(tokens, time steps) one sample holds. Steps, benchmarks and FLOP counting ask the task instead
of repeating its contract. The data decides the task (``DataInfo.task``):

- classification: logits ``(N, C)``, integer labels ``(N,)``, cross-entropy, accuracy;
- language modelling: logits ``(N, T, V)``, the next token at every position ``(N, T)``,
  cross-entropy per token, perplexity and bits per token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from bigbench.data.info import DataInfo
from bigbench.models.family import ModelFamily

if TYPE_CHECKING:
    import torch
    from torch import nn

Batch = tuple["torch.Tensor", "torch.Tensor"]


class Task(Protocol):
    """The contract every task fulfils.

    Attributes:
        name: Recorded in run.json (``classification``).
        metrics: Names of the evaluation metrics :meth:`evaluate` returns.
    """

    name: str
    metrics: tuple[str, ...]

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (a scalar tensor, not synchronised)."""

    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 amp_dtype: torch.dtype | None) -> dict[str, float]:
        """Every metric over ``batches``, with one host sync at the end."""

    def evaluation_sums(self, model: nn.Module, batches: Iterable[Batch],
                        amp_dtype: torch.dtype | None) -> torch.Tensor:
        """The sums the metrics derive from, as one float64 tensor on the model's device (no
        host sync): sums of several shards add up to the sums of their union."""

    def metrics_from_sums(self, sums: list[float]) -> dict[str, float]:
        """Every metric from :meth:`evaluation_sums` (over one or several shards)."""

    def synthetic_targets(self, count: int, info: DataInfo, generator: torch.Generator | None,
                          device: torch.device) -> torch.Tensor:
        """Random but valid targets for ``count`` samples (benchmarks, FLOP counting)."""

    def items_per_sample(self, info: DataInfo, family: ModelFamily) -> tuple[int | None, str]:
        """Items (tokens or time steps) in one sample and their name, or None and why not."""


class Classification:
    """Class labels: logits ``(N, C)``, labels ``(N,)`` in ``[0, C)``, cross-entropy, accuracy."""

    name = "classification"
    metrics = ("accuracy", "loss")

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the batch."""
        from torch.nn import functional

        return functional.cross_entropy(outputs, targets)

    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 amp_dtype: torch.dtype | None) -> dict[str, float]:
        """Accuracy and mean cross-entropy; sums stay on the device until the end."""
        return self.metrics_from_sums(self.evaluation_sums(model, batches, amp_dtype).tolist())

    def evaluation_sums(self, model: nn.Module, batches: Iterable[Batch],
                        amp_dtype: torch.dtype | None) -> torch.Tensor:
        """(correct predictions, summed cross-entropy in nats, samples)."""
        import torch
        from torch.nn import functional

        device = module_device(model)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                    enabled=amp_dtype is not None):
            for inputs, labels in batches:
                logits = model(inputs).float()
                sums[0] += (logits.argmax(dim=1) == labels).sum()
                sums[1] += functional.cross_entropy(logits, labels, reduction="sum").double()
                sums[2] += labels.shape[0]
        return sums

    def metrics_from_sums(self, sums: list[float]) -> dict[str, float]:
        """Accuracy (fraction) and mean cross-entropy (nats/sample)."""
        correct, loss_sum, samples = sums
        return {"accuracy": correct / samples, "loss": loss_sum / samples}

    def synthetic_targets(self, count: int, info: DataInfo, generator: torch.Generator | None,
                          device: torch.device) -> torch.Tensor:
        """Uniform random class labels."""
        import torch

        return torch.randint(0, info.num_classes, (count,), generator=generator, device=device)

    def items_per_sample(self, info: DataInfo, family: ModelFamily) -> tuple[int | None, str]:
        """Time steps per sequence for sequence models (reported as tokens/s)."""
        if family.sequence_input and info.sample_shape:
            return info.sample_shape[0], "tokens"
        return None, "inputs are not sequences"


CLASSIFICATION = Classification()


class LanguageModeling:
    """Next-token prediction at every position of a window of ``T`` tokens.

    The loss is the mean cross-entropy over every predicted token (nats/token); evaluation adds
    perplexity (``exp(loss)``), bits per token (``loss / ln 2``) and next-token top-1 accuracy.
    A sample is one window, so tokens/s is samples/s × ``T``.
    """

    name = "language_modeling"
    metrics = ("loss", "perplexity", "bits_per_token", "accuracy")

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over every position of the batch, nats/token."""
        from torch.nn import functional

        return functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]),
                                        targets.reshape(-1))

    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 amp_dtype: torch.dtype | None) -> dict[str, float]:
        """Loss per token, perplexity, bits per token, top-1 accuracy; one sync at the end."""
        return self.metrics_from_sums(self.evaluation_sums(model, batches, amp_dtype).tolist())

    def evaluation_sums(self, model: nn.Module, batches: Iterable[Batch],
                        amp_dtype: torch.dtype | None) -> torch.Tensor:
        """(correct next tokens, summed cross-entropy in nats, tokens)."""
        import torch
        from torch.nn import functional

        device = module_device(model)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                    enabled=amp_dtype is not None):
            for inputs, targets in batches:
                logits = model(inputs).float()
                flat, expected = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
                sums[0] += (flat.argmax(dim=1) == expected).sum()
                sums[1] += functional.cross_entropy(flat, expected, reduction="sum").double()
                sums[2] += expected.numel()
        return sums

    def metrics_from_sums(self, sums: list[float]) -> dict[str, float]:
        """Loss (nats/token), perplexity, bits per token and top-1 accuracy (fraction)."""
        correct, loss_sum, tokens = sums
        loss = loss_sum / tokens
        # exp overflows past 709 nats; a NaN loss stays NaN (and is reported null with why).
        return {"loss": loss, "perplexity": math.inf if loss > 709 else math.exp(loss),
                "bits_per_token": loss / math.log(2), "accuracy": correct / tokens}

    def synthetic_targets(self, count: int, info: DataInfo, generator: torch.Generator | None,
                          device: torch.device) -> torch.Tensor:
        """Uniform random next tokens, one per position."""
        import torch

        return torch.randint(0, info.num_classes, (count, *info.sample_shape),
                             generator=generator, device=device)

    def items_per_sample(self, info: DataInfo, family: ModelFamily) -> tuple[int | None, str]:
        """Tokens per window."""
        return info.sample_shape[0], "tokens"


LANGUAGE_MODELING = LanguageModeling()


def module_device(model: nn.Module) -> torch.device:
    """Where a module's tensors live: its first parameter's device, else its first buffer's
    (a statically quantized graph holds only buffers)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    raise ValueError("the module holds no parameter or buffer, so it has no device")


def task_for(info: DataInfo) -> Task:
    """The task the data's targets define."""
    return LANGUAGE_MODELING if info.task == "language_modeling" else CLASSIFICATION
