"""``restnetc search``: CKA matrix, stitch point per budget, stitching layers trained and evaluated.

``restnetc sweep`` shares every stage but stitches at a grid of points regardless of budgets, to study how
CKA relates to accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache as memoize

import numpy as np
import torch

from restnetc.budget.cost_table import CostTable
from restnetc.budget.costs import Cost, measure
from restnetc.cache import Cache, stage_key
from restnetc.config.project import ProjectConfig
from restnetc.config.target import Budget, Metric, TargetConfig
from restnetc.data import ImageSet, load_split
from restnetc.data.check import check_data
from restnetc.frontend.features import Capture, accuracy, capture, stream_cka
from restnetc.frontend.finetune import finetune_stitch, fit_least_squares
from restnetc.frontend.search import Candidate, Figure, rank_candidates, select, static_figure
from restnetc.frontend.stitch import Interface, StitchedModel, StitchLayer, build_stitched, interfaces
from restnetc.pipeline.costs import cost_table
from restnetc.pipeline.parents import Parent, load_parents, model_inputs
from restnetc.progress import step

EVAL_BATCH = 128


@dataclass(frozen=True)
class ParentResult:
    """A parent as an end of the ladder."""

    name: str
    role: str
    blocks: int
    cost: Cost
    accuracy: float
    probed: bool


@dataclass(frozen=True)
class VariantResult:
    """One stitched variant, chosen for one budget, after fine-tuning."""

    budget: Budget
    candidate: Candidate
    stitch_kind: str
    trainable_params: int
    accuracy_init: float
    accuracy_finetuned: float
    finetune_seconds: float
    finetune_steps: int


@dataclass(kw_only=True)
class SearchResult:
    """Everything ``restnetc search`` measured."""

    project: ProjectConfig
    target: TargetConfig
    front: ParentResult
    back: ParentResult
    cka: np.ndarray
    calibration_samples: int
    variants: list[VariantResult]
    costs: CostTable | None = field(default=None, repr=False)
    """The target's cost table, when a budget is on a measured metric."""
    stitched_models: dict[tuple[int, int], StitchedModel] = field(repr=False)
    parents: tuple[Parent, Parent] = field(repr=False)
    train: ImageSet = field(repr=False)
    test: ImageSet = field(repr=False)
    seconds: float = 0.0


class _Passes:
    """Forward passes over the data, each run at most once and only when a stage needs it."""

    def __init__(
        self,
        project: ProjectConfig,
        parents: tuple[Parent, Parent],
        data: tuple[ImageSet, ImageSet],
        points: set[tuple[int, int]],
    ) -> None:
        self.front, self.back = parents
        self.train, self.test = data
        self.init_images = self.train.head(project.finetune.init_images)
        self.points = frozenset(points)

    @memoize  # noqa: B019 - one _Passes per job; memoising on self is the point
    def run(self, which: str) -> Capture:
        keep_front = sorted({i for i, _ in self.points})
        keep_back = sorted({j for _, j in self.points})
        plans = {
            "front-train": (self.front, self.train, keep_front),
            "front-test": (self.front, self.test, keep_front),
            "back-test": (self.back, self.test, []),
            "front-init": (self.front, self.init_images, keep_front),
            "back-init": (self.back, self.init_images, keep_back),
        }
        parent, images, keep = plans[which]
        return capture(parent.model, images, keep, EVAL_BATCH, f"{parent.name}: {which.split('-')[1]} images")


def _figure(table: CostTable | None, front: str, back: str, stitch_cost: Callable[[int, int], Cost]) -> Figure:
    """Budget figures of candidates: counted, or predicted from the cost table for measured metrics."""

    def figure(candidate: Candidate, metric: Metric) -> float:
        if table is None or not metric.measured:
            return static_figure(candidate, metric)
        i, j = candidate.front_block, candidate.back_block
        stitch = stitch_cost(i, j)
        if metric is Metric.LATENCY_MS:
            return table.latency_ms(front, i, back, j, stitch.macs)
        return table.memory_bytes(table.artifact_bytes(front, i, back, j, stitch.params))

    return figure


def _stitch_cost(source: Interface, target: Interface) -> Cost:
    layer = StitchLayer(source, target)
    return measure(layer, torch.zeros(1, *source.shape))


def _data_inputs(project: ProjectConfig) -> dict[str, object]:
    return {"data": project.data.model_dump(mode="json"), "seed": project.seed}


def _cka_matrix(
    project: ProjectConfig, front: Parent, back: Parent, train: ImageSet, cache: Cache
) -> tuple[np.ndarray, int]:
    calibration = project.calibration
    key = stage_key(
        "cka",
        model_inputs(project, front.key),
        model_inputs(project, back.key),
        _data_inputs(project),
        calibration.model_dump(mode="json"),
    )
    if (stored := cache.load(key)) is not None:
        step(f"CKA matrix {tuple(stored['cka'].shape)}: cached")
        return stored["cka"].numpy(), int(stored["samples"])
    images = train.head(calibration.images)
    cka, samples = stream_cka(front.model, back.model, images, calibration.batch_size, calibration.estimator)
    cache.save(key, {"cka": torch.from_numpy(cka), "samples": torch.tensor(samples)})
    step(f"CKA matrix {cka.shape} over {samples} calibration images")
    return cka, samples


def _parent_result(project: ProjectConfig, parent: Parent, role: str, passes: _Passes, cache: Cache) -> ParentResult:
    key = stage_key(
        "parent-accuracy",
        model_inputs(project, parent.key),
        _data_inputs(project),
        project.task_head.model_dump(mode="json"),
    )
    stored = cache.load(key)
    if stored is None:
        value = accuracy(passes.run(f"{role}-test").logits, passes.test.labels)
        cache.save(key, {"accuracy": torch.tensor(value)})
    else:
        value = float(stored["accuracy"])
    cost = parent.costs.total
    return ParentResult(parent.name, role, len(parent.model.blocks), cost, value, parent.probed)


@torch.no_grad()
def _predict(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    return torch.cat([forward(x) for x in inputs.split(EVAL_BATCH)])


def _train_variant(
    project: ProjectConfig, model: StitchedModel, point: tuple[int, int], passes: _Passes, cache: Cache
) -> dict[str, torch.Tensor]:
    """Trained state and figures for one stitch point (from the cache when its inputs are unchanged).

    The state holds every tensor training changed (the stitching layer, and the front/back part if the
    scope trains them), under the stitched model's state-dict names.
    """
    front, back = passes.front, passes.back
    key = stage_key(
        "stitch",
        model_inputs(project, front.key),
        model_inputs(project, back.key),
        _data_inputs(project),
        project.task_head.model_dump(mode="json"),
        project.finetune.model_dump(mode="json"),
        point,
    )
    config = project.finetune
    model.unfreeze(front=config.trains_front, back=config.trains_back)
    if (stored := cache.load(key)) is not None:
        return stored
    assert model.stitch is not None
    i, j = point
    if config.init == "least-squares":
        fit_least_squares(
            model.stitch, passes.run("front-init").blocks[i], passes.run("back-init").blocks[j], project.seed
        )
    model.eval()
    init_logits = _predict(model.back, passes.run("front-test").blocks[i])  # the front is still the parent's
    teacher = passes.run("front-train").logits if config.distill is not None else None
    train_inputs = passes.train.images if model.front_trainable else passes.run("front-train").blocks[i]
    report = finetune_stitch(model, train_inputs, passes.train.labels, teacher, config, project.seed)
    if model.front_trainable:  # the trained front's features differ from the cached ones
        final_logits = _predict(model, passes.test.images)
    else:
        final_logits = _predict(model.back, passes.run("front-test").blocks[i])
    trained = model.trained_prefixes()
    stored = {
        **{k: v for k, v in model.state_dict().items() if k.startswith(trained)},
        "accuracy_init": torch.tensor(accuracy(init_logits, passes.test.labels)),
        "accuracy_finetuned": torch.tensor(accuracy(final_logits, passes.test.labels)),
        "seconds": torch.tensor(report.seconds),
        "steps": torch.tensor(report.steps),
    }
    cache.save(key, stored)
    return stored


@dataclass(frozen=True)
class _Prepared:
    """What every search starts from: the data, both parents and their CKA matrix."""

    train: ImageSet
    test: ImageSet
    front: Parent
    back: Parent
    cka: np.ndarray
    samples: int
    stitch_cost: Callable[[int, int], Cost]

    def candidates(self) -> list[Candidate]:
        """Every stitch point with its CKA and exact cost, most similar first."""
        return rank_candidates(
            self.cka, lambda i, j: self.front.costs.front(i) + self.stitch_cost(i, j) + self.back.costs.back(j)
        )


def _prepare(project: ProjectConfig, build: TargetConfig | None, cache: Cache) -> _Prepared:
    """The data (checked first against what ``project`` and a ``build``'s target ask for), parents and CKA."""
    check_data(project, build)
    size = project.data.input_size
    train = load_split(project.data, "train", project.seed)
    test = load_split(project.data, "test", project.seed + 1)
    step(f"data: {len(train)} train and {len(test)} test images at {size} px, {len(train.classes)} classes")
    front, back = load_parents(project, train, cache)
    for parent, role in ((front, "front"), (back, "back")):
        step(f"{role} parent {parent.name}: {len(parent.model.blocks)} blocks")
    cka, samples = _cka_matrix(project, front, back, train, cache)
    sources, targets = interfaces(front.model, size), interfaces(back.model, size)
    stitch_cost = memoize(lambda i, j: _stitch_cost(sources[i], targets[j]))
    return _Prepared(train, test, front, back, cka, samples, stitch_cost)


def _train_points(
    project: ProjectConfig, prepared: _Prepared, passes: _Passes, cache: Cache
) -> tuple[dict[tuple[int, int], StitchedModel], dict[tuple[int, int], dict[str, torch.Tensor]]]:
    """Stitch, initialise and fine-tune every point of ``passes``: the models (eval mode) and their figures."""
    front, back = prepared.front, prepared.back
    models: dict[tuple[int, int], StitchedModel] = {}
    figures: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    for point in sorted(passes.points):
        model = build_stitched(front.model, point[0], back.model, point[1], project.data.input_size)
        figures[point] = _train_variant(project, model, point, passes, cache)
        trained = model.trained_prefixes()
        state = {k: v for k, v in figures[point].items() if k.startswith(trained)}
        missing = {k for k in model.state_dict() if k.startswith(trained)} - state.keys()
        assert not missing, f"cached stitch state lacks {sorted(missing)[:3]}"
        model.load_state_dict(state, strict=False)
        models[point] = model.eval()
        step(
            f"variant {front.name}[..{point[0]}] -> {back.name}[{point[1] + 1}..]: "
            f"{float(figures[point]['accuracy_finetuned']):.2f}% top-1"
        )
    return models, figures


def run_search(project: ProjectConfig, target: TargetConfig, cache: Cache, *, build: bool = False) -> SearchResult:
    """Run the front end for every budget of ``target``; see the module docstring.

    ``build``: the search starts a build, so the data check covers the target's int8 calibration images too.
    """
    start = time.perf_counter()
    prepared = _prepare(project, target if build else None, cache)
    front, back = prepared.front, prepared.back
    measured = any(budget.metric.measured for budget in target.budgets)
    costs = cost_table(project, target, (front, back), prepared.train, cache) if measured else None
    figure = _figure(costs, front.name, back.name, prepared.stitch_cost)
    choices = select(prepared.candidates(), target.budgets, figure)
    points = {(c.candidate.front_block, c.candidate.back_block) for c in choices}
    passes = _Passes(project, (front, back), (prepared.train, prepared.test), points)
    models, figures = _train_points(project, prepared, passes, cache)

    variants = []
    for choice in choices:
        point = (choice.candidate.front_block, choice.candidate.back_block)
        stitch = models[point].stitch
        assert stitch is not None
        fig = figures[point]
        variants.append(
            VariantResult(
                budget=choice.budget,
                candidate=choice.candidate,
                stitch_kind=stitch.kind,
                trainable_params=models[point].trainable_params(),
                accuracy_init=float(fig["accuracy_init"]),
                accuracy_finetuned=float(fig["accuracy_finetuned"]),
                finetune_seconds=float(fig["seconds"]),
                finetune_steps=int(fig["steps"]),
            )
        )
    return SearchResult(
        project=project,
        target=target,
        front=_parent_result(project, front, "front", passes, cache),
        back=_parent_result(project, back, "back", passes, cache),
        cka=prepared.cka,
        costs=costs,
        calibration_samples=prepared.samples,
        variants=variants,
        stitched_models=models,
        parents=(front, back),
        train=prepared.train,
        test=prepared.test,
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class SweepPoint:
    """One stitch point of a sweep, after fine-tuning."""

    candidate: Candidate
    trainable_params: int
    accuracy_init: float
    accuracy_finetuned: float
    finetune_seconds: float


@dataclass(frozen=True)
class SweepResult:
    """``restnetc sweep``: stitch points on a grid regardless of any budget, each fine-tuned and evaluated."""

    project: ProjectConfig
    front: ParentResult
    back: ParentResult
    cka: np.ndarray
    every: int
    points: tuple[SweepPoint, ...]
    seconds: float


def sweep_grid(front_blocks: int, back_blocks: int, every: int) -> set[tuple[int, int]]:
    """Every ``every``-th block of each parent, always including each parent's last block."""

    def axis(count: int) -> list[int]:
        return sorted({*range(count - 1, -1, -every)})

    return {(i, j) for i in axis(front_blocks) for j in axis(back_blocks)}


def run_sweep(project: ProjectConfig, cache: Cache, every: int = 1) -> SweepResult:
    """Stitch at every point of ``sweep_grid`` and fine-tune each exactly as ``run_search`` would."""
    if every < 1:
        raise ValueError("every must be at least 1")
    start = time.perf_counter()
    prepared = _prepare(project, None, cache)
    front, back = prepared.front, prepared.back
    grid = sweep_grid(len(front.model.blocks), len(back.model.blocks), every)
    candidates = {(c.front_block, c.back_block): c for c in prepared.candidates()}
    passes = _Passes(project, (front, back), (prepared.train, prepared.test), grid)
    models, figures = _train_points(project, prepared, passes, cache)
    points = []
    for point in sorted(grid):
        fig = figures[point]
        points.append(
            SweepPoint(
                candidate=candidates[point],
                trainable_params=models[point].trainable_params(),
                accuracy_init=float(fig["accuracy_init"]),
                accuracy_finetuned=float(fig["accuracy_finetuned"]),
                finetune_seconds=float(fig["seconds"]),
            )
        )
    return SweepResult(
        project=project,
        front=_parent_result(project, front, "front", passes, cache),
        back=_parent_result(project, back, "back", passes, cache),
        cka=prepared.cka,
        every=every,
        points=tuple(points),
        seconds=time.perf_counter() - start,
    )
