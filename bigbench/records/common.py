"""Building blocks shared by run.json, bench.json and optimize.json: sections, spreads,
environment, energy.

Every section accepts unknown extra keys (a newer writer stays readable) but declares, with its
type, every key the writer emits today. Validation is strict: ``"12"`` is not a number and
``true`` is not an integer, so a damaged file is refused instead of silently coerced.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Identifier in the ``schema`` key of run.json.
RUN_SCHEMA = "bigbench.run/1"
#: Identifier in the ``schema`` key of bench.json.
BENCH_SCHEMA = "bigbench.bench/1"
#: Identifier in the ``schema`` key of optimize.json.
OPTIMIZE_SCHEMA = "bigbench.optimize/1"

Quality = Literal["ok", "low", "invalid"]
EnergyStatus = Literal["measured", "partial", "unavailable"]

_REASONS = "Why each null figure of this section is null: field name → reason."
_REASON = ("One sentence for the whole section: what is missing and why (energy status; the "
           "older single-reason form of bench points' memory and FLOPs sections).")


def field(description: str, default: Any = ..., **kwargs: Any) -> Any:
    """A described field (``...``: required)."""
    if "default_factory" in kwargs:
        return Field(description=description, **kwargs)
    return Field(default, description=description, **kwargs)


def _drop_null(schema: dict[str, Any]) -> None:
    options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


def absent(description: str) -> Any:
    """A key the writer leaves out rather than writing null: optional, and never null in the
    JSON Schema."""
    return Field(None, description=description, json_schema_extra=_drop_null)


class Part(BaseModel):
    """A part of a result: unknown keys allowed, known keys typed, validation strict."""

    model_config = ConfigDict(extra="allow", strict=True)


class Section(Part):
    """A part holding figures that may be null: ``reasons`` says why each null one is."""

    reasons: dict[str, str] = Field(default_factory=dict, description=_REASONS)


class ReasonedSection(Section):
    """A section that may also carry one overall ``reason`` sentence."""

    reason: str | None = field(_REASON, None)


class StepTimes(Part):
    """Percentiles of step durations in seconds (all null when no step was measured)."""

    p50: float | None = field("Median step time, s.")
    p90: float | None = field("90th percentile step time, s.")
    p99: float | None = field("99th percentile step time, s.")
    mean: float | None = field("Mean step time, s.")
    min: float | None = field("Shortest step, s.")
    max: float | None = field("Longest step, s.")


class Spread(Part):
    """A figure measured once per repeat: median and interquartile range of the repeats."""

    median: float | None = field("Median over the repeats (null: none measured).")
    iqr: float | None = field("Interquartile range over the repeats, same unit as the median.")
    values: list[float] = field("The figure of every measured repeat.", default_factory=list)
    noisy: bool | None = field("True when the IQR exceeds 10% of the median.", None)


class Telemetry(Part):
    """Device state read at a window edge (absent keys: the device does not report them)."""

    temperature_c: float | None = field("GPU temperature, °C.", None)
    sm_clock_mhz: float | None = field("Streaming-multiprocessor clock, MHz.", None)
    power_limit_w: float | None = field("Enforced power limit, W.", None)
    throttle_reasons: int | None = field("NVML clock-event (throttle) reason bit mask.", None)
    error: str | None = field("Why telemetry could not be read.", None)


class DeviceInfo(Part):
    """The device a result was measured on."""

    type: str = field("Device type: cpu or cuda.")
    name: str = field("Marketing name, e.g. 'NVIDIA H100 80GB HBM3' or the CPU model.")
    index: int | None = field("CUDA device index (null on CPU).", None)
    uuid: str | None = field("CUDA device UUID (null on CPU).", None)
    total_memory_bytes: int | None = field("Device memory, bytes (null on CPU).", None)
    capability: str | None = field("CUDA compute capability, e.g. '9.0' (null on CPU).", None)
    logical_cpus: int | None = field("Logical CPUs (CPU devices).", None)
    torch_threads: int | None = field("torch intra-op threads (CPU devices).", None)


class EnergyMeterInfo(Part):
    """Static facts of one working energy meter (GPU through NVML, or a RAPL zone)."""

    key: str = field("Stable meter key, e.g. 'gpu:GPU-8f3…' or 'rapl:host:package-0'.")
    kind: str = field("gpu, cpu (RAPL package) or dram (RAPL DRAM zone).")
    name: str | None = field("GPU name (GPU meters).", None)
    uuid: str | None = field("GPU UUID (GPU meters).", None)
    driver_version: str | None = field("NVIDIA driver version (GPU meters).", None)
    power_limit_w: float | None = field("Enforced power limit, W (GPU meters).", None)
    min_power_limit_w: float | None = field("Lowest power limit the GPU accepts, W (GPU "
                                            "meters).", None)
    max_power_limit_w: float | None = field("Highest power limit the GPU accepts, W (GPU "
                                            "meters; the max_power of a sweep's cost).", None)
    energy_counter: bool | None = field("Whether the GPU has a total-energy counter.", None)
    power_method: str | None = field("How power is read, e.g. nvml_power_instant.", None)
    application_sm_clock_mhz: float | None = field(
        "SM clock the GPU runs applications at (its application-clock setting), MHz.", None)
    max_sm_clock_mhz: float | None = field("Highest SM clock the GPU allows, MHz.", None)
    zone: str | None = field("powercap zone folder (RAPL meters).", None)
    max_energy_range_uj: int | None = field("RAPL counter wrap-around value, µJ.", None)


class Environment(Part):
    """Versions, host and device: everything needed to tell whether two results compare."""

    bigbench: str = field("bigbench version.")
    python: str = field("Python version.")
    torch: str = field("torch version.")
    cuda: str | None = field("CUDA version torch was built with (null: CPU-only build).")
    cudnn: int | None = field("cuDNN version (null without CUDA).")
    os: str = field("Operating system and kernel release.")
    hostname: str = field("Host name.")
    cpu: str = field("CPU model name.")
    logical_cpus: int | None = field("Logical CPUs of the host.")
    torch_threads: int = field("torch intra-op threads.")
    device: DeviceInfo = field("The device measured.")
    git_commit: str | None = field("Commit of the bigbench checkout ('-dirty' when modified).")
    argv: list[str] = field("The command line.")
    energy_meters: list[EnergyMeterInfo] = field(
        "Every working energy meter (absent in older files).", default_factory=list)


class EnergyDevice(Part):
    """Energy of one device over a window, with provenance; a meter that did not work appears
    with ``measured: false`` and its ``reason``."""

    key: str | None = field("Meter key (absent for meters that did not work).", None)
    kind: str = field("gpu, cpu or dram.")
    name: str = field("Device or zone name.")
    energy_j: float | None = field("Energy of the window, J.")
    measured: bool = field("Whether this device's energy was measured.")
    method: str | None = field(
        "nvml_energy_counter, rapl, or '<power method>_integral' without a counter.", None)
    quality: Quality | None = field("ok, low or invalid.", None)
    quality_reasons: list[str] = field("Why the quality is not ok.", default_factory=list)
    reason: str | None = field("Why the device was not measured.", None)
    power_method: str | None = field("How power samples were read.", None)
    duration_s: float | None = field("Window duration, s.", None)
    samples: int | None = field("Power samples inside the window.", None)
    avg_power_w: float | None = field("energy_j / duration_s, W.", None)
    peak_power_w: float | None = field("Highest power sample, W.", None)
    integral_j: float | None = field("Trapezoid integral of the power samples, J.", None)
    integral_uncertainty_j: float | None = field("Half-width of integral_j's bound, J.", None)
    counter_j: float | None = field("Energy-counter difference, J.", None)
    counter_fallback: str | None = field("Why the counter was not the headline figure.", None)
    counter_period_s: float | None = field("Counter update period, s.", None)
    counter_period_basis: Literal["observed", "assumed"] | None = field(
        "Whether counter_period_s was observed or assumed.", None)
    uncertainty_j: float | None = field("Half-width of energy_j's error bound, J.", None)
    uncertainty_method: str | None = field("How uncertainty_j was bounded.", None)
    uncertainty_rel: float | None = field("uncertainty_j / energy_j (fraction).", None)
    reasons: dict[str, str] = field("Why each null figure of this device is null (its "
                                    "energy's absence itself: ``reason``).",
                                    default_factory=dict)
    uuid: str | None = field("GPU UUID (GPUs).", None)
    counter_vs_integral_diff: float | None = field(
        "(counter - integral) / max(|counter|, |integral|), fraction (GPUs).", None)
    telemetry_start: Telemetry | None = field("Telemetry at the window's start.", None)
    telemetry_end: Telemetry | None = field("Telemetry at the window's end.", None)
