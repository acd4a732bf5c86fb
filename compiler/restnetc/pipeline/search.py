"""``restnetc search``: CKA matrix, stitch point per budget, stitching layers trained and evaluated.

``restnetc sweep`` shares every stage but stitches at a grid of points regardless of budgets, to study how
CKA relates to accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cache as memoize
from functools import cached_property, partial

import numpy as np
import torch

from restnetc.budget.cost_table import CostTable, Prediction
from restnetc.budget.costs import Cost, measure
from restnetc.cache import Cache, stage_key
from restnetc.config.project import FinetuneConfig, ProjectConfig
from restnetc.config.target import Budget, LadderPolicy, Metric, TargetConfig
from restnetc.data import ImageSet, Splits, load_splits
from restnetc.data.check import check_data
from restnetc.distributed import ALONE, Ranks
from restnetc.evaluation import Contender, compare_paired, judge, more_accurate, more_accurate_than
from restnetc.frontend.features import Capture, accuracy, capture, stream_cka
from restnetc.frontend.finetune import finetune_stitch, fit_least_squares
from restnetc.frontend.kl import representation_kl
from restnetc.frontend.search import Band, Candidate, Figure, bands, rank_candidates, static_figure
from restnetc.frontend.stitch import Interface, StitchedModel, StitchLayer, build_stitched, interfaces
from restnetc.pipeline.costs import cost_table
from restnetc.pipeline.parents import load_parents, model_inputs
from restnetc.progress import step, warn
from restnetc.registry import Registry
from restnetc.results import (
    DroppedRung,
    Parent,
    ParentResult,
    Scores,
    SearchResult,
    Selection,
    SweepPoint,
    SweepResult,
    VariantResult,
    top1,
)
from restnetc.workers import LOCAL, Executor, one_thread

EVAL_BATCH = 128
KL_IMAGES = 256
"""Validation images on which the ``kl`` selector compares representations."""


def _correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=1) == labels


class _Passes:
    """Forward passes of a parent over an image set, each run at most once and only when a stage needs it.

    The small sets (``init``: least-squares images, ``kl``: the kl selector's images) keep every block's
    output; the splits keep the front's outputs at ``front_blocks`` (the stitch points that may be trained).
    Under several ``ranks``, ``train`` is this rank's share of the train split (the images it trains on).
    """

    def __init__(
        self,
        project: ProjectConfig,
        parents: tuple[Parent, Parent],
        splits: Splits,
        front_blocks: set[int],
        ranks: Ranks = ALONE,
    ) -> None:
        self.parents = {"front": parents[0], "back": parents[1]}
        self.ranks = ranks
        self.sets = {
            "train": splits.train.share(ranks),
            "validation": splits.validation,
            "test": splits.test,
            "init": splits.train.head(project.finetune.init_images),
            "kl": splits.validation.head(KL_IMAGES),
        }
        self.front_blocks = tuple(sorted(front_blocks))
        self._split_run = False
        self._captured: dict[tuple[str, str], Capture] = {}

    def plan(self, front_blocks: set[int]) -> None:
        """Set the front blocks the splits keep; only before the first pass over a split."""
        if tuple(sorted(front_blocks)) != self.front_blocks:
            assert not self._split_run, "a split pass already ran without these blocks"
            self.front_blocks = tuple(sorted(front_blocks))

    def run(self, role: str, which: str) -> Capture:
        """``role``'s (front/back) block outputs and logits over image set ``which`` (each pass runs once; the
        passes run so far travel with this object when it is pickled)."""
        if (role, which) in self._captured:
            return self._captured[(role, which)]
        parent = self.parents[role]
        if which in ("init", "kl"):
            keep: tuple[int, ...] = tuple(range(len(parent.model.blocks)))
        else:
            keep = self.front_blocks if role == "front" else ()
            self._split_run = True
        captured = capture(parent.model, self.sets[which], keep, EVAL_BATCH, f"{parent.name}: {which} images")
        self._captured[(role, which)] = captured
        return captured

    def run_for_training(self, config: FinetuneConfig) -> None:
        """Run every pass fine-tuning with ``config`` reads, so that training needs none (before sending this
        object to workers)."""
        if config.init == "least-squares":
            self.run("front", "init")
            self.run("back", "init")
        for split in ("train", "validation"):
            self.run("front", split)


def _figure(table: CostTable | None, front: str, back: str, stitch_cost: Callable[[int, int], Cost]) -> Figure:
    """Budget figures of candidates: counted, or predicted from the cost table for measured metrics."""

    def figure(candidate: Candidate, metric: Metric) -> float:
        if table is None or not metric.measured:
            return static_figure(candidate, metric)
        i, j = candidate.front_block, candidate.back_block
        return _measured(table.predict(front, i, back, j, stitch_cost(i, j)), metric)

    return figure


def _measured(prediction: Prediction, metric: Metric) -> float:
    return prediction.latency_ms if metric is Metric.LATENCY_MS else prediction.memory_bytes


def _parent_figure(table: CostTable | None, parent: Parent, metric: Metric) -> float:
    """A whole parent's budget figure, from the same cost model as the candidates'."""
    if table is None or not metric.measured:
        last = len(parent.model.blocks) - 1
        return static_figure(Candidate(last, last, 1.0, parent.costs.total), metric)
    return _measured(table.predict_model(parent.name), metric)


def _stitch_cost(source: Interface, target: Interface) -> Cost:
    layer = StitchLayer(source, target)
    return measure(layer, torch.zeros(1, *source.shape))


def _data_inputs(project: ProjectConfig) -> dict[str, object]:
    return {"data": project.data.model_dump(mode="json"), "seed": project.seed}


def _cka_matrix(
    project: ProjectConfig, front: Parent, back: Parent, train: ImageSet, cache: Cache, ranks: Ranks
) -> tuple[np.ndarray, int]:
    """The CKA matrix and its sample count, from rank 0's cache entry or streamed with every rank's share."""
    calibration = project.calibration
    key = stage_key(
        "cka",
        model_inputs(project, front.key),
        model_inputs(project, back.key),
        _data_inputs(project),
        calibration.model_dump(mode="json"),
    )
    if (stored := ranks.from_main(cache.load(key) if ranks.main else None)) is not None:
        step(f"CKA matrix {tuple(stored['cka'].shape)}: cached")
        return stored["cka"].numpy(), int(stored["samples"])
    images = train.head(calibration.images)
    cka, samples = stream_cka(front.model, back.model, images, calibration.batch_size, calibration.estimator, ranks)
    cache.save(key, {"cka": torch.from_numpy(cka), "samples": torch.tensor(samples)})
    shared = f", shared by {ranks.size} ranks" if ranks.size > 1 else ""
    step(f"CKA matrix {cka.shape} over {samples} calibration images{shared}")
    return cka, samples


def _parent_result(project: ProjectConfig, parent: Parent, role: str, passes: _Passes, cache: Cache) -> ParentResult:
    key = stage_key(
        "parent-scores",
        model_inputs(project, parent.key),
        _data_inputs(project),
        project.task_head.model_dump(mode="json"),
    )
    stored = cache.load(key)
    if stored is None:
        stored = {
            f"{split}_correct": _correct(passes.run(role, split).logits, passes.sets[split].labels)
            for split in ("validation", "test")
        }
        cache.save(key, stored)
    cost = parent.costs.total
    return ParentResult(parent.name, role, len(parent.model.blocks), cost, Scores.of(stored), parent.task_head)


@torch.no_grad()
def _predict(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    return torch.cat([forward(x) for x in inputs.split(EVAL_BATCH)])


def _inputs(model: StitchedModel, passes: _Passes, split: str, front_block: int) -> torch.Tensor:
    """What ``model`` trains or is scored on for ``split``: images when its front trains, else cached features."""
    return passes.sets[split].images if model.front_trainable else passes.run("front", split).blocks[front_block]


def _split_correct(model: StitchedModel, passes: _Passes, split: str, front_block: int) -> torch.Tensor:
    """``model``'s per-image correctness on ``split`` (eval mode; from cached features unless its front trains)."""
    inputs = _inputs(model, passes, split, front_block)
    logits = _predict(model if model.front_trainable else model.back, inputs)
    return _correct(logits, passes.sets[split].labels)


def _training_data(
    model: StitchedModel, passes: _Passes, front_block: int, config: FinetuneConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What ``model`` trains on: inputs, labels and the teacher's logits (with distillation) for this rank's
    share of the train split (running the passes they need first, before any collective)."""
    train = passes.sets["train"]
    teacher = passes.run("front", "train").logits if config.distill is not None else None
    return _inputs(model, passes, "train", front_block), train.labels, teacher


@dataclass(frozen=True)
class _Request:
    """What rank 0 asks the other ranks to fine-tune with it: the stitch point, the settings, and the front
    blocks its passes keep (so theirs keep the same)."""

    point: tuple[int, int]
    config: FinetuneConfig
    front_blocks: tuple[int, ...]


Figures = dict[str, torch.Tensor]
"""What the cache stores for a trained stitch: its trained state, its stitching layer's state before training
(under ``INIT``) and figures on validation (``_fit_variant``); or its figures on test (``_test_figures``)."""

FIGURE_NAMES = ("validation_correct", "seconds", "steps", "best_epoch")
"""The entries of a trained stitch's ``Figures`` that are figures, not state."""

INIT = "init."
"""Prefix of the stitching layer's state before training, in a trained stitch's ``Figures``."""


def _figures_only(stored: Figures) -> Figures:
    return {name: stored[name] for name in FIGURE_NAMES}


def _validation(figures: Figures) -> np.ndarray:
    """A trained stitch's per-image correctness on validation."""
    return figures["validation_correct"].numpy().astype(bool)


def _stitch_key(project: ProjectConfig, passes: _Passes, point: tuple[int, int], config: FinetuneConfig) -> str:
    """The cache key of the stitch at ``point`` trained with ``config``."""
    front, back = passes.parents["front"], passes.parents["back"]
    return stage_key(
        "stitch",
        model_inputs(project, front.key),
        model_inputs(project, back.key),
        _data_inputs(project),
        project.task_head.model_dump(mode="json"),
        config.model_dump(mode="json"),
        point,
    )


def _untrained(
    project: ProjectConfig, passes: _Passes, point: tuple[int, int], config: FinetuneConfig
) -> StitchedModel:
    """The stitched model at ``point`` of ``passes``' parents, with the parts ``config`` trains made trainable."""
    front, back = passes.parents["front"].model, passes.parents["back"].model
    model = build_stitched(front, point[0], back, point[1], project.data.input_size)
    model.unfreeze(front=config.trains_front, back=config.trains_back)
    return model


def _fit_variant(project: ProjectConfig, passes: _Passes, point: tuple[int, int], config: FinetuneConfig) -> Figures:
    """Train the stitch at ``point`` with ``config``: its trained state and figures (what the cache stores).

    The state holds every tensor training changed (the stitching layer, and the front/back part if the
    scope trains them), under the stitched model's state-dict names, and the stitching layer's initial state
    (``INIT``); the figures are the per-image correctness on validation after training. Nothing reads the test
    split: ``_test_figures`` scores the stitches that ship, once every choice is made.
    """
    i, j = point
    model = _untrained(project, passes, point, config)
    assert model.stitch is not None
    if config.init == "least-squares":
        fit_least_squares(
            model.stitch, passes.run("front", "init").blocks[i], passes.run("back", "init").blocks[j], project.seed
        )
    init = {f"{INIT}{k}": v.clone() for k, v in model.stitch.state_dict().items()}
    model.eval()
    validation = (_inputs(model, passes, "validation", i), passes.sets["validation"].labels)
    data = _training_data(model, passes, i, config)
    if passes.ranks.size > 1:
        passes.ranks.from_main(_Request(point, config, passes.front_blocks))
    report = finetune_stitch(model, *data, config, project.seed, validation, passes.ranks)
    if passes.ranks.size > 1:
        step(f"{_variant_id(point)}: fine-tuned by {passes.ranks.size} ranks ({report.steps} steps)")
    trained = model.trained_prefixes()
    return {
        **{k: v for k, v in model.state_dict().items() if k.startswith(trained)},
        **init,
        "validation_correct": _split_correct(model, passes, "validation", i),
        "seconds": torch.tensor(report.seconds),
        "steps": torch.tensor(report.steps),
        "best_epoch": torch.tensor(report.best_epoch),
    }


def _fit_job(state: tuple[ProjectConfig, _Passes, FinetuneConfig], point: tuple[int, int]) -> Figures:
    """An executor job: ``_fit_variant`` of one point, from passes that already ran (``run_for_training``), on
    one thread wherever it runs, so that the stitch is the same every time."""
    project, passes, config = state
    with one_thread():
        return _fit_variant(project, passes, point, config)


def _train_all(
    context: _Context, points: Sequence[tuple[int, int]], config: FinetuneConfig, *, state: bool = True
) -> dict[tuple[int, int], Figures]:
    """The stored figures of the stitch at each of ``points`` trained with ``config``: from the cache where its
    inputs are unchanged, else trained and stored. Without ``state``, only the ``FIGURE_NAMES`` entries are
    kept (for many points whose trained parts are not needed).

    With one rank, the stitches to train are jobs of the context's executor, each on one thread (``_fit_job``:
    on two threads float sums come out in another order from run to run, and so do the stitches): the passes
    they read run here first and travel with the job state, and the results are stored here. Under several
    ranks they train here in turn, each together with the other ranks.
    """
    project, passes, cache, executor = context.project, context.passes, context.cache, context.executor
    keys = {point: _stitch_key(project, passes, point, config) for point in points}
    kept: Callable[[Figures], Figures] = (lambda stored: stored) if state else _figures_only
    figures = {point: kept(stored) for point in points if (stored := cache.load(keys[point])) is not None}
    missing = [point for point in points if point not in figures]
    if passes.ranks.size == 1 and missing:
        passes.run_for_training(config)
        count = executor.slots(len(missing))
        where = (
            f" by the {executor.name} executor" if executor.remote else f" in {count} processes" if count > 1 else ""
        )
        jobs = executor.run_all(_fit_job, (project, passes, config), missing, count)
        with closing(jobs):  # on a failed job, the jobs not started are dropped
            for done, (index, stored) in enumerate(jobs, start=1):
                point = missing[index]
                cache.save(keys[point], stored)
                figures[point] = kept(stored)
                step(f"{_variant_id(point)}: fine-tuned{where} ({done}/{len(missing)})")
    else:
        for point in missing:  # under several ranks (or none missing): here, with the other ranks
            stored = _fit_variant(project, passes, point, config)
            cache.save(keys[point], stored)
            figures[point] = kept(stored)
    return {point: figures[point] for point in points}


def _test_figures(context: _Context, point: tuple[int, int], config: FinetuneConfig, trained: Figures) -> Figures:
    """The test split's figures of the stitch at ``point`` trained with ``config`` into ``trained`` (its stored
    state, from ``_train_all``): top-1 before training (``accuracy_init``) and per-image correctness after
    (``test_correct``).

    Only the stitches that ship (and a sweep's points, which it reports) are scored on test, each once its
    choice is made: selection cannot read it, and no time goes to scoring candidates passed over.
    """
    project, passes, cache = context.project, context.passes, context.cache
    key = stage_key("stitch-test", _stitch_key(project, passes, point, config))
    if (stored := cache.load(key)) is not None:
        return stored
    i = point[0]
    model = _untrained(project, passes, point, config).eval()
    assert model.stitch is not None
    model.stitch.load_state_dict({k.removeprefix(INIT): v for k, v in trained.items() if k.startswith(INIT)})
    init_logits = _predict(model.back, passes.run("front", "test").blocks[i])  # the front is the parent's
    stored = {
        "accuracy_init": torch.tensor(accuracy(init_logits, passes.sets["test"].labels)),
        "test_correct": _split_correct(_restore(model, trained), passes, "test", i),
    }
    cache.save(key, stored)
    return stored


@dataclass(frozen=True)
class _Prepared:
    """What every search starts from: the data, both parents and their CKA matrix."""

    splits: Splits
    front: Parent
    back: Parent
    cka: np.ndarray
    samples: int
    input_size: int

    @cached_property
    def stitch_cost(self) -> Callable[[int, int], Cost]:
        """The exact cost of the stitching layer from front block i to back block j (each measured once)."""
        sources, targets = interfaces(self.front.model, self.input_size), interfaces(self.back.model, self.input_size)
        return memoize(lambda i, j: _stitch_cost(sources[i], targets[j]))

    def candidates(self) -> list[Candidate]:
        """Every stitch point with its CKA and exact cost, most similar first."""
        return rank_candidates(
            self.cka, lambda i, j: self.front.costs.front(i) + self.stitch_cost(i, j) + self.back.costs.back(j)
        )


def _prepare(project: ProjectConfig, build: TargetConfig | None, cache: Cache, ranks: Ranks = ALONE) -> _Prepared:
    """The data (checked first against what ``project`` and a ``build``'s target ask for), parents and CKA.

    Under several ``ranks`` (a collective), rank 0 prepares the parents while the others wait, then they
    prepare theirs (from its cache entries where they share the cache) and take its weights; the CKA pass is
    shared between them. Rank 0 then takes a thread per CPU it may use; the others stay to fine-tune with it
    (``contribute``) until it leaves its training stages (``_leading``).
    """
    check_data(project, build)
    size = project.data.input_size
    splits = load_splits(project.data, project.seed)
    step(
        f"data: {len(splits.train)} train, {len(splits.validation)} validation and {len(splits.test)} test images "
        f"at {size} px, {len(splits.train.classes)} classes"
    )
    if not ranks.main:
        ranks.wait_for_main()
    front, back = load_parents(project, splits.train, cache)
    if ranks.main:
        ranks.wait_for_main()
    for parent, role in ((front, "front"), (back, "back")):
        ranks.weights_from_main(parent.model)
        step(f"{role} parent {parent.name}: {len(parent.model.blocks)} blocks")
    cka, samples = _cka_matrix(project, front, back, splits.train, cache, ranks)
    if ranks.main:
        ranks.go_on_alone()
    return _Prepared(splits, front, back, cka, samples, size)


def _stitched(
    project: ProjectConfig, passes: _Passes, point: tuple[int, int], config: FinetuneConfig, figures: Figures
) -> StitchedModel:
    """The stitched model at ``point`` with the state ``config``'s training stored in ``figures`` (eval mode)."""
    return _restore(_untrained(project, passes, point, config), figures)


def _restore(model: StitchedModel, figures: Figures) -> StitchedModel:
    """``model`` with the trained state stored in ``figures`` loaded into its trained parts (eval mode)."""
    trained = model.trained_prefixes()
    state = {k: v for k, v in figures.items() if k.startswith(trained)}
    missing = {k for k in model.state_dict() if k.startswith(trained)} - state.keys()
    assert not missing, f"cached stitch state lacks {sorted(missing)[:3]}"
    model.load_state_dict(state, strict=False)
    return model.eval()


def _variant_id(point: tuple[int, int]) -> str:
    return f"stitch-{point[0]:02d}-{point[1]:02d}"


@torch.no_grad()
def _kl_order(
    project: ProjectConfig, prepared: _Prepared, passes: _Passes, band: Band
) -> list[tuple[Candidate, float]]:
    """``band``'s candidates by the KL divergence of their least-squares stitch at the stitch point, lowest first."""
    size = project.data.input_size
    scored = []
    for candidate in band.candidates:
        i, j = candidate.front_block, candidate.back_block
        model = build_stitched(prepared.front.model, i, prepared.back.model, j, size)
        assert model.stitch is not None
        init_front, init_back = passes.run("front", "init").blocks[i], passes.run("back", "init").blocks[j]
        fit_least_squares(model.stitch, init_front, init_back, project.seed)
        kl = representation_kl(model.stitch, passes.run("front", "kl").blocks[i], passes.run("back", "kl").blocks[j])
        scored.append((candidate, kl))
    return sorted(scored, key=lambda pair: pair[1])  # stable: ties keep the CKA order


Order = list[tuple[Candidate, float]]
"""A band's candidates in the order a selector tries them, each with the score it was ordered by."""


@dataclass(frozen=True)
class _Context:
    """What a selector reads: the project, the prepared parents and data, the feature passes and the cache;
    the level of "more accurate with confidence" (the target's ``ladder.confidence``); and the executor that
    may train several stitches at once."""

    project: ProjectConfig
    prepared: _Prepared
    passes: _Passes
    cache: Cache
    confidence: float
    executor: Executor = LOCAL


@dataclass(frozen=True)
class Selector:
    """How ``search.selector`` orders a band: ``shortlist`` draws at most ``search.shortlist`` candidates before
    the feature passes are planned; ``rescore``, if any, reorders every band's shortlist once they are (all
    bands at once, so that what it trains runs as one batch of jobs)."""

    shortlist: Callable[[_Context, Band], Order]
    rescore: Callable[[_Context, list[Order]], list[Order]] | None = None


_SELECTORS = Registry[Selector]("selector")
register_selector, get_selector, list_selectors = _SELECTORS.register, _SELECTORS.get, _SELECTORS.names


def _by_cka(context: _Context, band: Band) -> Order:
    return [(c, c.cka) for c in band.candidates[: context.project.search.shortlist]]


def _by_kl(context: _Context, band: Band) -> Order:
    return _kl_order(context.project, context.prepared, context.passes, band)[: context.project.search.shortlist]


def _by_screen(context: _Context, orders: list[Order]) -> list[Order]:
    """Each of ``orders`` (CKA's) re-ranked by validation top-1 after fine-tuning each candidate for
    ``search.screen_epochs``, every band's candidates trained as one batch.

    CKA's first candidate stays first unless another is more accurate on validation with confidence
    (``more_accurate_than`` at the ladder's level, the shortlist's tests as one family); then the most accurate
    of those leads. The rest follow by validation top-1, best first. The guard is against the winner's curse:
    the best of a few scores that differ by less than their noise is partly luck, and was worse than CKA's
    choice on test as often as better.
    """
    project = context.project
    epochs = project.search.screen_epochs
    screen = project.finetune if epochs is None else project.finetune.model_copy(update={"epochs": epochs})
    points = list(dict.fromkeys((c.front_block, c.back_block) for order in orders for c, _ in order))
    trained = _train_all(context, points, screen, state=False)

    def rescored(order: Order) -> Order:
        correct = [_validation(trained[(c.front_block, c.back_block)]) for c, _ in order]
        scores = [top1(c) for c in correct]
        wins = more_accurate_than(correct[0], correct[1:], context.confidence)
        better = [k for k in range(1, len(order)) if wins[k - 1] is not None]
        first = max(better, key=lambda k: scores[k], default=0)  # max: the first of equals, in CKA order
        rest = sorted((k for k in range(len(order)) if k != first), key=lambda k: -scores[k])
        return [(order[k][0], scores[k]) for k in (first, *rest)]

    return [rescored(order) for order in orders]


register_selector("cka", Selector(_by_cka))
register_selector("kl", Selector(_by_kl))
register_selector("measured", Selector(_by_cka, _by_screen))


class _Ladder:
    """The rungs accepted so far (parents first), as contenders for the dominance test on validation."""

    def __init__(self, metrics: list[Metric], confidence: float, slack: dict[str, float]) -> None:
        self.metrics = metrics
        self.confidence = confidence
        self.slack = slack
        self.contenders: list[Contender] = []

    def add(self, id: str, figure: Callable[[Metric], float], validation_correct: np.ndarray) -> None:
        """Accept a rung (once: a point chosen by two budgets is one rung)."""
        if all(c.id != id for c in self.contenders):
            self.contenders.append(Contender(id, {m.value: figure(m) for m in self.metrics}, validation_correct))

    def dominated(self, contender: Contender) -> str | None:
        """Why ``contender`` is dominated by an accepted rung other than itself, or None."""
        others = [c for c in self.contenders if c.id != contender.id]
        return judge([*others, contender], self.confidence, self.slack)[contender.id].reason


def parents_note(front: ParentResult, back: ParentResult, confidence: float) -> str | None:
    """A warning unless the larger parent (more parameters) is more accurate than the smaller one on validation
    with ``confidence`` (paired McNemar): a lead within the noise cannot be climbed either."""
    small, large = sorted((front, back), key=lambda parent: parent.cost.params)
    large_correct, small_correct = large.scores.validation_correct, small.scores.validation_correct
    if more_accurate(large_correct, small_correct, confidence) is not None:
        return None
    comparison = compare_paired(large_correct, small_correct, confidence)
    return (
        f"the larger parent {large.name} is not more accurate than the smaller {small.name} on validation with "
        f"{100 * confidence:g}% confidence ({large.scores.validation:.2f}% vs {small.scores.validation:.2f}%, paired "
        f"McNemar p={comparison.p_value:.3g}): this ladder can only trade cost, never buy accuracy"
    )


def _climb(
    context: _Context,
    target: TargetConfig,
    budget_bands: list[Band],
    orders: dict[Budget, Order],
    ladder: _Ladder,
    figure: Figure,
) -> tuple[list[VariantResult], list[DroppedRung], dict[tuple[int, int], StitchedModel]]:
    """The rung of each band, cheapest budget first: the first candidate of its order, fully fine-tuned, that
    no rung accepted so far dominates on validation (``ladder.dominated`` says what happens when all are)."""
    project, prepared, search = context.project, context.prepared, context.project.search
    front, back = prepared.front, prepared.back
    metrics = ladder.metrics
    models: dict[tuple[int, int], StitchedModel] = {}
    variants: list[VariantResult] = []
    dropped: list[DroppedRung] = []
    firsts = [(order[0][0].front_block, order[0][0].back_block) for order in orders.values() if order]
    trained = _train_all(context, list(dict.fromkeys(firsts)), project.finetune)  # one batch: most bands stop there
    for band in sorted(budget_bands, key=lambda b: (metrics.index(b.budget.metric), b.budget.limit)):
        order = orders[band.budget]
        tried, reasons = [], []
        for rank, (candidate, _) in enumerate(order, start=1):
            point = (candidate.front_block, candidate.back_block)
            figures = trained[point] if point in trained else _train_all(context, [point], project.finetune)[point]
            tried.append((rank, candidate, figures))
            contender = Contender(
                _variant_id(point), {m.value: figure(candidate, m) for m in metrics}, _validation(figures)
            )
            if (reason := ladder.dominated(contender)) is None:
                break
            reasons.append(f"{_variant_id(point)}: {reason}")
        dominated = "; ".join(reasons) if len(reasons) == len(tried) else None
        rank, candidate, figures = tried[0] if dominated is not None else tried[-1]
        point = (candidate.front_block, candidate.back_block)
        if dominated is not None:
            if target.ladder.dominated == "drop":
                warn(
                    f"LADDER budget {band.budget.describe()}: rung dropped, every candidate "
                    f"tried is dominated on validation ({dominated})"
                )
                dropped.append(DroppedRung(band.budget, dominated))
                continue
            if target.ladder.dominated == "warn":
                warn(f"LADDER WARNING budget {band.budget.describe()}: {dominated}")
        ladder.add(_variant_id(point), partial(figure, candidate), _validation(figures))
        tested = _test_figures(context, point, project.finetune, figures)
        scores = Scores.of({**figures, **tested})
        model = models[point] = _stitched(project, context.passes, point, project.finetune, figures)
        stitch = model.stitch
        assert stitch is not None
        cka_rank = band.candidates.index(candidate) + 1
        variants.append(
            VariantResult(
                budget=band.budget,
                candidate=candidate,
                stitch_kind=stitch.kind,
                trainable_params=model.trainable_params(),
                accuracy_init=float(tested["accuracy_init"]),
                accuracy_finetuned=scores.test,
                finetune_seconds=float(figures["seconds"]),
                finetune_steps=int(figures["steps"]),
                finetune_best_epoch=int(figures["best_epoch"]),
                scores=scores,
                stitch_cost=prepared.stitch_cost(*point),
                selection=Selection(
                    selector=search.selector,
                    cka_rank=cka_rank,
                    selector_rank=rank,
                    shortlist=tuple((c.front_block, c.back_block, round(v, 6)) for c, v in order),
                    skipped=() if dominated is not None else tuple(reasons),
                    dominated=dominated,
                ),
            )
        )
        step(
            f"budget {band.budget.describe()}: {search.selector} picks {front.name}[..{point[0]}] -> "
            f"{back.name}[{point[1] + 1}..] (CKA rank {cka_rank}, {search.selector} rank {rank}): "
            f"validation {scores.validation:.2f}%"
        )
    return variants, dropped, models


def contribute(project: ProjectConfig, target: TargetConfig | None, cache: Cache, ranks: Ranks) -> None:
    """A rank other than 0's part of a search, build (``target`` given) or sweep: the stages rank 0 shares
    with it, in the same order; rank 0 alone goes on and writes.

    After the shared CKA pass, it fine-tunes each stitch rank 0 fine-tunes (``_Request``) on its share of the
    train split, until rank 0 is done training (``_leading``).
    """
    assert not ranks.main, "rank 0 runs the whole job"
    prepared = _prepare(project, target, cache, ranks)
    passes = _Passes(project, (prepared.front, prepared.back), prepared.splits, set(), ranks)
    while (request := ranks.from_main(None)) is not None:
        assert isinstance(request, _Request)
        passes.plan(set(request.front_blocks))
        model = _untrained(project, passes, request.point, request.config)
        data = _training_data(model, passes, request.point[0], request.config)
        finetune_stitch(model, *data, request.config, project.seed, ranks=ranks)


@contextmanager
def _leading(ranks: Ranks) -> Iterator[None]:
    """Rank 0's training stages: on leaving, the other ranks stop waiting for its ``_Request``s (even when the
    stages fail, so they exit instead of waiting)."""
    try:
        yield
    finally:
        if ranks.size > 1:
            ranks.from_main(None)


def run_search(
    project: ProjectConfig,
    target: TargetConfig,
    cache: Cache,
    *,
    build: bool = False,
    ranks: Ranks = ALONE,
    executor: Executor = LOCAL,
) -> SearchResult:
    """Run the front end for every budget of ``target``; see the module docstring.

    Each budget's band of candidates is ordered by ``search.selector`` (CKA, KL, or validation top-1 after
    fine-tuning the CKA shortlist, CKA's first kept unless beaten with confidence); the rung takes the first
    candidate, fully fine-tuned, that no cheaper rung (parents included) dominates on validation, trying at
    most ``search.shortlist`` of them.
    ``build``: the search starts a build, so the data check covers the target's int8 calibration images too.
    Under several ``ranks``, this is rank 0's job; the others ``contribute``. ``executor`` lowers the parts of
    a cost table profiled here and, with one rank, trains the stitches (each on one thread: ``_train_all``).
    """
    start = time.perf_counter()
    prepared = _prepare(project, target if build else None, cache, ranks)
    with _leading(ranks):
        front, back = prepared.front, prepared.back
        metrics = list(dict.fromkeys(budget.metric for budget in target.budgets))
        costs = (
            cost_table(project, target, (front, back), prepared.splits.train, cache, executor)
            if any(m.measured for m in metrics)
            else None
        )
        figure = _figure(costs, front.name, back.name, prepared.stitch_cost)
        search = project.search
        budget_bands = bands(prepared.candidates(), target.budgets, figure)
        passes = _Passes(project, (front, back), prepared.splits, set(), ranks)
        context = _Context(project, prepared, passes, cache, target.ladder.confidence, executor)
        selector = get_selector(search.selector)
        orders = {band.budget: selector.shortlist(context, band) for band in budget_bands}
        passes.plan({c.front_block for order in orders.values() for c, _ in order})

        front_result = _parent_result(project, front, "front", passes, cache)
        back_result = _parent_result(project, back, "back", passes, cache)
        note = parents_note(front_result, back_result, target.ladder.confidence)
        if note is not None:
            warn(f"LADDER WARNING {note}")

        if selector.rescore is not None:
            orders = dict(zip(orders, selector.rescore(context, list(orders.values())), strict=True))

        ladder = _Ladder(metrics, target.ladder.confidence, target.ladder.slack(metrics))
        for result, parent in ((front_result, front), (back_result, back)):
            ladder.add(parent.name, partial(_parent_figure, costs, parent), result.scores.validation_correct)
        variants, dropped, models = _climb(context, target, budget_bands, orders, ladder, figure)
        order_of = {b: k for k, b in enumerate(target.budgets)}
        variants.sort(key=lambda v: order_of[v.budget])
        return SearchResult(
            project=project,
            target=target,
            front=front_result,
            back=back_result,
            parents_note=note,
            cka=prepared.cka,
            costs=costs,
            calibration_samples=prepared.samples,
            variants=variants,
            dropped=dropped,
            stitched_models=models,
            parents=(front, back),
            splits=prepared.splits,
            seconds=time.perf_counter() - start,
        )


def sweep_grid(front_blocks: int, back_blocks: int, every: int) -> set[tuple[int, int]]:
    """Every ``every``-th block of each parent, always including each parent's last block."""

    def axis(count: int) -> list[int]:
        return sorted({*range(count - 1, -1, -every)})

    return {(i, j) for i in axis(front_blocks) for j in axis(back_blocks)}


def run_sweep(
    project: ProjectConfig, cache: Cache, every: int = 1, ranks: Ranks = ALONE, executor: Executor = LOCAL
) -> SweepResult:
    """Stitch at every point of ``sweep_grid`` and fine-tune each exactly as ``run_search`` would (rank 0's job
    under several ``ranks``; the others ``contribute``); with one rank, ``executor`` trains the points as jobs."""
    if every < 1:
        raise ValueError("every must be at least 1")
    start = time.perf_counter()
    prepared = _prepare(project, None, cache, ranks)
    with _leading(ranks):
        front, back = prepared.front, prepared.back
        grid = sweep_grid(len(front.model.blocks), len(back.model.blocks), every)
        candidates = {(c.front_block, c.back_block): c for c in prepared.candidates()}
        passes = _Passes(project, (front, back), prepared.splits, {i for i, _ in grid}, ranks)
        context = _Context(project, prepared, passes, cache, LadderPolicy().confidence, executor)  # no selector
        trained = _train_all(context, sorted(grid), project.finetune)
        points = []
        for point, figures in trained.items():
            model = _untrained(project, passes, point, project.finetune)
            tested = _test_figures(context, point, project.finetune, figures)
            scores = Scores.of({**figures, **tested})
            points.append(
                SweepPoint(
                    candidate=candidates[point],
                    trainable_params=model.trainable_params(),
                    accuracy_init=float(tested["accuracy_init"]),
                    accuracy_finetuned=scores.test,
                    accuracy_validation=scores.validation,
                    finetune_seconds=float(figures["seconds"]),
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
