"""The recipes of ``bigbench optimize``: pruning, quantization, distillation, Pareto marks, config.

Everything runs on the CPU through the real code paths (registry models, torch's pruning
utilities, torchao, the training step), on small models so the file stays fast.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.flop_counter import FlopCounterMode

from bigbench import pareto
from bigbench.config import load_config
from bigbench.config.optimize import PruneVariant, variant_names
from bigbench.data import build_data
from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models import build_model
from bigbench.models.registry import MODELS
from bigbench.optimize import artifacts, distill, prune, quantize
from bigbench.optimize.variants import BuildContext, train_steps
from bigbench.workload.task import task_for

IMAGES = DataInfo(sample_shape=(1, 28, 28), num_classes=10)
SIGNALS = DataInfo(sample_shape=(2, 24), num_classes=5)
TOKENS = DataInfo(sample_shape=(12,), num_classes=3, vocab_size=20)
LM = DataInfo(sample_shape=(16,), num_classes=40, vocab_size=40, task="language_modeling")

#: Trains in well under a second on the CPU (digits: 8×8 images).
TINY = """\
name: tiny
model: {name: cnn, channels: [4, 8], hidden: [16]}
data: {name: digits, size: 256, test_size: 64}
train:
  max_steps: 12
  batch_size: 16
  warmup_steps: 2
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
device: cpu
"""


def _build(name: str, info: DataInfo, seed: int = 0, **args):
    torch.manual_seed(seed)
    built = build_model(MODELS.get(name).config_class(name=name, **args), info)
    built.module.eval()
    return built


def _inputs(info: DataInfo, count: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if info.is_tokens:
        return torch.randint(0, info.vocab_size, (count, *info.sample_shape), generator=generator)
    return torch.randn(count, *info.sample_shape, generator=generator)


@torch.no_grad()
def _run(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return module(inputs)


def _flops(module: nn.Module, inputs: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(inputs)
    return counter.get_total_flops()


def _weights_zeros(module: nn.Module) -> tuple[int, int]:
    """(zeros, count) over the weights unstructured pruning considers."""
    tensors = [getattr(layer, name) for layer, name in prune.prunable_weights(module)]
    return sum(int((t == 0).sum()) for t in tensors), sum(t.numel() for t in tensors)


# --- unstructured pruning -------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0.5, 0.9])
def test_unstructured_sparsity_is_the_requested_amount_and_global(amount: float,
                                                                  tmp_path: Path) -> None:
    built = _build("cnn", IMAGES)
    inputs = _inputs(IMAGES, 4)
    targets = prune.prune_unstructured(built.module, amount)
    assert len(targets) == 4  # two convs, two linears
    masked = _run(built.module, inputs)
    prune.make_permanent(targets)

    zeros, count = _weights_zeros(built.module)
    assert abs(zeros - amount * count) <= 1
    report = prune.sparsity(built.module)
    assert report["prunable_weights"] == count
    assert report["prunable_sparsity"] == pytest.approx(amount, abs=1 / count)
    assert report["nonzero_params"] == built.params - zeros  # biases are not pruned
    # One global threshold: layers lose very different fractions (the first conv's weights are
    # large, the wide linear layer's small), not `amount` each.
    per_layer = [entry["sparsity"] for entry in report["layers"]]
    assert max(per_layer) - min(per_layer) > 0.2
    assert any(abs(s - amount) > 0.05 for s in per_layer)

    # Permanent: plain parameters, no masks, copies or hooks left; the forward is unchanged.
    assert not torch_prune.is_pruned(built.module)
    names = [name for name, _ in built.module.named_parameters()]
    assert not [n for n in names if n.endswith("_orig")]
    assert not [n for n, _ in built.module.named_buffers() if n.endswith("_mask")]
    for layer, name in targets:
        assert isinstance(getattr(layer, name), nn.Parameter)
        assert not layer._forward_pre_hooks
    assert torch.equal(_run(built.module, inputs), masked)

    # The saved weights hold the zeros, and load back to the same outputs.
    artifacts.save_variant(tmp_path / "v", "prune", built, IMAGES, {"kind": "prune"})
    saved = load_file(tmp_path / "v" / artifacts.WEIGHTS_FILE)
    for qualified, parameter in built.module.named_parameters():
        assert torch.equal(saved[qualified], parameter.detach())
    assert sum(int((saved[e["layer"]] == 0).sum()) for e in report["layers"]) == zeros
    loaded = artifacts.load_variant(tmp_path / "v")
    assert torch.equal(_run(loaded.built.module, inputs), masked)


def test_unstructured_pruning_of_a_recurrent_model_prunes_its_cell_weights(
        tmp_path: Path) -> None:
    built = _build("lstm", TOKENS, hidden_size=16)
    inputs = _inputs(TOKENS, 4)
    targets = prune.prune_unstructured(built.module, 0.5)
    assert {name for _, name in targets} == {"weight_ih_l0", "weight_hh_l0", "weight"}
    prune.make_permanent(targets)
    zeros, count = _weights_zeros(built.module)
    assert abs(zeros - 0.5 * count) <= 1
    assert built.module.embedding.weight.ne(0).all()  # an embedding is a lookup: not pruned
    assert not torch_prune.is_pruned(built.module)
    # The LSTM runs on its (now plain) parameters: a saved and reloaded copy agrees.
    outputs = _run(built.module, inputs)
    artifacts.save_variant(tmp_path / "v", "prune", built, TOKENS, {"kind": "prune"})
    assert torch.equal(_run(artifacts.load_variant(tmp_path / "v").built.module, inputs), outputs)


def test_a_tied_embedding_and_head_weight_is_left_out_and_stays_tied() -> None:
    built = _build("gpt", LM, n_layer=1, n_head=2, d_model=16, context=16)
    module = built.module
    assert module.lm_head.weight is module.wte.weight
    considered = prune.prunable_weights(module)
    assert all(layer is not module.lm_head for layer, _ in considered)
    targets = prune.prune_unstructured(module, 0.5)
    prune.make_permanent(targets)
    assert module.lm_head.weight is module.wte.weight
    assert isinstance(module.wte.weight, nn.Parameter)
    assert module.wte.weight.ne(0).all()
    zeros, count = _weights_zeros(module)
    assert abs(zeros - 0.5 * count) <= 1
    assert prune.sparsity(module)["prunable_sparsity"] == pytest.approx(0.5, abs=1 / count)
    assert module(_inputs(LM, 2)).shape == (2, 16, 40)

    untied = _build("gpt", LM, n_layer=1, n_head=2, d_model=16, context=16, tie_weights=False)
    assert any(layer is untied.module.lm_head for layer, _ in
               prune.prunable_weights(untied.module))


# --- structured pruning ---------------------------------------------------------------------


def _l1_keep(weight: torch.Tensor, amount: float) -> torch.Tensor:
    rows = weight.detach().abs().reshape(weight.shape[0], -1).sum(dim=1)
    count = max(1, round(rows.numel() * (1 - amount)))
    return rows.argsort(descending=True)[:count].sort().values


@torch.no_grad()
def _zero_removed(module: nn.Module, amount: float) -> nn.Module:
    """The original model with the removed conv filters and hidden neurons zeroed."""
    zeroed = copy.deepcopy(module)
    convs = [m for m in zeroed.features if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    linears = [m for m in zeroed.classifier if isinstance(m, nn.Linear)]
    for layer in [*convs, *linears[:-1]]:
        removed = torch.ones(layer.out_features if isinstance(layer, nn.Linear)
                             else layer.out_channels, dtype=torch.bool)
        removed[_l1_keep(layer.weight, amount)] = False
        layer.weight[removed] = 0
        layer.bias[removed] = 0
    return zeroed


@pytest.mark.parametrize(("info", "args", "amount"), [
    (IMAGES, {}, 0.5),
    (SIGNALS, {"conv_dims": 1, "channels": [6, 5, 7], "hidden": [9, 6], "pool": 1}, 0.4),
], ids=["cnn-2d", "cnn-1d-deep"])
def test_structured_pruning_is_a_smaller_model_with_the_same_function(
        info: DataInfo, args: dict, amount: float, tmp_path: Path) -> None:
    base = _build("cnn", info, **args)
    inputs = _inputs(info, 8)
    before = {k: v.clone() for k, v in base.module.state_dict().items()}
    smaller = prune.prune_structured(base, info, amount)
    smaller.module.eval()
    assert all(torch.equal(v, before[k]) for k, v in base.module.state_dict().items())

    kept = [len(_l1_keep(m.weight, amount)) for m in base.module.features
            if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert smaller.args["channels"] == kept
    assert smaller.args["num_classes"] == info.num_classes
    assert smaller.params < base.params
    assert smaller.params == sum(p.numel() for p in smaller.module.parameters())
    assert _flops(smaller.module, inputs) < _flops(base.module, inputs)
    summary = prune.structured_summary(base, smaller)
    assert summary["params_removed"] == pytest.approx(1 - smaller.params / base.params)

    outputs = _run(smaller.module, inputs)
    assert outputs.shape == (8, info.num_classes) and torch.isfinite(outputs).all()
    # The slices were copied to the right places: the original with the removed channels and
    # neurons zeroed computes the same function.
    reference = _run(_zero_removed(base.module, amount), inputs)
    assert torch.allclose(outputs, reference, atol=1e-5, rtol=0)

    base_bytes = artifacts.save_variant(tmp_path / "base", "base", base, info, {"kind": "base"})
    small_bytes = artifacts.save_variant(tmp_path / "s", "s", smaller, info,
                                         {"kind": "prune", "method": "structured"})
    assert small_bytes < base_bytes
    assert small_bytes == (tmp_path / "s" / artifacts.WEIGHTS_FILE).stat().st_size
    loaded = artifacts.load_variant(tmp_path / "s")  # rebuilt from its arguments alone
    assert loaded.built.args["channels"] == kept
    assert torch.equal(_run(loaded.built.module, inputs), outputs)


def test_structured_pruning_refuses_families_other_than_cnn() -> None:
    assert prune.structured_support("cnn", "cnn") is None
    for name, info, args in [("lstm", TOKENS, {"hidden_size": 8}),
                             ("gpt", LM, {"n_layer": 1, "n_head": 2, "d_model": 16})]:
        built = _build(name, info, **args)
        reason = prune.structured_support(built.family.name, built.name)
        assert reason is not None and f"'{name}'" in reason and "unstructured" in reason
        with pytest.raises(ConfigError) as caught:
            prune.prune_structured(built, info, 0.5)
        assert caught.value.problems == (reason,)


# --- quantization ---------------------------------------------------------------------------


def _assert_close_to_float(quantized: torch.Tensor, reference: torch.Tensor) -> None:
    scale = reference.abs().max()
    assert (quantized - reference).abs().max() <= 0.05 * scale
    agreement = (quantized.argmax(dim=-1) == reference.argmax(dim=-1)).float().mean()
    assert agreement >= 0.9


def test_int8_dynamic_stays_close_and_saves_smaller_weights_that_reload_exactly(
        tmp_path: Path) -> None:
    base = _build("cnn", IMAGES)
    inputs = _inputs(IMAGES, 128)
    reference = _run(base.module, inputs)
    result = quantize.quantize_in_place(base.module, "int8_dynamic")
    assert result.module is not base.module and not result.needs_compile
    assert result.quantized_layers == ["classifier.1", "classifier.3"]
    assert set(result.float_layers) == {"features.0", "features.3"}
    assert torch.equal(_run(base.module, inputs), reference)  # the base is untouched
    outputs = _run(result.module, inputs)
    assert not torch.equal(outputs, reference)  # it really was quantized
    _assert_close_to_float(outputs, reference)

    tensors, metadata = quantize.quantized_state(result.module)
    assert any(t.dtype == torch.int8 for t in tensors.values())
    float_bytes = artifacts.save_variant(tmp_path / "base", "base", base, IMAGES,
                                         {"kind": "base"})
    int8_bytes = artifacts.save_variant(
        tmp_path / "q", "int8-dynamic", replace(base, module=result.module), IMAGES,
        {"kind": "quantize", "method": "int8_dynamic"}, tensors, metadata,
        "safetensors+torchao")
    assert int8_bytes < 0.5 * float_bytes  # the wide linear layer dominates: ~4x smaller
    loaded = artifacts.load_variant(tmp_path / "q")
    assert not loaded.needs_compile
    assert loaded.recipe == {"kind": "quantize", "method": "int8_dynamic"}
    assert torch.equal(_run(loaded.built.module, inputs), outputs)


def test_int8_dynamic_quantizes_the_head_of_a_recurrent_model_and_reports_the_cell() -> None:
    base = _build("gru", TOKENS, hidden_size=16)
    inputs = _inputs(TOKENS, 32)
    result = quantize.quantize_in_place(base.module, "int8_dynamic")
    assert result.quantized_layers == ["fc"]
    assert "rnn" in result.float_layers and "embedding" in result.float_layers
    outputs = _run(result.module, inputs)
    reference = _run(base.module, inputs)
    assert (outputs - reference).abs().max() <= 0.05 * reference.abs().max()


def test_int8_static_stays_close_and_reloads_bit_identically(tmp_path: Path) -> None:
    base = _build("cnn", IMAGES, channels=[8, 16], hidden=[32])
    inputs = _inputs(IMAGES, 128)
    reference = _run(base.module, inputs)
    calibration = [_inputs(IMAGES, 16, seed=10 + i) for i in range(3)]
    result, ranges = quantize.quantize_static(base.module, calibration)
    assert result.needs_compile
    assert result.quantized_layers == ["features.0", "features.3", "classifier.1",
                                       "classifier.3"]
    assert ranges and all(k.startswith("activation_post_process") for k in ranges)
    outputs = _run(result.module, inputs)
    assert not torch.equal(outputs, reference)
    _assert_close_to_float(outputs, reference)

    state = result.module.state_dict()
    assert any(t.dtype == torch.int8 for t in state.values())
    tensors = {**state, **{artifacts.RANGES_PREFIX + k: v for k, v in ranges.items()}}
    float_bytes = artifacts.save_variant(tmp_path / "base", "base", base, IMAGES,
                                         {"kind": "base"})
    int8_bytes = artifacts.save_variant(
        tmp_path / "q", "int8-static", replace(base, module=result.module), IMAGES,
        {"kind": "quantize", "method": "int8_static"}, tensors, {}, "safetensors+pt2e")
    assert int8_bytes < float_bytes
    loaded = artifacts.load_variant(tmp_path / "q")  # no calibration data needed
    assert loaded.needs_compile
    assert torch.equal(_run(loaded.built.module, inputs), outputs)


def test_unsupported_quantizations_are_named_up_front() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert quantize.unsupported_reason("int8_dynamic", cpu) is None
    assert quantize.unsupported_reason("int8_static", cpu) is None
    assert quantize.unsupported_reason("int8_weight_only", cpu) is None
    assert "CUDA" in quantize.unsupported_reason("int4_weight_only", cpu)
    assert quantize.unsupported_reason("int4_weight_only", cuda) is None
    assert "CPU" in quantize.unsupported_reason("int8_static", cuda)


# --- distillation ---------------------------------------------------------------------------


def _by_hand(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
             temperature: float, alpha: float) -> float:
    """The distillation loss with explicit softmax sums, one prediction per position."""
    classes = student.shape[-1]
    rows_s = student.reshape(-1, classes).double().tolist()
    rows_t = teacher.reshape(-1, classes).double().tolist()
    flat_labels = labels.reshape(-1).tolist()

    def log_softmax(row: list[float], t: float) -> list[float]:
        scaled = [v / t for v in row]
        top = max(scaled)
        log_sum = top + math.log(sum(math.exp(v - top) for v in scaled))
        return [v - log_sum for v in scaled]

    kl = ce = 0.0
    for s, t, y in zip(rows_s, rows_t, flat_labels, strict=True):
        log_q, log_p = log_softmax(s, temperature), log_softmax(t, temperature)
        kl += sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q, strict=True))
        ce -= log_softmax(s, 1.0)[y]
    rows = len(rows_s)
    return alpha * temperature**2 * kl / rows + (1 - alpha) * ce / rows


@pytest.mark.parametrize(("shape", "temperature", "alpha"), [
    ((6, 5), 4.0, 0.5),
    ((6, 5), 1.0, 0.9),
    ((3, 4, 7), 2.5, 0.3),  # (batch, time, vocab): every position is one prediction
])
def test_distillation_loss_matches_a_hand_computation(shape: tuple[int, ...],
                                                      temperature: float, alpha: float) -> None:
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(*shape, generator=generator) * 3
    teacher = torch.randn(*shape, generator=generator) * 3
    labels = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    info = LM if len(shape) == 3 else IMAGES
    hard = task_for(info).loss(student, labels)
    loss = distill.distillation_loss(student, teacher, labels, hard, temperature, alpha)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(_by_hand(student, teacher, labels, temperature, alpha),
                                        rel=1e-5)
    # The task wrapper computes the same from (student, teacher) outputs.
    task = distill.DistillationTask(task_for(info), temperature, alpha)
    assert torch.allclose(task.loss((student, teacher), labels), loss)
    assert distill.distillation_loss(student, teacher, labels, hard, temperature,
                                     0.0) is hard
    assert torch.equal(distill.distillation_loss(student, teacher, labels, hard,
                                                 temperature, 0.0), hard)


def test_a_teacher_identical_to_the_student_costs_nothing_beyond_the_hard_loss() -> None:
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([0, 1, 2, 3])
    hard = task_for(IMAGES).loss(logits, labels)
    loss = distill.distillation_loss(logits, logits.clone(), labels, hard, 3.0, 0.7)
    assert loss.item() == pytest.approx(0.3 * hard.item(), abs=1e-6)


def test_teacher_student_trains_only_the_student(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    config = load_config(path)
    device = torch.device("cpu")
    data = build_data(config.data, device)
    teacher = build_model(config.model, data.info)
    torch.manual_seed(0)
    student = _build("cnn", data.info, channels=[2, 4], hidden=[8])
    teacher.module.train()  # TeacherStudent runs it in eval mode and puts the mode back
    pair = distill.TeacherStudent(student.module, teacher.module)

    assert {id(p) for p in pair.parameters()} == {id(p) for p in student.module.parameters()}
    assert not any(id(p) in {id(q) for q in pair.parameters()}
                   for p in teacher.module.parameters())
    ours, theirs = pair(data.train.x[:4])
    assert ours.requires_grad and ours.grad_fn is not None
    assert not theirs.requires_grad and theirs.grad_fn is None
    assert teacher.module.training

    teacher_before = copy.deepcopy(teacher.module.state_dict())
    student_before = copy.deepcopy(student.module.state_dict())
    context = BuildContext(teacher, data.info, data, config, device, tmp_path / "variants")
    task = distill.DistillationTask(task_for(data.info), temperature=2.0, alpha=0.5)
    facts = train_steps(replace(student, module=pair), context, 3, task)
    assert facts["steps"] == 3 and math.isfinite(facts["final_loss"])
    for key, value in teacher.module.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert all(p.grad is None for p in teacher.module.parameters())
    assert any(not torch.equal(value, student_before[key])
               for key, value in student.module.state_dict().items())


# --- Pareto marks ---------------------------------------------------------------------------

OBJECTIVES = [pareto.Objective("accuracy", maximize=True), pareto.Objective("latency"),
              pareto.Objective("bytes")]


def test_dominated_by_with_mixed_directions_and_ties() -> None:
    candidates = {
        "base": {"accuracy": 0.90, "latency": 10.0, "bytes": 100},
        "faster": {"accuracy": 0.90, "latency": 5.0, "bytes": 100},  # beats base on latency
        "better": {"accuracy": 0.95, "latency": 10.0, "bytes": 100},  # beats base on accuracy
        "small": {"accuracy": 0.80, "latency": 5.0, "bytes": 50},  # trades accuracy for size
        "twin": {"accuracy": 0.80, "latency": 5.0, "bytes": 50},  # a tie with small
        "worse": {"accuracy": 0.80, "latency": 6.0, "bytes": 50},  # small/twin, but slower
        "low-acc": {"accuracy": 0.70, "latency": 1.0, "bytes": 100},  # fastest, least accurate
    }
    assert pareto.dominated_by(candidates, OBJECTIVES) == {
        "base": ["faster", "better"],
        "faster": [],
        "better": [],
        "small": [],
        "twin": [],
        "worse": ["small", "twin"],
        "low-acc": [],
    }
    # Maximised: higher accuracy wins; minimised: lower latency wins; equal in all: neither.
    assert pareto.dominates(candidates["better"], candidates["base"], OBJECTIVES)
    assert not pareto.dominates(candidates["base"], candidates["better"], OBJECTIVES)
    assert not pareto.dominates(candidates["small"], candidates["twin"], OBJECTIVES)
    assert not pareto.dominates(candidates["twin"], candidates["small"], OBJECTIVES)
    assert not pareto.dominates(candidates["base"], candidates["base"], OBJECTIVES)


def test_usable_drops_an_objective_some_candidate_lacks() -> None:
    joules = pareto.Objective("joules")
    candidates = {"base": {"accuracy": 0.9, "latency": 2.0, "bytes": 10, "joules": 1.0},
                  "int8": {"accuracy": 0.9, "latency": 1.0, "bytes": 5, "joules": None},
                  "pruned": {"accuracy": 0.8, "latency": 2.0, "bytes": 10}}
    assert pareto.usable(candidates, [*OBJECTIVES, joules]) == OBJECTIVES
    assert pareto.usable({k: v for k, v in candidates.items() if k == "base"},
                         [*OBJECTIVES, joules]) == [*OBJECTIVES, joules]
    assert pareto.usable({}, OBJECTIVES) == []
    marks = pareto.dominated_by(candidates, pareto.usable(candidates, [*OBJECTIVES, joules]))
    assert marks == {"base": ["int8"], "int8": [], "pruned": ["base", "int8"]}


# --- the optimize: config section -----------------------------------------------------------


def _config(tmp_path: Path, section: str):
    path = tmp_path / "optimize.yaml"
    path.write_text(TINY + section + "\n")
    return load_config(path)


@pytest.mark.parametrize(("section", "expected"), [
    ("optimize: {variants: [{kind: shrink, amount: 0.5}]}",
     ["optimize.variants.0.kind", "'shrink'", "'prune', 'quantize' or 'distill'"]),
    ("optimize: {variants: [{amount: 0.5}]}", ["optimize.variants.0.kind", "required"]),
    ("optimize: {variants: [{kind: prune, amount: 0}]}",
     ["optimize.variants.0.amount", "outside (0, 1)"]),
    ("optimize: {variants: [{kind: prune, amount: 1}]}",
     ["optimize.variants.0.amount", "outside (0, 1)"]),
    ("optimize: {variants: [{kind: prune, amount: 1.5}]}",
     ["optimize.variants.0.amount", "1.5", "outside (0, 1)"]),
    ("optimize: {variants: [{kind: prune, amount: -0.1}]}",
     ["optimize.variants.0.amount", "-0.1", "outside (0, 1)"]),
    ("optimize: {variants: [{kind: quantize, method: int8_dynamic},\n"
     "                      {kind: prune, method: structured, amount: [0.5, 1.0]}]}",
     ["optimize.variants.1.amount", "outside (0, 1)"]),
    ("optimize: {variants: [{kind: prune, amount: 0.5}, {kind: prune, amount: [0.9, 0.5]}]}",
     ["optimize", "'prune-50%' is used twice"]),
    ("optimize: {variants: [{kind: quantize, method: int8_dynamic},\n"
     "                      {kind: quantize, method: int8_dynamic}]}",
     ["optimize", "'int8-dynamic' is used twice"]),
    ("optimize: {variants: [{kind: quantize, method: int8_static, name: base}]}",
     ["optimize", "'base'"]),
    ("optimize: {variants: [{kind: distill, student: {name: cnnn}}]}",
     ["optimize.variants.0.student.name", "unknown model 'cnnn'", "did you mean 'cnn'"]),
    ("optimize: {variants: [{kind: prune, amount: 0.5, methd: structured}]}",
     ["unknown key 'optimize.variants.0.methd'"]),
], ids=["unknown-kind", "no-kind", "amount-0", "amount-1", "amount-1.5", "amount-negative",
        "amount-in-list", "duplicate-prune", "duplicate-quantize", "base-name",
        "unknown-student", "unknown-key"])
def test_bad_optimize_sections_are_one_clear_config_error(tmp_path: Path, section: str,
                                                          expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, section)
    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith(f"{tmp_path / 'optimize.yaml'}:")
    for text in expected:
        assert text in problem


def test_variant_names_expand_amounts_and_add_the_baseline(tmp_path: Path) -> None:
    config = _config(tmp_path, """\
optimize:
  variants:
    - {kind: prune, amount: [0.5, 0.9]}
    - {kind: prune, method: structured, amount: 0.5, finetune_steps: 2}
    - {kind: prune, name: gentle, amount: 0.125}
    - {kind: prune, name: sweep, amount: [0.25, 0.75]}
    - {kind: quantize, method: int8_dynamic}
    - {kind: quantize, method: int8_static, calibration_batches: 2}
    - {kind: distill, student: {name: cnn, channels: [2, 4], hidden: [8]}}
    - {kind: distill, name: nobase, student: {name: cnn, channels: [2]}, baseline: false}
""")
    assert variant_names(config.optimize) == [
        "prune-50%", "prune-90%", "structured-50%", "gentle", "sweep-25%", "sweep-75%",
        "int8-dynamic", "int8-static", "distill-cnn", "distill-cnn-baseline", "nobase"]
    first = config.optimize.variants[0]
    assert isinstance(first, PruneVariant) and first.amounts() == [0.5, 0.9]
    assert config.optimize.variants[2].amounts() == [0.125]


def test_the_measurement_order_balances_positions() -> None:
    from bigbench.optimize.measure import rotation

    names = [f"v{i}" for i in range(8)]
    orders = [rotation(names, r, 3) for r in range(3)]
    assert all(sorted(order) == names for order in orders)
    assert len({order[0] for order in orders}) == 3  # three different leaders
    mean_position = {n: sum(o.index(n) for o in orders) / 3 for n in names}
    # Forward order alone would give v0 a mean position of 0 and v7 of 7.
    assert max(mean_position.values()) - min(mean_position.values()) < 4


def test_pareto_ties_within_the_tolerance() -> None:
    latency = pareto.Objective("latency", tolerance=0.05)
    accuracy = pareto.Objective("accuracy", maximize=True)
    a, b = {"latency": 1.00, "accuracy": 0.9}, {"latency": 1.03, "accuracy": 0.9}
    assert not pareto.dominates(a, b, [latency, accuracy])  # 3% apart: noise, a tie
    c = {"latency": 1.10, "accuracy": 0.9}
    assert pareto.dominates(a, c, [latency, accuracy])
    assert pareto.compare(0.91, 0.9, accuracy) == 1 and pareto.compare(1.0, 1.04, latency) == 0
