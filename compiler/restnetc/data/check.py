"""The project's data checked against what the project asks of it, before any stage runs.

Both source splits must be readable (every file of an image folder opens as an image) and hold the same
classes; the source's training images must hold ``data.train_images`` plus ``data.validation_images`` (the two
disjoint splits drawn from them), its test images ``data.test_images``; the subsets taken from the training
images (``calibration.images``, ``finetune.init_images``, and for a build
the target's ``runtime.calibration_images``) must fit in ``data.train_images``. restnetc has no option to
run on fewer images than asked for: any shortfall is an error naming the folder, file or field.
"""

from __future__ import annotations

from restnetc.config.project import DataSource, ProjectConfig
from restnetc.config.target import Quantization, TargetConfig
from restnetc.data.sources import SourceSplit, SplitSummary, get_data_source
from restnetc.errors import DataError


def _split(source: DataSource, split: SourceSplit) -> SplitSummary:
    return get_data_source(source.kind).check(source.root, split)


def _same_classes(train: SplitSummary, test: SplitSummary) -> None:
    if train.classes == test.classes:
        return
    only = {"train": set(train.classes) - set(test.classes), "test": set(test.classes) - set(train.classes)}
    detail = "; ".join(f"{', '.join(sorted(names))} only in {split}" for split, names in only.items() if names)
    raise DataError(f"{train.where} and {test.where} hold different classes: {detail}")


def check_subsets(project: ProjectConfig, build: TargetConfig | None = None) -> None:
    """Raise DataError unless the subsets taken from the training images fit in ``data.train_images`` (reads
    no data): the least-squares init images only when that init is used, and for an int8 ``build`` the target's
    calibration images."""
    subsets = {"calibration.images": project.calibration.images}
    if project.finetune.init == "least-squares":
        subsets["finetune.init_images"] = project.finetune.init_images
    if build is not None and build.runtime.quantization == Quantization.INT8:
        subsets["the target's runtime.calibration_images"] = build.runtime.calibration_images
    for field, count in subsets.items():
        if count > project.data.train_images:
            loads = project.data.train_images
            raise DataError(f"{field}: asks for {count} images, but data.train_images loads {loads}")


def check_data(project: ProjectConfig, build: TargetConfig | None = None) -> None:
    """Raise DataError unless the project's data holds what ``project`` (and ``build``) ask for: the subsets
    (``check_subsets``), then the source's splits."""
    data = project.data
    check_subsets(project, build)
    train, test = _split(data.source, "train"), _split(data.source, "test")
    _same_classes(train, test)
    for split, field, count in (
        (train, "data.train_images + data.validation_images", data.train_images + data.validation_images),
        (test, "data.test_images", data.test_images),
    ):
        if split.images < count:
            raise DataError(f"{split.where}: {split.images} images, but {field} asks for {count}")
