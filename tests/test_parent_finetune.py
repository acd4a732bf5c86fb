"""``task_head.mode: finetune``: each parent is trained end-to-end on the train split after its probe, cached."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml

from restnetc.cache import Cache
from restnetc.config.loader import load_config
from restnetc.config.project import ParentFinetuneConfig, ProjectConfig
from restnetc.data import ImageSet, load_split
from restnetc.errors import ConfigError
from restnetc.frontend import parent_training
from restnetc.models import BlockModel, decompose
from restnetc.models.factory import build_model
from restnetc.pipeline import parents
from restnetc.results import Parent
from tests.conftest import TINY_PROJECT

FINETUNE = {"epochs": 2, "batch_size": 16, "lr": 3e-3}
"""Two epochs of 6 steps over the tiny project's 96 train images at 32 px."""

Reports = dict[str, parent_training.ParentTrainingReport]


def _project(task_head: dict[str, Any]) -> ProjectConfig:
    data = yaml.safe_load(TINY_PROJECT)
    data["task_head"] = task_head
    return ProjectConfig.model_validate(data)


FINETUNED = _project({"mode": "finetune", "epochs": 5, "finetune": FINETUNE})
PROBED = _project({"mode": "auto", "epochs": 5})
"""The same probe as ``FINETUNED``'s, without fine-tuning."""


@pytest.fixture(scope="module")
def train() -> ImageSet:
    return load_split(FINETUNED.data, "train", FINETUNED.seed)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    return Cache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def finetuned(train: ImageSet, cache: Cache) -> tuple[tuple[Parent, Parent], Reports]:
    """Both parents fine-tuned (into ``cache``), and the training report of each by model key."""
    reports: list[parent_training.ParentTrainingReport] = []

    def recorded(*args: Any) -> parent_training.ParentTrainingReport:
        reports.append(parent_training.finetune_parent(*args))
        return reports[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parents, "finetune_parent", recorded)
        loaded = parents.load_parents(FINETUNED, train, cache)
    assert len(reports) == 2
    return loaded, dict(zip("ab", reports, strict=True))  # load_parents prepares "a", then "b"


@torch.no_grad()
def _fit(model: BlockModel, images: ImageSet) -> tuple[float, float]:
    """(cross-entropy, accuracy) of ``model`` in eval mode over ``images``."""
    assert not model.training
    logits = model(images.images)
    return float(F.cross_entropy(logits, images.labels)), float((logits.argmax(1) == images.labels).double().mean())


def _changed_parts(state: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> set[str]:
    """``stem``, ``blocks.<i>`` and ``head`` parts with a tensor that differs between ``state`` and ``start``."""
    assert state.keys() == start.keys()
    changed = (name for name in state if not torch.equal(state[name], start[name]))
    return {".".join(name.split(".")[:2]) if name.startswith("blocks.") else name.split(".")[0] for name in changed}


def test_finetuning_trains_the_whole_parent_from_its_probe(
    finetuned: tuple[tuple[Parent, Parent], Reports], train: ImageSet, cache: Cache
) -> None:
    tuned_parents, reports = finetuned
    probed = parents.load_parents(PROBED, train, cache)  # the probes are cached: the ones fine-tuning began from
    for tuned, probe_only in zip(tuned_parents, probed, strict=True):
        report = reports[tuned.key]
        assert report.steps == 2 * 6
        assert report.last_epoch_loss < report.first_epoch_loss, (tuned.name, report)
        assert tuned.finetuned and tuned.probed and not probe_only.finetuned
        assert (tuned.task_head, probe_only.task_head) == ("linear probe, then fine-tuned end-to-end", "linear probe")
        assert not tuned.model.training and all(p.requires_grad for p in tuned.model.parameters())
        # The probe is the one a probe-only parent gets; everything (not only the classifier) trains from there.
        pretrained = decompose(build_model(FINETUNED.models[tuned.key], FINETUNED.data.input_size)).state_dict()
        start = {**pretrained, **probe_only.model.state_dict()}
        parts = {"stem", "head", *(f"blocks.{i}" for i in range(len(tuned.model.blocks)))}
        assert _changed_parts(tuned.model.state_dict(), start) == parts
        # Training ended by re-estimating the batch-norm statistics over the train split for the final weights.
        again = copy.deepcopy(tuned.model)
        parent_training.recalibrate_batch_norm(again, train.images, FINETUNE["batch_size"])
        assert all(torch.equal(a, b) for a, b in zip(again.buffers(), tuned.model.buffers(), strict=True))
        # In eval mode (batch-norm on its recalibrated statistics) it fits the train split better than at the start.
        loss, accuracy = _fit(tuned.model, train)
        assert loss < report.first_epoch_loss and accuracy > 1.5 / len(train.classes), (tuned.name, loss, accuracy)


def test_a_second_load_takes_the_finetuned_weights_from_the_cache(
    finetuned: tuple[tuple[Parent, Parent], Reports],
    train: ImageSet,
    cache: Cache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_training(*args: object) -> None:
        raise AssertionError("trained again although the fine-tuned weights are cached")

    monkeypatch.setattr(parents, "finetune_parent", no_training)
    monkeypatch.setattr(parents, "fit_linear_probe", no_training)
    again = parents.load_parents(FINETUNED, train, cache)
    for first, second in zip(finetuned[0], again, strict=True):
        assert first.key == second.key and second.finetuned and second.probed and not second.model.training
        one, two = first.model.state_dict(), second.model.state_dict()
        assert one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


def test_model_inputs_identify_finetuned_weights() -> None:
    def inputs(project: ProjectConfig) -> object:
        return parents.model_inputs(project, "a")

    other_lr = _project({"mode": "finetune", "epochs": 5, "finetune": {**FINETUNE, "lr": 1e-4}})
    other_seed = FINETUNED.model_copy(update={"seed": 1})
    other_data = FINETUNED.model_copy(update={"data": FINETUNED.data.model_copy(update={"train_images": 64})})
    keys = [inputs(p) for p in (PROBED, FINETUNED, other_lr, other_seed, other_data)]
    assert all(keys[i] != keys[j] for i in range(len(keys)) for j in range(i)), "every one is different weights"
    # Without fine-tuning a parent's weights (up to its classifier) are the pretrained ones, whatever the probe.
    assert (
        inputs(PROBED)
        == inputs(_project({"mode": "linear-probe", "epochs": 7}))
        == inputs(other_seed.model_copy(update={"task_head": PROBED.task_head}))
    )


@pytest.mark.parametrize(
    ("task_head", "message"),
    [
        ({"finetune": {"epochs": 1}}, "task_head: finetune: only used with mode: finetune (mode is 'auto')"),
        ({"mode": "finetune", "finetune": {"lr": 0}}, "task_head.finetune.lr: Input should be greater than 0"),
        ({"mode": "finetune", "finetune": {"epochs": 0}}, "task_head.finetune.epochs: Input should be greater than"),
        (
            {"mode": "finetune", "finetune": {"batch_size": 1}},
            "task_head.finetune.batch_size: Input should be greater than or equal to 2",
        ),
        ({"mode": "finetune", "finetune": {"warmup_fraction": 1}}, "task_head.finetune.warmup_fraction: Input should"),
        ({"mode": "finetune", "finetune": {"epoch": 2}}, "task_head.finetune.epoch: unknown key"),
        ({"mode": "fine-tune"}, "task_head.mode: Input should be 'auto', 'keep', 'linear-probe' or 'finetune'"),
    ],
)
def test_bad_finetune_settings_are_rejected_clearly(task_head: dict[str, Any], message: str, tmp_path: Path) -> None:
    data = yaml.safe_load(TINY_PROJECT)
    data["task_head"] = task_head
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_config(path, ProjectConfig)
    assert message in str(error.value)


def test_mode_finetune_alone_takes_the_default_training_settings() -> None:
    head = _project({"mode": "finetune"}).task_head
    assert head.finetune == ParentFinetuneConfig()


def test_batch_norm_recalibration_averages_the_batch_statistics() -> None:
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4, momentum=0.01), torch.nn.Dropout(0.9))
    model.train()
    images = torch.randn(10, 3, 5, 5, generator=generator) * 3 + 1
    assert parent_training.recalibrate_batch_norm(model, images, 4) == 1
    norm = model[1]
    assert isinstance(norm, torch.nn.BatchNorm2d) and norm.momentum == 0.01 and not model.training
    with torch.no_grad():
        features = [model[0](batch) for batch in images.split(4)]  # batches of 4, 4, 2: every one counts
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    variances = torch.stack([f.transpose(0, 1).flatten(1).var(dim=1) for f in features]).mean(0)
    assert torch.allclose(norm.running_mean, means, atol=1e-5)
    assert torch.allclose(norm.running_var, variances, atol=1e-5)
