"""Typed result models: run.json (``bigbench.run/1``), bench.json (``bigbench.bench/1``),
optimize.json (``bigbench.optimize/1``) and sweep.json (``bigbench.sweep/1``).

Owns: the pydantic models of these files, their schema identifiers, their exported JSON Schemas
and the loaders that validate a file someone hands bigbench. Readers (compare, summaries, bench
tables) read these models instead of walking dictionaries.
Must never import: torch, or anything that measures, trains or prints.

Sections accept unknown keys (a newer writer stays readable); every key written today is
declared with its type and a description. A figure that was not measured is null, and its
section's ``reasons`` maps the field name to why (bench points' sections may still carry one
``reason`` sentence instead).
"""

from __future__ import annotations

from bigbench.records.bench import (
    BenchDocument,
    BenchPoint,
    CompileWindow,
    JPerSample,
    MaxBatch,
    Plan,
    PointEnergy,
    PointFlops,
    PointMemory,
    PointModel,
    PointSettings,
    PointSteps,
    RepeatEnergy,
    Scaling,
    ScalingSize,
)
from bigbench.records.common import (
    BENCH_SCHEMA,
    OPTIMIZE_SCHEMA,
    RUN_SCHEMA,
    DeviceInfo,
    EnergyDevice,
    EnergyMeterInfo,
    Environment,
    Part,
    ReasonedSection,
    Section,
    Spread,
    StepTimes,
    Telemetry,
)
from bigbench.records.load import (
    RecordError,
    json_schema,
    load_bench,
    load_optimize,
    load_result,
    load_run,
    load_sweep,
    read_document,
    validate,
)
from bigbench.records.optimize import (
    LayerSparsity,
    OptimizeBase,
    OptimizeConfig,
    OptimizeDocument,
    OptimizeSettings,
    OptimizeVariant,
    ParetoObjective,
    ParetoSummary,
    SpeedFigures,
    VariantPareto,
    VariantRecipe,
    VariantSparsity,
    VariantStructure,
    VariantTraining,
)
from bigbench.records.run import (
    Carbon,
    CompileCost,
    Distributed,
    Evaluation,
    Files,
    IdleEnergy,
    ModelInfo,
    Performance,
    Progress,
    RunConfig,
    RunEnergy,
    RunFlops,
    RunMemory,
    RunRecord,
    TargetEvaluation,
    Throughput,
    TrainingTarget,
    Window,
)
from bigbench.records.sweep import (
    SWEEP_SCHEMA,
    Cooldown,
    ResultPareto,
    SweepCombination,
    SweepDevice,
    SweepDocument,
    SweepFrontier,
    SweepGpu,
    SweepOptimum,
    SweepResult,
    SweepRunConfig,
    SweepSettings,
    SweepTarget,
    SweepTrial,
)

__all__ = [
    "BENCH_SCHEMA", "OPTIMIZE_SCHEMA", "RUN_SCHEMA", "BenchDocument", "BenchPoint", "Carbon",
    "CompileCost", "CompileWindow", "DeviceInfo", "Distributed", "EnergyDevice",
    "EnergyMeterInfo", "Environment",
    "Evaluation", "Files", "IdleEnergy", "JPerSample", "LayerSparsity", "MaxBatch", "ModelInfo",
    "OptimizeBase", "OptimizeConfig", "OptimizeDocument", "OptimizeSettings", "OptimizeVariant",
    "ParetoObjective", "ParetoSummary", "Part", "Performance", "Plan", "PointEnergy", "PointFlops",
    "PointMemory", "PointModel", "PointSettings", "PointSteps", "Progress", "ReasonedSection",
    "RecordError", "RepeatEnergy", "RunConfig", "RunEnergy", "RunFlops", "RunMemory", "RunRecord",
    "Scaling", "ScalingSize", "Section", "SpeedFigures", "Spread", "StepTimes",
    "TargetEvaluation", "Telemetry", "Throughput", "TrainingTarget", "VariantPareto",
    "VariantRecipe", "VariantSparsity", "VariantStructure", "VariantTraining", "Window",
    "json_schema", "load_bench", "load_optimize", "load_result", "load_run", "read_document",
    "validate",
    # sweep.json
    "SWEEP_SCHEMA", "Cooldown", "ResultPareto", "SweepCombination", "SweepDevice",
    "SweepDocument", "SweepFrontier", "SweepGpu", "SweepOptimum", "SweepResult",
    "SweepRunConfig", "SweepSettings", "SweepTarget", "SweepTrial", "load_sweep",
]
