"""Measured selection on the validation split: selectors, dominated rungs, and a test split that never chooses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import restnetc.pipeline.search as search_module
from restnetc.budget.costs import Cost
from restnetc.cache import Cache
from restnetc.config.project import ProjectConfig
from restnetc.config.target import TargetConfig
from restnetc.data import Splits
from restnetc.frontend.search import Candidate
from restnetc.pipeline.search import parents_note, run_search
from restnetc.results import ParentResult, Scores, SearchResult
from tests.conftest import TINY_PROJECT, TINY_TARGET


def _configs(selector: str, dominated: str = "keep", **sections: object) -> tuple[ProjectConfig, TargetConfig]:
    project = yaml.safe_load(TINY_PROJECT)
    project["search"] = {"selector": selector, "shortlist": 3, "screen_epochs": 1}
    project.update(sections)
    target = yaml.safe_load(TINY_TARGET)
    target["ladder"] = {"dominated": dominated}
    return ProjectConfig.model_validate(project), TargetConfig.model_validate(target)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """One cache for the module: parents, CKA and each (point, fine-tune) are computed once across selectors."""
    return Cache(tmp_path_factory.mktemp("selection-cache"))


def _points(result: SearchResult) -> list[tuple[int, int]]:
    return [(v.candidate.front_block, v.candidate.back_block) for v in result.variants]


@pytest.mark.parametrize("selector", ["cka", "kl", "measured"])
def test_each_selector_orders_the_shortlist_and_reports_both_ranks(selector: str, cache: Cache) -> None:
    result = run_search(*_configs(selector), cache)
    assert [v.budget.limit for v in result.variants] == [3.6e6, 4.2e6]
    for variant in result.variants:
        selection = variant.selection
        assert selection.selector == selector and len(selection.shortlist) == 3
        scores = [score for _, _, score in selection.shortlist]
        if selector == "measured":  # CKA's first leads unless beaten with confidence; the rest best first
            assert scores[1:] == sorted(scores[1:], reverse=True)
        else:  # cka: most similar first; kl: lowest divergence first
            assert scores == sorted(scores, reverse=selector == "cka")
        chosen = (variant.candidate.front_block, variant.candidate.back_block)
        assert selection.shortlist[selection.selector_rank - 1][:2] == chosen
        if selector == "cka":
            assert selection.cka_rank == selection.selector_rank
        if selection.dominated is None:  # the first candidate no cheaper rung dominates
            assert len(selection.skipped) == selection.selector_rank - 1
            assert all("more accurate" in reason for reason in selection.skipped)
        else:  # keep: every candidate was dominated, the selector's first one ships
            assert selection.selector_rank == 1 and selection.dominated.count("more accurate") == 3


def _screened(correct: list[int], monkeypatch: pytest.MonkeyPatch, images: int = 400) -> list[tuple[int, float]]:
    """The measured selector's order of three candidates (CKA order 0, 1, 2) whose screens are right on the
    first ``correct[k]`` of ``images`` validation images (so each better one is right wherever a worse one is)."""
    band = [Candidate(front_block=k, back_block=k, cka=1.0 - k / 10, cost=Cost(1, 1)) for k in range(3)]
    figures = {(k, k): {"validation_correct": torch.arange(images) < correct[k]} for k in range(3)}
    monkeypatch.setattr(search_module, "_train_all", lambda *args, **kwargs: figures)
    project, _ = _configs("measured")
    context = search_module._Context(project, None, None, None, 0.95)  # type: ignore[arg-type]
    (order,) = search_module.get_selector("measured").rescore(context, [[(c, c.cka) for c in band]])  # type: ignore[misc]
    return [(c.front_block, score) for c, score in order]


def test_measured_selection_keeps_ckas_first_unless_another_is_better_with_confidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The winner's curse: a candidate a few images ahead on validation does not overrule CKA; one ahead by
    a McNemar-significant margin does, and the rest follow best first. Six images ahead (p = 0.031) would
    overrule alone but not as one of two tests (Holm: the smallest p must be below 0.05 / 2)."""
    assert _screened([300, 305, 302], monkeypatch) == [(0, 75.0), (1, 76.25), (2, 75.5)]
    assert _screened([300, 306, 300], monkeypatch)[0] == (0, 75.0)
    assert _screened([300, 305, 330], monkeypatch) == [(2, 82.5), (1, 76.25), (0, 75.0)]
    assert _screened([300, 331, 330], monkeypatch)[0] == (1, 82.75)  # the best of those that beat CKA's first
    assert _screened([300, 330, 330], monkeypatch)[0] == (1, 82.5)  # of equals, the first in CKA order


def test_a_band_whose_candidates_are_all_dominated_is_dropped_with_the_reason(cache: Cache) -> None:
    """Randomly initialised, untrained stitches (about 10% top-1) cost more than Lite0 (about 60%) in every band:
    Lite0 dominates every candidate, so ``keep`` ships each band's first and ``drop`` leaves every band empty."""
    untrained = {"finetune": {"init": "random", "epochs": 0}, "search": {"shortlist": 2, "screen_epochs": 0}}
    kept = run_search(*_configs("measured", "keep", **untrained), cache)
    assert [v.budget.limit for v in kept.variants] == [3.6e6, 4.2e6]
    for variant in kept.variants:
        assert variant.selection.dominated is not None and variant.selection.selector_rank == 1
        assert variant.selection.dominated.count("efficientnet-lite0 costs no more") == 2
    dropped = run_search(*_configs("measured", "drop", **untrained), cache)
    assert dropped.variants == [] and [d.budget.limit for d in dropped.dropped] == [3.6e6, 4.2e6]
    assert all("efficientnet-lite0 costs no more" in d.reason for d in dropped.dropped)


def test_a_larger_parent_that_is_not_more_accurate_is_said_before_stitching(cache: Cache) -> None:
    """At 32 px on 96 images the Lite2 probe (about 30% on validation) is far below Lite0's (about 60%)."""
    result = run_search(*_configs("cka"), cache)
    assert result.front.scores.validation < result.back.scores.validation
    assert result.parents_note is not None and "efficientnet-lite2 is not more accurate" in result.parents_note


def _parent(name: str, params: int, correct: int, images: int = 1000) -> ParentResult:
    hits = np.arange(images) < correct
    return ParentResult(name, "front", 1, Cost(params, 1), Scores(100 * hits.mean(), 0.0, hits, hits), "keep")


def test_the_parents_note_wants_the_larger_parent_ahead_with_confidence() -> None:
    """The larger parent (by parameters, whichever end it is) must lead on validation by more than the noise:
    a 0.2-point lead on 1,000 images warns, a 6-point one does not. Fails if the note compares point estimates
    or sizes the parents by their role."""
    small, close, clear = _parent("small", 10, 900), _parent("large", 20, 902), _parent("large", 20, 960)
    note = parents_note(close, small, 0.95)
    assert note is not None and note.startswith("the larger parent large is not more accurate than the smaller")
    assert "95% confidence (90.20% vs 90.00%" in note
    assert parents_note(small, close, 0.95) == note
    assert parents_note(clear, small, 0.95) is None and parents_note(small, clear, 0.95) is None


def test_selection_never_reads_the_test_split(cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permuted test labels change every test figure and no choice (fresh cache: figures are cached per split);
    only the stitches that ship are scored on test."""
    reference = run_search(*_configs("measured", "drop"), cache)
    load = search_module.load_splits

    def permuted(*args: object, **kwargs: object) -> Splits:
        splits = load(*args, **kwargs)  # type: ignore[arg-type]
        order = torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))
        return replace(splits, test=replace(splits.test, labels=splits.test.labels[order]))

    monkeypatch.setattr(search_module, "load_splits", permuted)
    shuffled = run_search(*_configs("measured", "drop"), Cache(tmp_path / "fresh"))
    stitches, tested = (len(list((tmp_path / "fresh").glob(f"{stage}-*.pt"))) for stage in ("stitch", "stitch-test"))
    assert 0 < tested == len(set(_points(shuffled))) < stitches - tested, "a candidate passed over was scored on test"
    assert _points(shuffled) == _points(reference)
    assert [d.budget for d in shuffled.dropped] == [d.budget for d in reference.dropped]
    for ours, theirs in zip(shuffled.variants, reference.variants, strict=True):
        assert ours.selection == theirs.selection and ours.scores.validation == theirs.scores.validation
    assert shuffled.back.scores.test != reference.back.scores.test, "the permutation reached the test figures"
