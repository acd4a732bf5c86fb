"""The target file: the device, its runtimes, and the ladder of budgets to build variants for."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from restnetc.config.base import StrictModel, VersionedConfig
from restnetc.config.paths import FileName
from restnetc.config.units import format_count, parse_bytes, parse_count, parse_milliseconds
from restnetc.host import usable_cpus
from restnetc.shim_abi import MAX_THREADS


class Metric(StrEnum):
    """What a budget limits.

    ``macs`` counts multiply-accumulates; ``flops`` counts floating-point operations with one MAC = 2 FLOPs
    (torch's FlopCounterMode convention). Both are for one image at the project's input size.
    """

    PARAMS = "params"
    MACS = "macs"
    FLOPS = "flops"
    LATENCY_MS = "latency_ms"
    MEMORY_MB = "memory_mb"

    @property
    def measured(self) -> bool:
        """Whether figures of this metric come from measurements (the target's cost table), not from counting."""
        return self in (Metric.LATENCY_MS, Metric.MEMORY_MB)


_PARSERS = {
    Metric.PARAMS: parse_count,
    Metric.MACS: parse_count,
    Metric.FLOPS: parse_count,
    Metric.LATENCY_MS: parse_milliseconds,
    Metric.MEMORY_MB: parse_bytes,
}


class Budget(StrictModel):
    """One rung of the ladder: an upper limit on one metric. Memory limits are stored in bytes."""

    metric: Metric
    limit: float = Field(gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) <= {"metric", "limit"}:
            return data
        allowed = ", ".join(m.value for m in Metric)
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(f"expected one mapping like {{params: 3.6M}} with a key among: {allowed}")
        (key, value), *_ = data.items()
        try:
            metric = Metric(key)
        except ValueError:
            raise ValueError(f"unknown budget metric {key!r}, expected one of: {allowed}") from None
        return {"metric": metric, "limit": _PARSERS[metric](value)}

    def describe(self) -> str:
        """Human-readable form, e.g. ``params <= 3.6M``."""
        if self.metric is Metric.MEMORY_MB:
            return f"memory <= {self.limit / 1e6:.4g}MB"
        if self.metric is Metric.LATENCY_MS:
            return f"latency <= {self.limit:.4g}ms"
        return f"{self.metric.value} <= {format_count(self.limit)}"


class Backend(StrEnum):
    """Runtimes a bundle can target."""

    EXECUTORCH = "executorch"
    LITERT = "litert"


class Quantization(StrEnum):
    """Numeric format of the lowered artifacts."""

    INT8 = "int8"
    FP16 = "fp16"
    FP32 = "fp32"


class Device(StrictModel):
    """The hardware the bundle is for."""

    arch: Literal["aarch64", "armv7", "x86_64"]
    cpu: str = Field(min_length=1, description="core type, e.g. cortex-a53")
    cores: int = Field(ge=1, le=256)
    memory_bytes: Annotated[
        float, BeforeValidator(parse_bytes), PlainSerializer(lambda b: f"{b:.0f}B", return_type=str)
    ] = Field(alias="memory", description="physical memory, e.g. 1GB")


class StitchTuningConfig(StrictModel):
    """Stitch-aware quantization before lowering (``bundle.stitch_quantization``): each variant's stitching layer
    trained again on the train split under the int8 simulation of the target's first backend, with the rest of the
    rung quantized as its lowering calibrates it; the tuned stitch is kept only where that simulation scores it
    higher on the validation split."""

    epochs: int = Field(default=1, ge=1, le=100)
    lr: float = Field(default=1e-4, gt=0, le=1)
    train_images: int | None = Field(
        default=None, ge=32, description="the first train images it trains on (default: the whole train split)"
    )


class RuntimeConfig(StrictModel):
    """How artifacts are lowered and run on the device."""

    backends: list[Backend] = Field(min_length=1)
    quantization: Quantization = Quantization.INT8
    threads: int = Field(default=1, ge=1, le=MAX_THREADS)
    """Threads each runtime uses on the device (the bundle index's ``runtime`` record, which the shim caps at the
    device's usable CPUs); ``host_threads`` on this host."""
    calibration_images: int = Field(default=512, ge=1, description="real task images that calibrate int8")
    stitch_tuning: StitchTuningConfig | None = Field(
        default=None, description="stitch-aware quantization of the variants (int8 only; off when absent)"
    )
    litert_input: Literal["float32", "uint8"] = Field(
        default="float32",
        description="what a LiteRT int8 artifact's image input takes: float32 (normalised pixels) or uint8 (raw "
        "0-255 pixels, as TFLite image tasks feed them; needs one mean and std for every channel, 255 x mean a "
        "whole number)",
    )

    def host_threads(self) -> int:
        """Threads each runtime uses here, to verify and to time: the target's, at most this host's CPUs."""
        return min(self.threads, usable_cpus())

    @model_validator(mode="after")
    def _unique_backends(self) -> RuntimeConfig:
        if len(set(self.backends)) != len(self.backends):
            raise ValueError("backends: each backend may appear once")
        return self

    @model_validator(mode="after")
    def _stitch_tuning_for_int8(self) -> RuntimeConfig:
        if self.stitch_tuning is not None and self.quantization is not Quantization.INT8:
            raise ValueError("stitch_tuning: needs quantization int8 (it trains the stitch under int8 simulation)")
        return self

    @model_validator(mode="after")
    def _uint8_for_int8_litert(self) -> RuntimeConfig:
        if self.litert_input == "uint8" and (
            self.quantization is not Quantization.INT8 or Backend.LITERT not in self.backends
        ):
            raise ValueError("litert_input: uint8 needs quantization int8 and litert among backends")
        return self


class AccuracyPolicy(StrictModel):
    """What a build does when an artifact loses more top-1 than ``tolerance_points`` against eager fp32.

    ``keep-float`` scores candidate float islands with the backend's int8 quantization simulated in eager
    PyTorch (seconds each): the stitching layer; it plus the head; those plus the block after the stitch
    (for a parent: the head; the head and the stem). The best candidate, if it beats all-int8 in simulation,
    is lowered and verified in the runtime, and kept if it gains at least 0.5 top-1 points; a warning remains if
    none is within tolerance. ``warn`` keeps the artifact with a warning; ``fail`` stops the build.
    """

    tolerance_points: float = Field(default=1.0, ge=0)
    policy: Literal["keep-float", "warn", "fail"] = "keep-float"


class LadderPolicy(StrictModel):
    """What happens to a dominated rung: another rung of the same backend (parents included) costs no more on
    every budgeted metric and is more accurate with confidence, on the validation split."""

    dominated: Literal["drop", "warn", "keep"] = Field(
        default="drop", description="drop it from the bundle, ship it with a warning, or ship it silently"
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="'more accurate with confidence': paired test at this level"
    )
    measured_slack: float = Field(
        default=0.05,
        ge=0,
        lt=0.5,
        description="latency and memory within this share above a rival's count as no more than it: measured "
        "figures of equal programs differ by a few percent from run to run, and the search judges the cost "
        "table's predictions (built from such measurements) with the same slack as the build",
    )

    def slack(self, metrics: Iterable[Metric]) -> dict[str, float]:
        """The dominance slack of each of ``metrics`` that is measured (latency, memory): ``measured_slack``."""
        return {m.value: self.measured_slack for m in metrics if m.measured}


class Layout(StrEnum):
    """How a bundle stores each backend's artifacts."""

    PER_RUNG = "per-rung"
    """A file per rung: ``<backend>/<rung id><suffix>``, each with the backend's one entry point."""
    LADDER = "ladder"
    """One file per backend, ``<backend>/ladder<suffix>``, an entry point per shipped rung (an ExecuTorch method, a
    TFLite signature): blocks the rungs share are stored once."""


DEFAULT_LAYOUT = Layout.LADDER
"""A backend's layout unless the target says otherwise: one program holds the ladder, stored once and switched
without reloading (``per-rung`` for runtimes that read one entry point per file, such as MediaPipe's)."""


class BundleConfig(StrictModel):
    """How the bundle is laid out."""

    layout: Layout | dict[Backend, Layout] = Field(
        default=DEFAULT_LAYOUT,
        description=f"per-rung: a file per rung; ladder: one per backend; or a layout per backend, e.g. "
        f"{{executorch: ladder, litert: per-rung}} (a backend left out is {DEFAULT_LAYOUT.value})",
    )

    def layout_of(self, backend: Backend) -> Layout:
        """The layout of ``backend``'s artifacts."""
        if isinstance(self.layout, Layout):
            return self.layout
        return self.layout.get(backend, DEFAULT_LAYOUT)


class Measurement(StrictModel):
    """Host timing protocol: ``runs`` timed runs per artifact in short blocks interleaved across artifacts; each
    block opens its artifact afresh, alone, and runs it ``warmup`` times untimed first."""

    warmup: int = Field(default=3, ge=0, description="untimed runs each time an artifact opens for a block")
    runs: int = Field(default=30, ge=1, description="timed runs per artifact")


class CostSource(StrEnum):
    """Which figures ``latency_ms`` and ``memory_mb`` budgets are held to.

    Stitch points are always chosen with the target's cost table (every part of both parents lowered and
    timed once; see ``restnetc.budget.cost_table``), since hundreds of candidates cannot each be lowered.
    ``predicted``: the table, profiled on this machine, is also what the built variants are checked against.
    ``host``: the built variants are checked against their end-to-end measurement on this machine.
    ``device``: the table comes from ``benchmark_model`` logs of the parts taken on the device (``table``).
    """

    PREDICTED = "predicted"
    HOST = "host"
    DEVICE = "device"


class Costs(StrictModel):
    """Where measured budgets (``latency_ms``, ``memory_mb``) get their figures; see ``CostSource``."""

    source: CostSource = CostSource.PREDICTED
    backend: Backend | None = Field(default=None, description="the backend budgets are for; default: the first")
    table: Path | None = Field(default=None, description="device source: cost table written by bench ingest")

    @model_validator(mode="after")
    def _table_for_device(self) -> Costs:
        if (self.source is CostSource.DEVICE) != (self.table is not None):
            raise ValueError("table: give a cost table file exactly when source is 'device'")
        return self


class TargetConfig(VersionedConfig):
    """A deployment target: device, runtime and the budget ladder."""

    name: FileName
    description: str = ""
    device: Device
    runtime: RuntimeConfig
    budgets: list[Budget] = Field(min_length=1)
    accuracy: AccuracyPolicy = AccuracyPolicy()
    ladder: LadderPolicy = LadderPolicy()
    bundle: BundleConfig = BundleConfig()
    measurement: Measurement = Measurement()
    costs: Costs = Costs()

    @property
    def cost_backend(self) -> Backend:
        """The backend whose artifacts measured budgets are for."""
        return self.costs.backend or self.runtime.backends[0]

    @property
    def memory_budgets_on_a_ladder(self) -> bool:
        """Whether a memory budget holds rungs that ship in a ladder program: they are chosen on their own
        files' memory, while the program they ship in keeps what every rung shares resident (the build warns)."""
        memory = any(budget.metric is Metric.MEMORY_MB for budget in self.budgets)
        return memory and self.bundle.layout_of(self.cost_backend) is Layout.LADDER

    @model_validator(mode="after")
    def _cost_backend_built(self) -> TargetConfig:
        if self.costs.backend is not None and self.costs.backend not in self.runtime.backends:
            raise ValueError(f"costs.backend: {self.costs.backend.value} is not among runtime.backends")
        return self

    @model_validator(mode="after")
    def _layouts_of_built_backends(self) -> TargetConfig:
        if isinstance(self.bundle.layout, dict):
            unknown = [b.value for b in self.bundle.layout if b not in self.runtime.backends]
            if unknown:
                raise ValueError(f"bundle.layout: {', '.join(unknown)} is not among runtime.backends")
        return self

    @model_validator(mode="after")
    def _distinct_budgets(self) -> TargetConfig:
        seen = set()
        for budget in self.budgets:
            key = (budget.metric, budget.limit)
            if key in seen:
                raise ValueError(f"budgets: {budget.describe()} is listed twice")
            seen.add(key)
        return self
