"""Block adapters: every registered family decomposes into stem -> blocks -> head that reproduces the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from restnetc.config.loader import demo_project_path, load_project
from restnetc.config.project import EfficientNetLiteModel, ProjectConfig, TimmModel
from restnetc.data import load_split
from restnetc.errors import ConfigError
from restnetc.models import Layout, count_params, decompose, list_families
from restnetc.models.factory import build_model, with_model_normalization
from restnetc.models.vgg import StretchToKernel
from tests import zoo

EXPECTED_LAYOUT = {
    "resnet": Layout.NCHW,
    "vgg": Layout.NCHW,
    "vit": Layout.TOKENS,
    "deit-distilled": Layout.TOKENS,
    "swin": Layout.NHWC,
    "efficientnet-lite": Layout.NCHW,
}


ROUNDED = {"vgg"}
"""Families whose decomposition computes the model up to float rounding only: VGG's head stretches a small map by
bilinear resizing where timm pools it (``models.vgg.StretchToKernel``)."""


@pytest.mark.parametrize("name", sorted(zoo.FAMILIES))
def test_decomposition_reproduces_model_exactly(name: str) -> None:
    model = zoo.make(name)
    blocks = decompose(model)
    x = torch.randn(3, 3, zoo.SIZE, zoo.SIZE)
    with torch.no_grad():
        expected = model(x)
        got = blocks(x)
    assert got.shape[0] == 3
    if name in ROUNDED:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6 * float(expected.abs().max()))
    else:
        assert torch.equal(got, expected)
    assert blocks.layout is EXPECTED_LAYOUT[name]


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (1, 4), (4, 1), (2, 2), (3, 3), (4, 2), (4, 9), (7, 7)])
def test_vgg_head_stretches_a_small_map_as_timm_pools_it(shape: tuple[int, int]) -> None:
    """``StretchToKernel`` gives what ``ConvMlp``'s adaptive pooling to the kernel's size gives when each side is 1
    or (kernel + 1) / 2, and leaves any other map to that pooling. Fails on misplaced samples (bilinear without
    aligned corners differs), or on a stretch of a map the two disagree on (either side)."""
    x = torch.randn(2, 8, *shape, generator=torch.Generator().manual_seed(sum(shape)))
    stretched = StretchToKernel(7)(x)
    if all(side in (1, 4) for side in shape):
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, (7, 7))
        torch.testing.assert_close(stretched, pooled, rtol=0, atol=1e-6)
    else:
        assert stretched is x


@pytest.mark.parametrize("name", sorted(zoo.FAMILIES))
def test_blocks_own_every_parameter_once(name: str) -> None:
    model = zoo.make(name)
    blocks = decompose(model)
    assert count_params(blocks) == count_params(model)
    infos = blocks.describe(zoo.SIZE)
    assert len(infos) == len(blocks.blocks) >= 2
    assert sum(info.params for info in infos) <= count_params(model)
    assert all(len(info.shape) in (2, 3) for info in infos)


def test_vit_prefix_tokens_are_reported() -> None:
    assert decompose(zoo.make("vit")).prefix_tokens == 1
    assert decompose(zoo.make("deit-distilled")).prefix_tokens == 2


def test_swin_blocks_include_patch_merging_and_shrink_the_grid() -> None:
    shapes = [info.shape for info in decompose(zoo.make("swin")).describe(zoo.SIZE)]
    assert shapes[0] == (16, 16, 16) and shapes[-1] == (8, 8, 32)


def test_registry_lists_families_with_wildcards() -> None:
    assert {"resnet", "vgg", "vit", "swin", "efficientnet-lite"} <= set(list_families())
    assert list_families("eff*") == ["efficientnet-lite"]


def test_unknown_model_family_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no block adapter for Linear"):
        decompose(nn.Linear(2, 2))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_timm_checkpoint_loads_from_safetensors_or_a_state_dict(suffix: str, tmp_path: Path) -> None:
    """The same weights saved either way build the same model; a safetensors file of another architecture is a
    one-line ConfigError naming the file."""
    import safetensors.torch
    import timm

    import restnetc.models.zoo  # noqa: F401  (registers the zoo_* architectures with timm)

    torch.manual_seed(0)
    weights = {k: v.contiguous() for k, v in timm.create_model("zoo_resnet18").state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(weights, path)
    else:
        torch.save(weights, path)
    model = build_model(TimmModel(source="timm", arch="zoo_resnet18", checkpoint=path), zoo.SIZE)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    with pytest.raises(ConfigError, match=rf"^{path}: cannot load into zoo_vgg11: "):
        build_model(TimmModel(source="timm", arch="zoo_vgg11", checkpoint=path), zoo.SIZE)


def test_an_efficientnet_lite_checkpoint_brings_its_own_classifier(tmp_path: Path) -> None:
    """The package's state_dict with a 10-class ``_fc`` and float16 kernels (as ``parent_finetune --save`` writes
    it) builds a model with exactly those weights; a wrong sha256 and a file without ``_fc`` are one-line
    ConfigErrors naming the file."""
    import hashlib

    import safetensors.torch

    torch.manual_seed(0)
    net = build_model(EfficientNetLiteModel(source="efficientnet-lite", name="efficientnet-lite0"), zoo.SIZE)
    net._fc = nn.Linear(net._fc.in_features, 10)
    state = {k: (v.half() if v.dim() > 1 else v).contiguous() for k, v in net.state_dict().items()}
    path = tmp_path / "lite0.safetensors"
    safetensors.torch.save_file(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = {"source": "efficientnet-lite", "name": "efficientnet-lite0", "checkpoint": path}
    model = build_model(EfficientNetLiteModel.model_validate({**spec, "sha256": digest}), zoo.SIZE)
    assert model._fc.out_features == 10
    assert all(torch.equal(model.state_dict()[k], v.to(model.state_dict()[k].dtype)) for k, v in state.items())
    with pytest.raises(ConfigError, match=rf"^{path}: sha256 is {digest}, the project expects 0{{64}}$"):
        build_model(EfficientNetLiteModel.model_validate({**spec, "sha256": "0" * 64}), zoo.SIZE)
    safetensors.torch.save_file({k: v for k, v in state.items() if not k.startswith("_fc.")}, path)
    with pytest.raises(ConfigError, match=rf"^{path}: cannot load into efficientnet-lite0: no 2-D _fc.weight"):
        build_model(EfficientNetLiteModel.model_validate(spec), zoo.SIZE)


def test_the_demo_parents_are_its_pinned_fine_tuned_checkpoints() -> None:
    """The built-in demo ships both parents fine-tuned on Fashion-MNIST (``benchmarks/parent_finetune.py --save``)
    inside the package, pinned by sha256; each builds from its checkpoint with the task's 10 classes. Fails when
    a checkpoint is missing from the package or changed without its digest, or the demo names ImageNet weights."""
    project, _ = load_project(demo_project_path())
    for spec in project.models.values():
        assert isinstance(spec, EfficientNetLiteModel) and spec.checkpoint is not None and spec.sha256 is not None
        assert spec.checkpoint.parent == demo_project_path().parent, "shipped beside the demo's project file"
        assert build_model(spec, project.data.input_size)._fc.out_features == 10
    # They were trained on every training image outside this validation split (the manifest's
    # splits.validation.indices_sha256 of that run): a changed seed, size or permutation would validate on
    # images they learned.
    validation = load_split(project.data, "validation", project.seed)
    assert validation.indices_sha256 == "b798b32bfef59f70aa0fea05a84797ba9dfacb63bfb05fee3240f077a6e95320"


def _project(models: dict[str, dict[str, str]], normalization: dict[str, list[float]] | None = None) -> ProjectConfig:
    data: dict[str, object] = {"source": {"kind": "fashion-mnist"}, "input_size": 32}
    if normalization is not None:
        data["normalization"] = normalization
    return ProjectConfig.model_validate({"name": "p", "models": models, "data": data})


def test_an_omitted_normalization_comes_from_the_models_when_they_agree() -> None:
    """timm's ``pretrained_cfg`` (ImageNet mean/std for resnet18, vgg11 and deit_tiny; bicubic for resnet18 and
    deit_tiny, bilinear for vgg11), EfficientNet-Lite's own; models whose mean or std disagree or do not say are
    a ConfigError telling what to write, while models resizing differently get bilinear; a given normalization is
    kept."""
    resnet, vgg = {"source": "timm", "arch": "resnet18"}, {"source": "timm", "arch": "vgg11"}
    deit = {"source": "timm", "arch": "deit_tiny_patch16_224"}
    lite = {"source": "efficientnet-lite", "name": "efficientnet-lite0"}
    resolved = with_model_normalization(_project({"a": resnet, "b": vgg})).data.pixels()
    assert resolved.mean == pytest.approx((0.485, 0.456, 0.406)) and resolved.std == pytest.approx(
        (0.229, 0.224, 0.225)
    )
    assert resolved.resize == "bilinear"
    assert with_model_normalization(_project({"a": resnet, "b": deit})).data.pixels().resize == "bicubic"
    both_lite = with_model_normalization(_project({"a": lite, "b": lite})).data.pixels()
    assert both_lite.mean == pytest.approx((127 / 255,) * 3) and both_lite.std == pytest.approx((128 / 255,) * 3)
    with pytest.raises(ConfigError, match=r"^data.normalization: omitted, but the models normalise differently"):
        with_model_normalization(_project({"a": resnet, "b": lite}))
    with pytest.raises(ConfigError, match=r"models.b \(timm:zoo_vgg11\) does not say its normalisation"):
        with_model_normalization(_project({"a": resnet, "b": {"source": "timm", "arch": "zoo_vgg11"}}))
    given = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    kept = with_model_normalization(_project({"a": resnet, "b": lite}, given)).data.pixels()
    assert kept.mean == (0.5, 0.5, 0.5) and kept.std == (0.25, 0.25, 0.25)
    with pytest.raises(ConfigError, match=r"^data.normalization: omitted and not resolved"):
        _project({"a": resnet, "b": vgg}).data.pixels()
