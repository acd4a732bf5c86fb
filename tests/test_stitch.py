"""Stitching layers for every pairing of layouts, stitched models, and stitch-only fine-tuning."""

from __future__ import annotations

import pytest
import torch

from restnetc.config.project import FinetuneConfig
from restnetc.frontend.finetune import finetune_stitch, fit_least_squares
from restnetc.frontend.stitch import Interface, StitchLayer, build_stitched
from restnetc.models import Layout, decompose
from tests import zoo

PAIRS = [
    # (front family, back family, front block, back block, expected stitch kind)
    ("resnet", "vgg", 1, 2, "conv1x1"),  # CNN -> CNN with a spatial mismatch (8x8 -> 16x16)
    ("efficientnet-lite", "resnet", 6, 1, "conv1x1"),
    ("deit-distilled", "vit", 1, 1, "linear"),  # 64 -> 16 patch tokens, 2 -> 1 prefix tokens, 48 -> 32 dims
    ("vit", "deit-distilled", 0, 0, "linear"),  # 16 -> 64 patch tokens, 1 -> 2 prefix tokens
    ("resnet", "vit", 2, 1, "conv+tokens"),  # CNN -> ViT: conv, flatten to tokens, mean token as class token
    ("resnet", "swin", 1, 2, "conv+tokens"),  # CNN -> Swin: NHWC grid
    ("swin", "resnet", 3, 0, "conv1x1"),  # Swin -> CNN
    ("vit", "vgg", 2, 0, "conv1x1"),  # tokens -> CNN (prefix dropped)
]


@pytest.mark.parametrize(("front_name", "back_name", "i", "j", "kind"), PAIRS)
def test_stitched_model_runs_forward_and_backward(front_name: str, back_name: str, i: int, j: int, kind: str) -> None:
    front, back = decompose(zoo.make(front_name)), decompose(zoo.make(back_name, seed=1))
    model = build_stitched(front, i, back, j, zoo.SIZE)
    assert model.stitch is not None and model.stitch.kind == kind
    x = torch.randn(2, 3, zoo.SIZE, zoo.SIZE)
    target_shape = back.describe(zoo.SIZE)[j].shape
    assert tuple(model.stitch(model.front(x)).shape[1:]) == target_shape
    logits = model(x)
    logits.sum().backward()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"stitch.proj.weight", "stitch.proj.bias"}
    assert all(p.grad is not None for p in model.stitch.parameters())
    assert all(p.grad is None for name, p in model.named_parameters() if not name.startswith("stitch."))


def test_least_squares_recovers_an_exact_linear_map() -> None:
    source = Interface(Layout.NCHW, (6, 4, 4))
    target = Interface(Layout.NCHW, (5, 4, 4))
    layer = StitchLayer(source, target)
    weight, bias = torch.randn(5, 6), torch.randn(5)
    x = torch.randn(32, 6, 4, 4)
    y = torch.einsum("oc,nchw->nohw", weight, x) + bias.view(1, 5, 1, 1)
    fit_least_squares(layer, x, y, seed=0)
    assert torch.allclose(layer(x), y, atol=1e-3)


def test_least_squares_fits_tokens_with_pooling() -> None:
    layer = StitchLayer(Interface(Layout.TOKENS, (1 + 64, 8), 1), Interface(Layout.TOKENS, (2 + 16, 4), 2))
    x = torch.randn(16, 65, 8)
    patches = layer.source_grid(x)[0].flatten(2).transpose(1, 2)  # [N, 16, 8] after pooling
    map_ = torch.randn(8, 4)
    y = torch.cat([torch.zeros(16, 2, 4), patches @ map_], dim=1)
    fit_least_squares(layer, x, y, seed=0)
    assert torch.allclose(layer(x)[:, 2:], y[:, 2:], atol=1e-3)


def test_finetuning_changes_only_the_stitching_layer() -> None:
    front, back = decompose(zoo.make("resnet")), decompose(zoo.make("vgg", seed=1))
    model = build_stitched(front, 1, back, 1, zoo.SIZE)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("stitch.")}
    stitch_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("stitch.")}
    images = torch.randn(24, 3, zoo.SIZE, zoo.SIZE)
    labels = torch.randint(0, zoo.CLASSES, (24,))
    with torch.no_grad():
        features = model.front(images)
        teacher = torch.randn(24, zoo.CLASSES)
    config = FinetuneConfig(epochs=2, batch_size=8, lr=1e-2, distill={"weight": 0.5, "temperature": 2.0})
    report = finetune_stitch(model, features, labels, teacher, config, seed=0)
    assert report.steps == 6 and report.seconds > 0
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items()), "a frozen tensor changed"
    assert any(not torch.equal(after[k], v) for k, v in stitch_before.items())
    assert not model.training and not model.front_blocks[0].training


def test_validation_keeps_the_best_epoch_and_never_a_worse_one() -> None:
    """The validation labels are the fitted model's own predictions: the initial weights score 100% and any
    training on random labels can only lose, so epoch 0 must be kept, bit for bit."""
    front, back = decompose(zoo.make("resnet")), decompose(zoo.make("vgg", seed=1))
    model = build_stitched(front, 1, back, 1, zoo.SIZE)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        features = model.front(torch.randn(48, 3, zoo.SIZE, zoo.SIZE, generator=generator))
        own = model.back(features[24:]).argmax(1)
    initial = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("stitch.")}
    labels = torch.randint(0, zoo.CLASSES, (24,), generator=generator)
    config = FinetuneConfig(epochs=3, batch_size=8, lr=0.5)
    report = finetune_stitch(model, features[:24], labels, None, config, seed=0, validation=(features[24:], own))
    assert report.validation[0] == 100.0 and len(report.validation) == 4 and min(report.validation[1:]) < 100.0
    assert report.best_epoch == 0 and report.steps == 9
    assert all(torch.equal(model.state_dict()[k], v) for k, v in initial.items()), "the best weights are restored"
    without = finetune_stitch(model, features[:24], labels, None, config, seed=0)
    assert without.best_epoch == 3 and without.validation == ()


def test_training_mode_keeps_frozen_parts_in_eval() -> None:
    model = build_stitched(decompose(zoo.make("resnet")), 0, decompose(zoo.make("resnet", 1)), 0, zoo.SIZE)
    model.train()
    assert model.training and model.stitch is not None and model.stitch.training
    assert not any(m.training for name, m in model.named_modules() if name and not name.startswith("stitch"))


def test_stitch_point_outside_the_parents_is_rejected() -> None:
    front, back = decompose(zoo.make("resnet")), decompose(zoo.make("vgg"))
    with pytest.raises(ValueError, match="outside the parents"):
        build_stitched(front, len(front.blocks), back, 0, zoo.SIZE)


@pytest.mark.parametrize(
    ("front", "back"), [(False, True), (True, False), (True, True)], ids=["stitch+back", "stitch+front", "all"]
)
def test_wider_scopes_train_private_copies_and_leave_the_parents_intact(front: bool, back: bool) -> None:
    front_parent, back_parent = decompose(zoo.make("resnet")), decompose(zoo.make("vgg", seed=1))
    parents = {f"a.{k}": v.clone() for k, v in front_parent.state_dict().items()}
    parents |= {f"b.{k}": v.clone() for k, v in back_parent.state_dict().items()}
    model = build_stitched(front_parent, 1, back_parent, 1, zoo.SIZE)
    model.unfreeze(front, back)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(24, 3, zoo.SIZE, zoo.SIZE)
    labels = torch.randint(0, zoo.CLASSES, (24,))
    inputs = images if front else model.front(images).detach()
    config = FinetuneConfig(epochs=2, batch_size=8, lr=1e-2, scope="all")
    finetune_stitch(model, inputs, labels, None, config, seed=0)
    after = model.state_dict()
    changed = {k.split(".")[0] for k, v in before.items() if v.is_floating_point() and not torch.equal(after[k], v)}
    expected = (
        {"stitch"} | ({"front_stem", "front_blocks"} if front else set()) | ({"back_blocks", "head"} if back else set())
    )
    assert changed == expected
    assert model.trainable_params() == sum(
        v.numel() for k, v in model.named_parameters() if k.split(".")[0] in expected
    )
    now = {f"a.{k}": v for k, v in front_parent.state_dict().items()}
    now |= {f"b.{k}": v for k, v in back_parent.state_dict().items()}
    assert all(torch.equal(now[k], v) for k, v in parents.items()), "a parent's tensor changed"
