"""What the search and the sweep produce, as every later stage reads it: the parents, each rung's scores and
how its stitch point was chosen, the search's and the sweep's results.

These records sit below ``bundle/``, ``reports/`` and ``pipeline/`` so that each of them can read results
without importing the stage that computed them (imports run downward; see ``[tool.importlinter]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from restnetc.budget.cost_table import CostTable
from restnetc.budget.costs import Cost, PartCosts
from restnetc.config.project import ProjectConfig
from restnetc.config.target import Budget, TargetConfig
from restnetc.data import ImageSet, Splits
from restnetc.frontend.search import Candidate
from restnetc.frontend.stitch import StitchedModel
from restnetc.models import BlockModel


@dataclass(frozen=True)
class Parent:
    """One configured parent model, ready to stitch."""

    key: Literal["a", "b"]
    name: str
    model: BlockModel
    costs: PartCosts
    probed: bool
    finetuned: bool = False
    """Trained end-to-end on the task's train split (``task_head.mode: finetune``), after its probe if any."""

    @property
    def task_head(self) -> str:
        """How the parent got its classifier for the task, as the reports state it."""
        head = "linear probe" if self.probed else "own classifier"
        return f"{head}, then fine-tuned end-to-end" if self.finetuned else head


@dataclass(frozen=True)
class Scores:
    """A model's top-1 % on the validation and test splits, and its per-image correctness (paired tests)."""

    validation: float
    test: float
    validation_correct: np.ndarray = field(repr=False)
    test_correct: np.ndarray = field(repr=False)

    @staticmethod
    def of(stored: dict[str, torch.Tensor], prefix: str = "") -> Scores:
        """From per-image correctness tensors stored as ``{prefix}validation_correct`` and ``{prefix}test_correct``."""
        validation, test = (stored[f"{prefix}{split}_correct"].numpy().astype(bool) for split in ("validation", "test"))
        return Scores(top1(validation), top1(test), validation, test)


def top1(correct: np.ndarray) -> float:
    """Top-1 % from per-image correctness."""
    return float(correct.mean() * 100)


@dataclass(frozen=True)
class ParentResult:
    """A parent as an end of the ladder."""

    name: str
    role: str
    blocks: int
    cost: Cost
    scores: Scores
    task_head: str
    """How the parent got its classifier (``Parent.task_head``)."""

    @property
    def accuracy(self) -> float:
        """Top-1 % on the test split."""
        return self.scores.test


@dataclass(frozen=True)
class Selection:
    """How a rung's stitch point was chosen: the candidates tried, each point's ranks, and the verdict."""

    selector: str
    cka_rank: int
    """1-based rank of the chosen point by CKA among its band's candidates."""
    selector_rank: int
    """1-based position of the chosen point in the order its band's candidates were tried: the selector's order
    over the shortlist (CKA; KL; measured: CKA's first unless another is more accurate with confidence, then by
    validation score), so a rank above 1 means every point before it was dominated."""
    shortlist: tuple[tuple[int, int, float], ...]
    """``(front_block, back_block, score)`` per shortlisted point, in the selector's order; the score is
    validation top-1 % after the screening fine-tune (measured), KL in nats (kl) or CKA (cka)."""
    skipped: tuple[str, ...] = ()
    """Why each candidate tried before the chosen one was passed over (dominated on validation)."""
    dominated: str | None = None
    """Why the rung ships although every candidate tried was dominated (policy warn/keep), else None."""


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
    finetune_best_epoch: int
    """The epoch whose weights the rung keeps (best on validation; 0: the least-squares fit alone)."""
    scores: Scores
    selection: Selection
    stitch_cost: Cost
    """The stitching layer's own parameters and MACs (the cost model's input for it)."""


@dataclass(frozen=True)
class DroppedRung:
    """A budget whose every candidate tried was dominated on validation (``ladder.dominated: drop``)."""

    budget: Budget
    reason: str


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
    dropped: list[DroppedRung] = field(default_factory=list)
    parents_note: str | None = None
    """Set unless the larger parent is more accurate than the smaller one on validation with the ladder's confidence."""
    costs: CostTable | None = field(default=None, repr=False)
    """The target's cost table, when a budget is on a measured metric."""
    stitched_models: dict[tuple[int, int], StitchedModel] = field(repr=False)
    parents: tuple[Parent, Parent] = field(repr=False)
    """The front and the back parent, in that order."""
    splits: Splits = field(repr=False)
    seconds: float = 0.0

    @property
    def train(self) -> ImageSet:
        return self.splits.train

    @property
    def validation(self) -> ImageSet:
        return self.splits.validation

    @property
    def test(self) -> ImageSet:
        return self.splits.test


@dataclass(frozen=True)
class SweepPoint:
    """One stitch point of a sweep, after fine-tuning."""

    candidate: Candidate
    trainable_params: int
    accuracy_init: float
    accuracy_finetuned: float
    accuracy_validation: float
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
