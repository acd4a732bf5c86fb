"""The two parents of a project, decomposed, with their task heads, costs and roles (front or back)."""

from __future__ import annotations

from typing import Literal

import torch

from restnetc.budget.costs import part_costs
from restnetc.cache import Cache, stage_key
from restnetc.config.project import ProjectConfig, StitchOrder
from restnetc.data import ImageSet
from restnetc.frontend.features import embed
from restnetc.frontend.heads import classifier_outputs, fit_linear_probe, needs_probe
from restnetc.frontend.parent_training import finetune_parent
from restnetc.models import BlockModel, count_params, decompose
from restnetc.models.factory import build_model, describe_spec
from restnetc.progress import step
from restnetc.results import Parent

EMBED_BATCH = 128


def _pretrained_inputs(project: ProjectConfig, key: str) -> dict[str, object]:
    """What identifies a parent's pretrained weights: its spec and the input size it is built for."""
    return {"model": project.models[key].model_dump(mode="json"), "size": project.data.input_size}  # type: ignore[index]


def model_inputs(project: ProjectConfig, key: str) -> dict[str, object]:
    """What identifies a parent's weights (for cache keys): its pretrained weights, and with mode ``finetune``
    also what its end-to-end training depends on (task head settings, data, seed).

    A probe changes only the classifier, which stages keyed by this and not by the task head do not read.
    """
    inputs = _pretrained_inputs(project, key)
    if project.task_head.mode == "finetune":
        inputs["task_head"] = project.task_head.model_dump(mode="json")
        inputs["data"] = project.data.model_dump(mode="json")
        inputs["seed"] = project.seed
    return inputs


def _probe_settings(project: ProjectConfig) -> dict[str, object]:
    """The task head settings a linear probe depends on (not the mode, nor the fine-tuning after it)."""
    return project.task_head.model_dump(mode="json", include={"epochs", "lr", "weight_decay"})


def _fit_probe(
    project: ProjectConfig, key: Literal["a", "b"], model: BlockModel, train: ImageSet, cache: Cache
) -> None:
    """Replace ``model``'s classifier with a linear probe on its frozen pre-logits features (cached)."""
    num_classes = len(train.classes)
    cache_key = stage_key(
        "probe",
        _pretrained_inputs(project, key),
        project.data.model_dump(mode="json"),
        _probe_settings(project),
        project.seed,
    )
    state = cache.load(cache_key)
    if state is None:
        features = embed(model, train, EMBED_BATCH, f"features of {describe_spec(project.models[key])}")
        probe = fit_linear_probe(features, train.labels, num_classes, project.task_head, project.seed)
        cache.save(cache_key, probe.state_dict())
    else:
        probe = torch.nn.Linear(state["weight"].shape[1], num_classes)
        probe.load_state_dict(state)
        step(f"linear probe for {describe_spec(project.models[key])}: cached")
    model.head.replace_classifier(probe.eval())


def _finetune(
    project: ProjectConfig, key: Literal["a", "b"], model: BlockModel, probed: bool, train: ImageSet, cache: Cache
) -> None:
    """Train the whole parent end-to-end on ``train`` after its probe (if any); cached as its full state."""
    config = project.task_head.finetune
    assert config is not None  # the config fills in the defaults for mode finetune
    name = describe_spec(project.models[key])
    cache_key = stage_key("parent-finetune", model_inputs(project, key), probed)
    state = cache.load(cache_key)
    if state is not None:
        if probed:
            features = state["head.classifier.weight"].shape[1]
            model.head.replace_classifier(torch.nn.Linear(features, len(train.classes)))
        model.load_state_dict(state)
        model.eval()
        step(f"{name} fine-tuned end-to-end: cached")
        return
    if probed:
        _fit_probe(project, key, model, train, cache)
    report = finetune_parent(model, train, config, project.seed, name)
    cache.save(cache_key, {k: v.detach().clone() for k, v in model.state_dict().items()})
    step(
        f"{name} fine-tuned end-to-end: {config.epochs} epoch(s) on {len(train)} images in {report.seconds:.0f} s, "
        f"train loss {report.first_epoch_loss:.3f} (first epoch) -> {report.last_epoch_loss:.3f} (last)"
    )


def _prepare_head(
    project: ProjectConfig, key: Literal["a", "b"], model: BlockModel, train: ImageSet, cache: Cache
) -> bool:
    """Give ``model`` its task head (and with mode finetune train it); whether a probe replaced its classifier."""
    probed = needs_probe(project.task_head, classifier_outputs(model.head), len(train.classes))
    if project.task_head.mode == "finetune":
        _finetune(project, key, model, probed, train, cache)
    elif probed:
        _fit_probe(project, key, model, train, cache)
    return probed


def load_parents(project: ProjectConfig, train: ImageSet, cache: Cache) -> tuple[Parent, Parent]:
    """Build both parents with task heads and return them as ``(front, back)`` per the stitch order."""
    parents = []
    for key in ("a", "b"):
        spec = project.models[key]
        model = decompose(build_model(spec, project.data.input_size))
        probed = _prepare_head(project, key, model, train, cache)
        costs = part_costs(model, project.data.input_size)
        finetuned = project.task_head.mode == "finetune"
        parents.append(Parent(key, describe_spec(spec), model, costs, probed, finetuned))
    larger, smaller = sorted(parents, key=lambda p: count_params(p.model), reverse=True)
    return (larger, smaller) if project.order is StitchOrder.SLOW_TO_FAST else (smaller, larger)
