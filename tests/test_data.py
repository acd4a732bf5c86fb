"""Data sources: Fashion-MNIST IDX files from Debian's package, and user image folders."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from restnetc.config.project import DataConfig, FinetuneConfig, Normalization, ProjectConfig
from restnetc.config.target import TargetConfig
from restnetc.data import load_split, load_splits
from restnetc.data.check import check_data
from restnetc.data.fashion_mnist import read_idx
from restnetc.errors import DataError
from tests.conftest import TINY_PROJECT, TINY_TARGET, CliResult

NORM = Normalization(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def config(source: dict[str, object], count: int = 12, norm: Normalization = NORM) -> DataConfig:
    return DataConfig.model_validate(
        {
            "source": source,
            "input_size": 24,
            "normalization": norm,
            "train_images": count,
            "validation_images": count,
            "test_images": count,
        }
    )


def test_fashion_mnist_subset_is_real_resized_and_reproducible() -> None:
    first = load_split(config({"kind": "fashion-mnist"}), "test", seed=3)
    again = load_split(config({"kind": "fashion-mnist"}), "test", seed=3)
    assert first.images.shape == (12, 3, 24, 24) and first.images.dtype == torch.float32
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert first.classes[9] == "Ankle boot" and int(first.labels.min()) >= 0 and int(first.labels.max()) <= 9
    assert torch.equal(first.images[:, 0], first.images[:, 2]), "grey replicated to RGB"
    assert first.images.min() >= (0 - 0.5) / 0.25 - 1e-5 and first.images.std() > 0.5


def test_three_splits_are_disjoint_reproducible_and_identified_by_their_indices() -> None:
    data = config({"kind": "fashion-mnist"}, 50)
    splits = load_splits(data, seed=7)
    train, validation, test = (set(s.indices.tolist()) for s in (splits.train, splits.validation, splits.test))
    assert len(train) == len(validation) == len(test) == 50
    assert not train & validation, "train and validation are both drawn from the training file: never shared"
    again = load_splits(data, seed=7)
    assert torch.equal(again.validation.images, splits.validation.images)
    assert again.validation.indices_sha256 == splits.validation.indices_sha256
    assert len({s.indices_sha256 for s in (splits.train, splits.validation, splits.test)}) == 3
    other = load_splits(data, seed=8)
    assert other.train.indices_sha256 != splits.train.indices_sha256
    larger = load_splits(data.model_copy(update={"train_images": 80}), seed=7)
    assert torch.equal(larger.validation.indices, splits.validation.indices), "more train images leave validation alone"
    assert set(larger.train.indices.tolist()) >= train


def test_idx_reader_rejects_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    (tmp_path / "ok.gz").write_bytes(gzip.compress(good))
    assert read_idx(tmp_path / "ok.gz").tolist() == [1, 2, 3]
    (tmp_path / "short.gz").write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(DataError, match=r"short.gz: IDX payload does not match its declared shape \(3,\)"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "foreign.gz").write_bytes(gzip.compress(b"PK\x03\x04 zip"))
    with pytest.raises(DataError, match=r"foreign\.gz: not an unsigned-byte IDX file"):
        read_idx(tmp_path / "foreign.gz")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        read_idx(tmp_path / "absent.gz")


def test_image_folder_reads_classes_resizes_and_crops(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            for k in range(3):
                pixels = rng.integers(0, 255, size=(40, 30 + 10 * k, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{k}.png")
    data = load_split(config({"kind": "image-folder", "root": str(tmp_path)}), "train", seed=0)
    assert data.classes == ("cat", "dog") and len(data) == 6
    assert data.images.shape == (6, 3, 24, 24) and sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    # the project's resize filter reaches PIL: cat/0.png (30 x 40) -> 24 x 32 bicubic, centre 24 rows
    bicubic = NORM.model_copy(update={"resize": "bicubic"})
    data = load_split(config({"kind": "image-folder", "root": str(tmp_path)}, norm=bicubic), "train", seed=0)
    small = Image.open(tmp_path / "train" / "cat" / "0.png").resize((24, 32), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255).permute(2, 0, 1)[:, 4:28]
    expected = (pixels - 0.5) / 0.25
    at = data.indices.tolist().index(0)
    assert torch.allclose(data.images[at], expected, atol=1e-5)


def test_image_folder_without_class_folders_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="train: expected one sub-folder of images per class"):
        load_split(config({"kind": "image-folder", "root": str(tmp_path)}), "train", seed=0)


def _tree(root: Path, splits: dict[str, dict[str, int]]) -> Path:
    """``root/<split>/<class>/<k>.png``: tiny real images, as many per class as ``splits`` says."""
    rng = np.random.default_rng(0)
    for split, classes in splits.items():
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True)
            for k in range(count):
                Image.fromarray(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)).save(
                    root / split / name / f"{k}.png"
                )
    return root


def _project(root: Path, **counts: int) -> ProjectConfig:
    """A project on the image folder ``root``: 4 train, 4 validation and 4 test images, subsets of 4, unless
    ``counts`` says."""
    data = {
        "train_images": 4,
        "validation_images": 4,
        "test_images": 4,
        **{k: v for k, v in counts.items() if k.endswith("_images")},
    }
    source = {"kind": "image-folder", "root": str(root)}
    return ProjectConfig.model_validate(
        {
            "name": "folders",
            "models": {"a": LITE, "b": LITE},
            "data": {"source": source, "input_size": 24, "normalization": NORM, **data},
            "calibration": {"images": counts.get("calibration", 4), "batch_size": 4},
            "finetune": {"init_images": counts.get("init", 4)},
        }
    )


LITE = {"source": "efficientnet-lite", "name": "efficientnet-lite0"}
GOOD = {"train": {"cat": 4, "dog": 4}, "test": {"cat": 2, "dog": 2}}


def test_data_that_holds_what_the_project_asks_for_passes(tmp_path: Path) -> None:
    check_data(_project(_tree(tmp_path, GOOD)))
    fashion = ProjectConfig.model_validate(
        {"name": "fm", "models": {"a": LITE, "b": LITE}, "data": config({"kind": "fashion-mnist"}, 10_000)}
    )
    check_data(fashion)


def _unreadable(root: Path) -> str:
    (root / "test" / "dog" / "9.png").write_bytes(b"not an image")
    return f"{root / 'test' / 'dog' / '9.png'}: unreadable image (not an image format PIL reads)"


def _empty_class(root: Path) -> str:
    (root / "train" / "bird").mkdir()
    return f"{root / 'train' / 'bird'}: no images (files ending in .jpg, .jpeg, .png,"


def _no_classes(root: Path) -> str:
    shutil.rmtree(root / "test")
    (root / "test").mkdir()
    return f"{root / 'test'}: no class folders; expected one sub-folder of images per class"


def _no_split(root: Path) -> str:
    shutil.rmtree(root / "test")
    return f"{root / 'test'}: cannot read the split folder (No such file or directory)"


def _class_missing(root: Path) -> str:
    shutil.rmtree(root / "test" / "dog")
    (root / "test" / "cow").mkdir()
    Image.new("RGB", (8, 8)).save(root / "test" / "cow" / "0.png")
    return f"{root / 'train'} and {root / 'test'} hold different classes: dog only in train; cow only in test"


def _too_few(root: Path) -> str:
    (root / "train" / "cat" / "0.png").unlink()
    return f"{root / 'train'}: 7 images, but data.train_images + data.validation_images asks for 8"


BROKEN_TREES: dict[str, Callable[[Path], str]] = {
    "unreadable image": _unreadable,
    "empty class folder": _empty_class,
    "empty split folder": _no_classes,
    "missing split folder": _no_split,
    "class missing from a split": _class_missing,
    "too few images": _too_few,
}


@pytest.mark.parametrize("case", sorted(BROKEN_TREES))
def test_broken_image_folders_are_refused_with_the_folder_named(case: str, tmp_path: Path) -> None:
    root = _tree(tmp_path, GOOD)
    expected = BROKEN_TREES[case](root)
    with pytest.raises(DataError) as error:
        check_data(_project(root))
    assert str(error.value).startswith(expected), str(error.value)
    assert "\n" not in str(error.value)


SUBSETS = {
    "calibration": "calibration.images: asks for 16 images, but data.train_images loads 4",
    "init": "finetune.init_images: asks for 16 images, but data.train_images loads 4",
    "test_images": "test: 4 images, but data.test_images asks for 16",
}


@pytest.mark.parametrize("field", sorted(SUBSETS))
def test_counts_beyond_the_data_are_refused_with_the_field_named(field: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{re.escape(SUBSETS[field])}$"):
        check_data(_project(_tree(tmp_path, GOOD), **{field: 16}))


def test_a_build_checks_the_targets_int8_calibration_images(tmp_path: Path) -> None:
    project = _project(_tree(tmp_path, GOOD))
    target = TargetConfig.model_validate(yaml.safe_load(TINY_TARGET))
    check_data(project)  # a search does not calibrate int8: the target's count is not asked for
    with pytest.raises(DataError, match=r"^the target's runtime.calibration_images: asks for 512 images, but .* 4$"):
        check_data(project, target)


def test_counts_that_the_run_does_not_use_are_not_asked_for(tmp_path: Path) -> None:
    """init_images only with the least-squares init; the target's calibration images only for an int8 build."""
    root = _tree(tmp_path, GOOD)
    random_init = _project(root, init=16).model_copy(update={"finetune": FinetuneConfig(init="random", init_images=16)})
    check_data(random_init)
    fp32_target = TINY_TARGET.replace("runtime: {", "runtime: {quantization: fp32, ")
    fp32 = TargetConfig.model_validate(yaml.safe_load(fp32_target))
    check_data(_project(root), fp32)


def test_fashion_mnist_counts_are_checked_against_its_files() -> None:
    project = ProjectConfig.model_validate(
        {"name": "fm", "models": {"a": LITE, "b": LITE}, "data": config({"kind": "fashion-mnist"}, 10_001)}
    )
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte.gz: 10000 images, but data.test_images asks for 10001$"
    ):
        check_data(project)


@pytest.mark.parametrize("command", ["search", "sweep", "profile", "build"])
def test_every_command_checks_the_data_first(
    command: str, tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "data", GOOD)
    _class_missing(root)
    project, target = tmp_path / "p.yaml", tmp_path / "t.yaml"
    project.write_text(TINY_PROJECT.replace("{kind: fashion-mnist}", f"{{kind: image-folder, root: {root}}}"))
    target.write_text(TINY_TARGET.replace("runtime: {", "runtime: {calibration_images: 16, "))
    monkeypatch.setenv("RESTNETC_CACHE", str(tmp_path / "cache"))
    options = ["-p", str(project)] + ([] if command == "sweep" else ["-t", str(target)])
    result = cli(command, *options, "--out", str(tmp_path / "out"))
    classes = f"{root / 'train'} and {root / 'test'} hold different classes: dog only in train; cow only in test"
    assert result.code == 1 and result.stderr.strip().splitlines()[-1] == f"error: {classes}", result.stderr
    assert "Traceback" not in result.stdout + result.stderr and not (tmp_path / "cache").exists()
