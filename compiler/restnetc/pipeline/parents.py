"""The two parents of a project, decomposed, with their task heads, costs and roles (front or back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from restnetc.budget.costs import PartCosts, part_costs
from restnetc.cache import Cache, stage_key
from restnetc.config.project import ProjectConfig, StitchOrder
from restnetc.data import ImageSet
from restnetc.frontend.features import embed
from restnetc.frontend.heads import classifier_outputs, fit_linear_probe, needs_probe
from restnetc.models import BlockModel, count_params, decompose
from restnetc.models.factory import build_model, describe_spec
from restnetc.progress import step

EMBED_BATCH = 128


@dataclass(frozen=True)
class Parent:
    """One configured parent model, ready to stitch."""

    key: Literal["a", "b"]
    name: str
    model: BlockModel
    costs: PartCosts
    probed: bool


def model_inputs(project: ProjectConfig, key: str) -> dict[str, object]:
    """What identifies a parent's weights (for cache keys)."""
    return {"model": project.models[key].model_dump(mode="json"), "size": project.data.input_size}  # type: ignore[index]


def _prepare_head(
    project: ProjectConfig, key: Literal["a", "b"], model: BlockModel, train: ImageSet, cache: Cache
) -> bool:
    num_classes = len(train.classes)
    if not needs_probe(project.task_head, classifier_outputs(model.head), num_classes):
        return False
    cache_key = stage_key(
        "probe",
        model_inputs(project, key),
        project.data.model_dump(mode="json"),
        project.task_head.model_dump(mode="json"),
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
    return True


def load_parents(project: ProjectConfig, train: ImageSet, cache: Cache) -> tuple[Parent, Parent]:
    """Build both parents with task heads and return them as ``(front, back)`` per the stitch order."""
    parents = []
    for key in ("a", "b"):
        spec = project.models[key]
        model = decompose(build_model(spec, project.data.input_size))
        probed = _prepare_head(project, key, model, train, cache)
        costs = part_costs(model, project.data.input_size)
        parents.append(Parent(key, describe_spec(spec), model, costs, probed))
    larger, smaller = sorted(parents, key=lambda p: count_params(p.model), reverse=True)
    return (larger, smaller) if project.order is StitchOrder.SLOW_TO_FAST else (smaller, larger)
