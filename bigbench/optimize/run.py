"""``bigbench optimize`` as a library call: check, get the base, build variants, measure.

Stages, each writing optimize.json (schema ``bigbench.optimize/1``) so an interrupted or failed
run keeps what it had:

1. Checks that need no training: the ``optimize:`` section, torchao, which recipes fit the
   model, the students' classes, ``--from``. Every user mistake stops here, exit 2.
2. The base model: the weights of ``--from`` (a training run or a variant folder), or trained
   from the config into ``<out>/base`` (a normal run directory).
3. Each variant built from a copy of the base and saved under ``variants/<name>/``; a recipe
   that fails is recorded as ``failed`` and the others still run.
4. Quality on the test split, then speed and energy in interleaved rounds (measure.py).
5. Deltas to the base and Pareto marks (quality × latency × size × J/sample).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bigbench import devices, pareto
from bigbench.config.optimize import DistillVariant, PruneVariant, QuantizeVariant, variant_names
from bigbench.config.schema import ExperimentConfig
from bigbench.data import build_data
from bigbench.data.info import DataInfo
from bigbench.errors import ConfigError
from bigbench.models import BuiltModel, build_model
from bigbench.models.registry import MODELS
from bigbench.optimize import artifacts, prune, quantize
from bigbench.optimize.measure import SpeedPlan, evaluate, measure_speed
from bigbench.optimize.variants import (
    BuildContext,
    BuildInterruptedError,
    Variant,
    build_distill,
    build_prune,
    build_quantize,
    check_student,
)
from bigbench.records import OPTIMIZE_SCHEMA
from bigbench.results import DocumentRun, create_run_dir

OPTIMIZE_FILE = "optimize.json"

Progress = Callable[[str], None]


class OptimizeRun(DocumentRun):
    """A finished (or stopped) optimize run: its folder, optimize.json and warnings."""

    file_name = OPTIMIZE_FILE


def primary_metric(info: DataInfo) -> pareto.Objective:
    """What "quality" means for the task: accuracy (up) or the eval loss per token (down)."""
    if info.task == "language_modeling":
        return pareto.Objective("loss", maximize=False)
    return pareto.Objective("accuracy", maximize=True)


def check_section(config: ExperimentConfig) -> None:
    """The config has an ``optimize:`` section (checked before any data is built)."""
    if config.optimize is None:
        raise ConfigError("the config has no optimize: section; add one listing variants, e.g. "
                          "optimize: {variants: [{kind: quantize, method: int8_dynamic}]} "
                          "(see configs/optimize-cnn.yaml)")


def check_plan(config: ExperimentConfig, from_dir: Path | None, device: torch.device,
               info: DataInfo) -> None:
    """Every check that needs no training (raises ConfigError; see the module docs)."""
    check_section(config)
    section = config.optimize
    assert section is not None
    family = MODELS.get(config.model.name).extras["family"].name
    for variant in section.variants:
        if isinstance(variant, PruneVariant) and variant.method == "structured":
            reason = prune.structured_support(family, config.model.name)
            if reason is not None:
                raise ConfigError(f"optimize: {reason}")
        if isinstance(variant, QuantizeVariant):
            reason = quantize.unsupported_reason(variant.method, device)
            if reason is not None and reason.startswith("torchao is not installed"):
                raise ConfigError(f"optimize: {variant.method}: {reason}")
    with torch.device("meta"):
        teacher = build_model(config.model, info)
    for variant in section.variants:
        if isinstance(variant, DistillVariant):
            check_student(variant, teacher, info)
    if from_dir is not None:
        _check_from(from_dir, config, info)


def _check_from(from_dir: Path, config: ExperimentConfig, info: DataInfo) -> None:
    """``--from`` must be a training run of the config's model with weights, or a float
    variant folder, built for data of the config's shape."""
    if not from_dir.is_dir():
        raise ConfigError(f"--from {from_dir}: no such directory")
    if artifacts.is_variant(from_dir):
        document = artifacts.read_variant_document(from_dir)
        if document.get("format", "safetensors") != "safetensors":
            raise ConfigError(f"--from {from_dir}: a quantized model ({document['recipe']}) "
                              "cannot be pruned, quantized or distilled again; start from a "
                              "float variant or its base")
        _check_data(from_dir, artifacts.info_from(document["data"]), info)
        return
    if (from_dir / OPTIMIZE_FILE).is_file():
        raise ConfigError(f"--from {from_dir}: that is an optimize run; pass its base or one of "
                          f"its variants, e.g. {from_dir / 'variants' / 'base'}")
    weights, saved = from_dir / "model.safetensors", from_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"--from {from_dir}: not a run directory (no config.yaml) and not a "
                          "variant folder (no variant.json)")
    if not weights.is_file():
        raise ConfigError(f"--from {from_dir}: the run has no model.safetensors (it was "
                          "interrupted early or ran with output.save_weights: false)")
    from bigbench.config import load_config

    saved_config = load_config(saved)
    theirs = saved_config.model
    if theirs != config.model:
        raise ConfigError(f"--from {from_dir}: that run trained model '{theirs.name}' "
                          f"({_brief(theirs)}) but the config's model is '{config.model.name}' "
                          f"({_brief(config.model)}); pass the run's own config")
    _check_data(from_dir, build_data(saved_config.data, torch.device("cpu")).info, info)


def _check_data(from_dir: Path, theirs: DataInfo, ours: DataInfo) -> None:
    """The saved model's data has the config's sample shape, classes, vocabulary and task."""
    for key in ("sample_shape", "num_classes", "vocab_size", "task"):
        mine, saved = getattr(ours, key), getattr(theirs, key)
        if tuple(mine) != tuple(saved) if key == "sample_shape" else mine != saved:
            raise ConfigError(f"--from {from_dir}: its model was built for data with {key} "
                              f"{saved} but the config's data has {mine}; pass a config with "
                              "the same data")


def _brief(model: Any) -> str:
    args = model.model_dump(exclude_defaults=True, exclude={"name"})
    return ", ".join(f"{k}={v}" for k, v in args.items()) or "defaults"


def load_base(from_dir: Path) -> BuiltModel:
    """The base model from a variant folder or a training run's weights (on the CPU)."""
    loaded = artifacts.load_source(from_dir)
    if loaded.needs_compile:
        raise ConfigError(f"--from {from_dir}: a statically quantized graph cannot be modified "
                          "further; start from its base")
    return loaded.built


def run_optimize(config: ExperimentConfig, *, from_dir: Path | None = None,
                 out: Path | None = None, should_stop: Callable[[], bool] = lambda: False,
                 progress: Progress = lambda line: None) -> OptimizeRun:
    """Build and measure every variant of ``config``'s ``optimize:`` section.

    Raises:
        BigbenchError: a user mistake, before anything is written or trained.
    """
    check_section(config)
    device = devices.resolve(config.device)
    from bigbench.workload.build import seed_everything

    seed_everything(config.train.seed)
    dataset = build_data(config.data, device)
    info = dataset.info
    check_plan(config, from_dir, device, info)
    run = OptimizeRun(create_run_dir(Path(config.output.dir), f"{config.name}-optimize", out),
                      _start_document(config, from_dir))
    run.write()
    try:
        _stages(run, config, from_dir, device, dataset, should_stop, progress)
    except KeyboardInterrupt:
        run.document["status"] = "interrupted"
    except Exception as exc:  # recorded, then raised: optimize.json says what happened
        run.document.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                            traceback=traceback.format_exc(limit=8))
        run.write()
        raise
    if run.document["status"] == "running":
        run.document["status"] = "interrupted" if should_stop() else "completed"
    run.document["finished_at"] = _now()
    run.write()
    from bigbench.records import OptimizeDocument, RecordError, validate

    try:  # the typed model is the contract; a mismatch is a bug, reported, not fatal
        validate(run.document, OptimizeDocument, OPTIMIZE_FILE)
    except RecordError as exc:
        run.warnings.append(f"{exc.problems[0]} (a bug in bigbench: please report it)")
    return run


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _start_document(config: ExperimentConfig, from_dir: Path | None) -> dict[str, Any]:
    section = config.optimize
    assert section is not None
    return {"schema": OPTIMIZE_SCHEMA, "status": "running", "name": config.name,
            "started_at": _now(), "finished_at": None,
            "config": config.model_dump(mode="json"),
            "base": {"source": "from" if from_dir else "trained",
                     "path": str(from_dir) if from_dir else None},
            "planned": ["base", *variant_names(section)], "variants": []}


def _stages(run: OptimizeRun, config: ExperimentConfig, from_dir: Path | None,
            device: torch.device, dataset: Any, should_stop: Callable[[], bool],
            progress: Progress) -> None:
    section = config.optimize
    assert section is not None
    info = dataset.info
    base = _base(run, config, from_dir, info, should_stop, progress)
    if base is None:
        return
    base.module.to(device).eval()
    context = BuildContext(base, info, dataset, config, device, run.out_dir / "variants",
                           should_stop)
    variants = [_base_variant(base, context)]
    run.document["variants"] = [_entry(v) for v in variants]
    run.write()
    for variant in _built(section, context, should_stop, progress):
        variants.append(variant)
        run.document["variants"] = [_entry(v) for v in variants]
        run.write()
    if should_stop():
        return
    metric = primary_metric(info)
    eval_size = config.train.eval_batch_size or config.train.batch_size
    for variant in variants:
        if variant.status == "ok" and not should_stop():
            progress(f"evaluating {variant.name}")
            _evaluate(variant, dataset, eval_size, info)
    if should_stop():
        return
    bench_batch = section.batch_size or config.train.batch_size
    plan = SpeedPlan(tuple(sorted({1, bench_batch})), section.steps, section.warmup,
                     section.repeats)
    from bigbench.measurement import energy_monitor, environment

    energy = energy_monitor(config.measure, device)
    run.document.update(env=environment(device, energy),
                        settings={"batch_sizes": list(plan.batch_sizes), "steps": plan.steps,
                                  "warmup": plan.warmup, "rounds": plan.rounds,
                                  "order": "each round starts at a different variant and "
                                           "alternates direction",
                                  "metric": metric.key, "device": str(device)})
    energy.start()
    try:
        speed = measure_speed(variants, info, plan, device, energy, should_stop,
                              lambda r, name, b: progress(
                                  f"round {r + 1}/{plan.rounds}: {name} at batch {b}"))
    finally:
        energy.stop()
    for variant in variants:
        variant.facts["speed"] = speed.get(variant.name)
    run.document["variants"] = [_entry(v) for v in variants]
    _finish(run.document, metric, plan)


def _evaluate(variant: Variant, dataset: Any, batch_size: int, info: DataInfo) -> None:
    """The variant's quality; a failure marks this variant failed, never the run."""
    try:
        variant.facts["eval"], reasons = evaluate(variant, dataset.test, batch_size, info)
    except Exception as exc:  # one variant's failure must not cost the others
        variant.status, variant.reason = "failed", f"evaluation: {type(exc).__name__}: {exc}"
        return
    if reasons:
        variant.facts["eval_reasons"] = reasons


def _base(run: OptimizeRun, config: ExperimentConfig, from_dir: Path | None, info: DataInfo,
          should_stop: Callable[[], bool], progress: Progress) -> BuiltModel | None:
    """Load or train the base; None when training it did not complete (status recorded)."""
    if from_dir is not None:
        progress(f"loading the base model from {from_dir}")
        return load_base(from_dir)
    from bigbench.trainer import run_training

    progress("training the base model")
    trained = config.model_copy(update={"output": config.output.model_copy(
        update={"save_weights": True})})
    stop = _StopFrom(should_stop)
    result = run_training(trained, out=run.out_dir / "base", stop=stop)
    run.document["base"].update(path=str(result.run_dir), status=result.record["status"])
    if result.record["status"] != "completed" or result.run_dir is None:
        run.document["status"] = "interrupted" if result.record["status"] == "interrupted" \
            else "failed"
        run.document["reason"] = f"training the base model ended {result.record['status']}"
        return None
    return load_base(result.run_dir)


class _StopFrom:
    """A StopRequest view of a ``should_stop`` callable (for the base's training run)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop

    @property
    def requested(self) -> bool:
        """Whether the user asked to stop."""
        return self._should_stop()

    @property
    def exit_code(self) -> int:
        """The exit code of an interrupted run."""
        return 130


def _base_variant(base: BuiltModel, context: BuildContext) -> Variant:
    variant = Variant("base", "base", {"kind": "base"}, base,
                      facts={"sparsity": prune.sparsity(base.module)})
    folder = context.folder / "base"
    variant.weights_bytes = artifacts.save_variant(folder, "base", base, context.info,
                                                   variant.recipe)
    variant.weights_file = str(folder / artifacts.WEIGHTS_FILE)
    return variant


def _built(section: Any, context: BuildContext, should_stop: Callable[[], bool],
           progress: Progress) -> Any:
    """Yield every variant of the section in order; a recipe's failure becomes a record."""
    names = iter(variant_names(section))
    for spec in section.variants:
        if isinstance(spec, PruneVariant):
            jobs = [(next(names), lambda n, a=a, s=spec: [build_prune(s, a, n, context)])
                    for a in spec.amounts()]
        elif isinstance(spec, QuantizeVariant):
            jobs = [(next(names), lambda n, s=spec: [build_quantize(s, n, context)])]
        else:
            name = next(names)
            if spec.baseline:
                next(names)
            steps = spec.steps or _planned_steps(context)
            jobs = [(name, lambda n, s=spec, k=steps: build_distill(s, n, context, k))]
        for name, job in jobs:
            if should_stop():
                return
            progress(f"building {name}")
            started = time.perf_counter()
            try:
                made = job(name)
            except BuildInterruptedError:
                return
            except Exception as exc:  # one recipe's failure must not cost the others
                made = [Variant(name, spec.kind, {"kind": spec.kind}, status="failed",
                                reason=f"{type(exc).__name__}: {exc}")]
            for variant in made:
                variant.facts.setdefault("build_s", time.perf_counter() - started)
                yield variant


def _planned_steps(context: BuildContext) -> int:
    from bigbench.data.tensors import Batcher
    from bigbench.workload.build import plan_steps

    train = context.config.train
    batcher = Batcher(context.data.train, train.batch_size, train.drop_last, train.seed)
    return plan_steps(train, batcher.steps_per_epoch, len(context.data.train))[0]


def _entry(variant: Variant) -> dict[str, Any]:
    """A variant's record in optimize.json (measured sections added as they come)."""
    facts = variant.facts
    built = variant.built
    sparsity = facts.get("sparsity") or (prune.sparsity(built.module)
                                         if built is not None and variant.kind == "distill"
                                         else None)
    params = (sparsity or {}).get("params")
    if params is None and variant.flops_twin is not None:
        params = variant.flops_twin.params
    return {
        "name": variant.name, "kind": variant.kind, "status": variant.status,
        "reason": variant.reason, "recipe": variant.recipe,
        "model": built.args if built is not None else None,
        "params": params,
        "nonzero_params": (sparsity or {}).get("nonzero_params"),
        "sparsity": sparsity,
        "weights_file": variant.weights_file, "weights_bytes": variant.weights_bytes,
        "runtime": "torch.compile (inductor)" if variant.needs_compile else "eager",
        **{k: facts[k] for k in ("structure", "quantized_layers", "float_layers", "train",
                                 "build_s", "eval", "eval_reasons", "speed") if k in facts},
    }


#: Measured figures closer than this (relative) are ties in the Pareto marks, at the least.
MIN_TOLERANCE = 0.05


def _noise(figures: list[dict[str, Any]], key: str) -> float:
    """The relative spread of a measured figure over the rounds, the worst of the variants
    (at least MIN_TOLERANCE): differences within it are noise, not a win."""
    spreads = [f[key]["iqr"] / f[key]["median"] for f in figures
               if f.get("status") == "ok" and (f.get(key) or {}).get("median")
               and f[key].get("iqr") is not None]
    return max([MIN_TOLERANCE, *spreads])


def _finish(document: dict[str, Any], metric: pareto.Objective, plan: SpeedPlan) -> None:
    """Deltas to the base and the Pareto marks, over the variants that were measured."""
    entries = {e["name"]: e for e in document["variants"]}
    base_eval = (entries.get("base") or {}).get("eval") or {}
    for entry in entries.values():
        if entry.get("eval") and base_eval:
            entry["delta"] = {k: v - base_eval[k] for k, v in entry["eval"].items()
                              if v is not None and base_eval.get(k) is not None}
    bench = f"batch_{plan.batch_sizes[-1]}"
    measured = [e.get("speed") or {} for e in entries.values() if e["status"] == "ok"]
    objectives = [metric,
                  pareto.Objective("latency_p50_s", tolerance=_noise(
                      [s.get("batch_1") or {} for s in measured], "samples_per_s")),
                  pareto.Objective("weights_bytes"),
                  pareto.Objective("j_per_sample", tolerance=_noise(
                      [s.get(bench) or {} for s in measured], "j_per_sample"))]
    candidates = {}
    for name, entry in entries.items():
        speed = entry.get("speed") or {}
        if entry["status"] != "ok" or (entry.get("eval") or {}).get(metric.key) is None or \
                (speed.get("batch_1") or {}).get("status") != "ok":
            continue
        candidates[name] = {
            metric.key: entry["eval"].get(metric.key),
            "latency_p50_s": speed["batch_1"]["latency_s"]["p50"],
            "weights_bytes": entry["weights_bytes"],
            "j_per_sample": ((speed.get(bench) or {}).get("j_per_sample") or {}).get("median"),
        }
    used = pareto.usable(candidates, objectives)
    marks = pareto.dominated_by(candidates, used) if used else {}
    for name, entry in entries.items():
        entry["pareto"] = {"dominated": bool(marks[name]), "dominated_by": marks[name]} \
            if name in marks else None
    dropped = [o.key for o in objectives if o not in used]
    document["pareto"] = {
        "objectives": [{"key": o.key, "maximize": o.maximize, "tolerance": o.tolerance,
                        "at": "batch_1" if o.key == "latency_p50_s" else
                        (bench if o.key == "j_per_sample" else None)} for o in used],
        "front": [n for n, by in marks.items() if not by],
        "not_used": {k: "not measured for every variant" for k in dropped},
    }

