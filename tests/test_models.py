"""Block adapters: every registered family decomposes into stem -> blocks -> head that reproduces the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from restnetc.config.project import TimmModel
from restnetc.errors import ConfigError
from restnetc.models import Layout, count_params, decompose, list_families
from restnetc.models.factory import build_model
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
