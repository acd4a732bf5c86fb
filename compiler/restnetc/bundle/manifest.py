"""``manifest.json``: the versioned description of a bundle, written by ``build``, read by ``inspect``,
``size-check`` and the runtime shim.

Every artifact entry names a file *and* the entry point inside it (an ExecuTorch method, a TFLite
signature), so a future single-file ladder (one method per variant) needs no schema change. File paths are
relative to the bundle directory, made of ``[A-Za-z0-9._/-]`` only (nothing a shell would interpret), and can
never leave it (``config.paths.RelativePath`` when writing and reading, ``safe_path`` when opening).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from restnetc.atomic import write_text_atomic
from restnetc.budget.measure import HostLatency, HostMemory
from restnetc.config.base import StrictModel
from restnetc.config.paths import RelativePath, check_file_name
from restnetc.errors import RestnetcError
from restnetc.evaluation.correctness import CORRECTNESS_PATTERN, correctness_flags
from restnetc.shim_abi import DEFAULT_RESIZE, ENTRY_POINT_PATTERN, InputLayout, QuantizationDtype, ResizeName

MANIFEST_NAME = "manifest.json"


class BundleError(RestnetcError):
    """A bundle is missing, malformed, or its files do not match the manifest."""


class StitchInfo(StrictModel):
    """Where a variant is stitched (null for a parent)."""

    front_model: str
    front_block: int
    back_model: str
    back_block: int
    cka: float
    order: str
    stitch_kind: str
    trainable_params: int


class Quantization(StrictModel):
    """Affine quantization of an input or output tensor (``shim_abi.TensorQuantization``, validated)."""

    dtype: QuantizationDtype
    scale: float = Field(gt=0, allow_inf_nan=False)
    zero_point: int = Field(ge=-(2**31), lt=2**31)


class InputSpec(StrictModel):
    """What the artifact's input expects and how to produce it from an RGB image."""

    shape: tuple[int, int, int, int]
    """N, C, H, W of the image a caller gives (the runtimes take NCHW whatever the artifact's layout)."""
    layout: InputLayout = "NCHW"
    """How the artifact's own input tensor orders it: the shim reorders an NCHW image for an NHWC artifact."""
    dtype: str
    normalization: dict[str, tuple[float, float, float]]
    resize: ResizeName = DEFAULT_RESIZE
    """How an image is resized to ``shape`` before normalisation (absent in manifests before it: bilinear)."""
    quantization: Quantization | None = None
    output_quantization: Quantization | None = None


class AllInt8(StrictModel):
    """Top-1 % of the all-int8 artifact that the accuracy policy replaced by one keeping float units."""

    validation: float = Field(description="what the policy judged it on")
    test: float


class Accuracy(StrictModel):
    """Top-1 %: the eager fp32 model and the artifact in its own runtime.

    ``eager_fp32``, ``artifact`` and ``interval`` are on the test split, which only reports; the validation
    figures are the ones every decision (accuracy policy, dominance) was made on.
    """

    eager_fp32: float
    artifact: float
    images: int
    interval: tuple[float, float] = Field(description="95% Wilson interval of ``artifact``, test split")
    validation: float = Field(description="the artifact's top-1 on the validation split")
    validation_images: int = Field(ge=1)
    validation_correct: str = Field(
        pattern=CORRECTNESS_PATTERN,
        description="per-image top-1 on the validation split, 1 right and 0 wrong, in the split's order: what a "
        "paired comparison between artifacts reads (``recommend``)",
    )
    all_int8: AllInt8 | None = Field(
        default=None,
        description="for an artifact keeping float units (``float_modules``), what the all-int8 artifact it "
        "replaced scored; None for an all-int8 or fp32 artifact, whose own figures are that",
    )

    @model_validator(mode="after")
    def _flags_make_the_figure(self) -> Accuracy:
        """One flag per validation image, and ``validation`` is their share (to the 3 decimals it is kept to)."""
        flags = len(self.validation_correct)
        if flags != self.validation_images:
            raise ValueError(f"validation_correct: {flags} flags for {self.validation_images} validation images")
        share = 100.0 * self.validation_correct.count("1") / flags
        if abs(share - self.validation) > 1e-3:
            raise ValueError(f"validation: {self.validation}% but validation_correct says {share:.3f}%")
        return self

    @property
    def validation_flags(self) -> np.ndarray:
        """``validation_correct`` as a bool array."""
        return correctness_flags(self.validation_correct)


class SplitRecord(StrictModel):
    """One data split: its size, and the sha256 of its image indices in the data source (int64, in order)."""

    images: int
    indices_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Splits(StrictModel):
    """The three disjoint splits: train (heads, stitches), validation (every choice), test (reports only)."""

    train: SplitRecord
    validation: SplitRecord
    test: SplitRecord


class Pareto(StrictModel):
    """Where an artifact stands among its backend's artifacts (parents included), on validation.

    Dominated: another artifact costs no more on each budgeted metric and is more accurate with confidence
    (paired exact McNemar test on the same validation images, two-sided p below ``1 - confidence``).
    """

    front: bool
    dominated_by: str | None = None
    reason: str | None = None


class DeviceLatency(StrictModel):
    """Milliseconds on the device, from a ``benchmark_model`` log (``restnetc bench ingest``)."""

    inference: float = Field(description="median when the tool reports percentiles, else the average")
    average: float
    first: float
    init: float
    std: float | None
    p5: float | None
    p95: float | None
    threads: int | None
    runs: int | None
    log: str


class Latency(StrictModel):
    """Latency by source: measured on the build host, and on the device when its logs were ingested."""

    host: HostLatency
    device: DeviceLatency | None = None
    predicted: float | None = Field(default=None, description="from the target's cost table (its backend only)")


class DeviceMemory(StrictModel):
    """Memory reported by ``benchmark_model`` on the device, bytes (the tool's MB are MiB)."""

    peak: int | None
    init_delta: int | None
    overall_delta: int | None


class Memory(StrictModel):
    """Memory by source: the build host, and the device when its logs were ingested."""

    host: HostMemory
    device: DeviceMemory | None = None
    predicted: int | None = Field(default=None, description="peak bytes from the cost table's memory fit")
    planned: int | None = Field(default=None, description="ExecuTorch: activation bytes the program plans")


class Delegation(StrictModel):
    """How much ran in the accelerated delegate and what fell back."""

    delegate: str
    partitions: int
    delegated_ops: int
    fallback_ops: dict[str, int]


class BudgetCheck(StrictModel):
    """A measured budget (latency or memory) held against the figure of the target's cost source."""

    metric: str
    limit: float
    figure: float
    source: str = Field(description="predicted, host (end-to-end measurement here) or device")
    met: bool


PackingName = Literal["shared", "own"]
"""An artifact file's ``packing``: whether its entry points may share packed weights (``Artifact.packing``)."""


class StitchTuned(StrictModel):
    """A variant's stitch-aware quantization (the target's ``runtime.stitch_tuning``): its stitch trained again
    under one backend's int8 simulation (all-int8), kept when that simulation scored it higher on validation. The
    variant's artifacts of every backend take the same stitch: the other backends' own figures are their
    ``accuracy``'s, not judged before the choice."""

    simulated_with: str = Field(description="the backend whose int8 simulation trained and judged it")
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    train_images: int = Field(ge=1)
    validation_plain: float = Field(description="simulated int8 validation top-1 % of the stitch the search chose")
    validation_tuned: float = Field(description="the same of the tuned stitch, shipped when higher")

    @property
    def kept(self) -> bool:
        """Whether the artifact ships the tuned stitch."""
        return self.validation_tuned > self.validation_plain


class Int8Recipe(StrictModel):
    """How an int8 artifact was quantized after training: PT2E static quantization with the backend's quantizer
    (int8 per-channel weights, int8 per-tensor activations), observers calibrated on train images, then each
    layer's bias corrected so that its mean output per channel is the float model's (``backends.bias_correction``)."""

    quantizer: str = Field(description="the backend's PT2E quantizer")
    calibration_images: int = Field(ge=1, description="train images the activation observers saw")
    bias_correction_images: int = Field(ge=1, description="the first calibration images the biases were corrected on")
    donor_modules: list[str] = Field(
        description="a variant's modules that are its back parent's: values computed there, and the stitching "
        "layer's output entering them, take the parent's observers, and layers there the parent's corrected "
        "biases, so that the blocks they share keep the parent's bytes; but for values without a counterpart "
        "in the parent (and the layers reading them), and modules kept in float. Empty for a parent"
    )
    stitch_tuning: StitchTuned | None = Field(
        default=None, description="a variant's stitch-aware quantization; None for a parent or when not asked for"
    )


def _check_all_int8(entry: str, accuracy: Accuracy, float_modules: list[str]) -> None:
    """``accuracy.all_int8`` is there exactly when the artifact ``entry`` names keeps float units (ValueError
    otherwise)."""
    if (accuracy.all_int8 is None) == bool(float_modules):
        raise ValueError(f"{entry}: accuracy.all_int8 is expected exactly when float_modules are kept")


Int8Field = Annotated[Int8Recipe | None, Field(description="how it was quantized; None unless int8")]
"""An artifact's int8 recipe, shipped or dropped."""


class Artifact(StrictModel):
    """One lowered variant for one backend."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,63}$", description="also the artifact's file name stem")
    role: Literal["parent", "variant"]
    backend: str
    quantization: str
    float_modules: list[str] = Field(description="submodules kept in float by the accuracy policy")
    file: RelativePath
    entry_point: str = Field(pattern=rf"^{ENTRY_POINT_PATTERN}$", description="method or signature in the file")
    packing: PackingName = Field(
        default="own",
        description="shared: the backend checked that the file's entry points read each weight under one "
        "quantization, so a runtime may pack each weight once for all of them (the shim then does); own: each "
        "entry point packs its own (unchecked, conflicting, or one entry point)",
    )
    bytes: int
    sha256: str
    params: int
    macs: int
    budget: str | None
    budget_check: BudgetCheck | None = None
    stitch: StitchInfo | None
    accuracy: Accuracy
    agreement: float = Field(description="% of images where artifact and eager fp32 agree on top-1")
    max_logit_diff: float
    latency_ms: Latency
    memory_bytes: Memory
    input: InputSpec
    delegation: Delegation
    policy: str = Field(description="what the accuracy policy did for this artifact")
    int8: Int8Field = None
    pareto: Pareto

    @model_validator(mode="after")
    def _all_int8_with_float_units(self) -> Artifact:
        _check_all_int8(f"artifact {self.id!r} ({self.backend})", self.accuracy, self.float_modules)
        return self


class Dropped(StrictModel):
    """An artifact the target's ``ladder.dominated: drop`` left out of the bundle, with its figures and why."""

    id: str
    role: Literal["parent", "variant"]
    backend: str
    params: int
    macs: int
    latency_ms: float = Field(description="host median, ms")
    memory_bytes: int = Field(description="host peak delta, bytes")
    float_modules: list[str] = Field(description="submodules the accuracy policy kept in float")
    accuracy: Accuracy
    int8: Int8Field = None
    pareto: Pareto

    @model_validator(mode="after")
    def _all_int8_with_float_units(self) -> Dropped:
        _check_all_int8(f"dropped artifact {self.id!r} ({self.backend})", self.accuracy, self.float_modules)
        return self


def _file_facts(a: Artifact) -> tuple[object, ...]:
    """What every artifact naming the same file must say alike."""
    return a.backend, a.bytes, a.sha256, a.memory_bytes.host.program


class Manifest(StrictModel):
    """The whole bundle."""

    schema_version: Literal[6, 7] = 7  # 6: before dropped artifacts kept their int8 recipe; it reads as 7
    target: dict[str, object]
    project: dict[str, object]
    splits: Splits
    labels: list[str]
    tools: dict[str, str]
    created: str
    accuracy_tolerance_points: float
    artifacts: list[Artifact]
    dropped: list[Dropped] = Field(default_factory=list)

    @model_validator(mode="after")
    def _judged_on_the_validation_split(self) -> Manifest:
        """Every artifact's validation results are on the manifest's validation split (one flag per image), so
        any two can be compared image by image."""
        images = self.splits.validation.images
        judged = [(a.id, a.backend, a.accuracy) for a in self.artifacts] + [
            (d.id, d.backend, d.accuracy) for d in self.dropped
        ]
        for artifact_id, backend, accuracy in judged:
            if accuracy.validation_images != images:
                raise ValueError(
                    f"artifacts: {artifact_id!r} ({backend}) has {accuracy.validation_images} validation images, "
                    f"the validation split {images}"
                )
        return self

    @model_validator(mode="after")
    def _shared_files_agree(self) -> Manifest:
        """Artifacts sharing a file (a ladder program) agree on its backend, size, sha256 and resident memory
        (``memory_bytes.host.program``), and no two name the same entry point of one file."""
        first: dict[str, Artifact] = {}
        entries: set[tuple[str, str]] = set()
        for a in self.artifacts:
            other = first.setdefault(a.file, a)
            if _file_facts(other) != _file_facts(a):
                raise ValueError(
                    f"artifacts: {a.id!r} and {other.id!r} share {a.file} but disagree on its backend, bytes, sha256 "
                    "or program memory"
                )
            if (a.file, a.entry_point) in entries:
                raise ValueError(f"artifacts: {a.id!r} names entry point {a.entry_point!r} of {a.file} a second time")
            entries.add((a.file, a.entry_point))
        return self

    @field_validator("target")
    @classmethod
    def _target_name(cls, value: dict[str, object]) -> dict[str, object]:
        """The target's name also names files and directories (``bench plan``): one plain path component."""
        name = value.get("name")
        if not isinstance(name, str):
            raise ValueError("name: missing")
        try:
            check_file_name(name)
        except ValueError as exc:
            raise ValueError(f"name: {exc}") from None
        return value


def safe_path(bundle: Path, relative: str) -> Path:
    """``bundle / relative``, refusing anything that resolves outside ``bundle`` (``..``, symlinks)."""
    root = bundle.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise BundleError(f"{bundle}: {relative!r} points outside the bundle")
    return candidate


def write_manifest(bundle: Path, manifest: Manifest) -> None:
    """Replace ``bundle/manifest.json`` atomically, after validating it as ``read_manifest`` will (a manifest
    updated with ``model_copy`` skipped validation); BundleError naming the artifact and field otherwise."""
    path = bundle / MANIFEST_NAME
    text = manifest.model_dump_json(indent=2) + "\n"
    _validated(path, json.loads(text))
    write_text_atomic(path, text)


def read_manifest(bundle: Path) -> Manifest:
    """Load and validate ``bundle/manifest.json``; BundleError naming the artifact and field on any problem."""
    path = bundle / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not found (is {bundle} a restnetc bundle?)") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable: {exc}") from None
    return _validated(path, data)


def _validated(path: Path, data: object) -> Manifest:
    """``data`` as a Manifest, or BundleError: ``path: artifact 'ID' (artifacts[I]), field F: why``."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        why = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        where = ".".join(str(p) for p in loc)
        if len(loc) > 2 and loc[0] == "artifacts" and isinstance(loc[1], int):
            field = ".".join(str(p) for p in loc[2:])
            where = f"artifact {_artifact_id(data, loc[1])!r} (artifacts[{loc[1]}]), field {field}"
        raise BundleError(f"{path}: {where}: {why}") from None


def _artifact_id(data: object, index: int) -> object:
    """The raw ``id`` of artifact ``index`` in unvalidated manifest data (None when it has none)."""
    artifacts = data.get("artifacts") if isinstance(data, dict) else None
    entry = artifacts[index] if isinstance(artifacts, list) and index < len(artifacts) else None
    return entry.get("id") if isinstance(entry, dict) else None
