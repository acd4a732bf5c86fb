"""Block adapters: every registered family decomposes into stem -> blocks -> head that reproduces the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from restnetc.config.project import ProjectConfig, TimmModel
from restnetc.errors import ConfigError
from restnetc.models import Layout, count_params, decompose, list_families
from restnetc.models.factory import build_model, with_model_normalization
from tests import zoo

EXPECTED_LAYOUT = {
    "resnet": Layout.NCHW,
    "vgg": Layout.NCHW,
    "vit": Layout.TOKENS,
    "deit-distilled": Layout.TOKENS,
    "swin": Layout.NHWC,
    "efficientnet-lite": Layout.NCHW,
}


@pytest.mark.parametrize("name", sorted(zoo.FAMILIES))
def test_decomposition_reproduces_model_exactly(name: str) -> None:
    model = zoo.make(name)
    blocks = decompose(model)
    x = torch.randn(3, 3, zoo.SIZE, zoo.SIZE)
    with torch.no_grad():
        expected = model(x)
        got = blocks(x)
    assert got.shape[0] == 3
    assert torch.equal(got, expected)
    assert blocks.layout is EXPECTED_LAYOUT[name]


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
