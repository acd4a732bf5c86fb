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
from restnetc.pipeline.search import lead_with_confidence, run_search
from restnetc.results import SearchResult
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
        # cka: most similar first; kl: lowest divergence first; measured: a leader, then best validation first
        assert scores[selector == "measured" :] == sorted(scores[selector == "measured" :], reverse=selector != "kl")
        chosen = (variant.candidate.front_block, variant.candidate.back_block)
        assert selection.shortlist[selection.selector_rank - 1][:2] == chosen
        if selector == "cka":
            assert selection.cka_rank == selection.selector_rank
        if selection.dominated is None:  # the first candidate no cheaper rung dominates
            assert len(selection.skipped) == selection.selector_rank - 1
            assert all("more accurate" in reason for reason in selection.skipped)
        else:  # keep: every candidate was dominated, the selector's first one ships
            assert selection.selector_rank == 1 and selection.dominated.count("more accurate") == 3


def _candidate(point: int) -> Candidate:
    return Candidate(point, point, cka=1 - point / 10, cost=Cost(params=point, macs=point))


def _correct(hits: int, of: int = 1000) -> np.ndarray:
    return np.arange(of) < hits


def test_measured_keeps_ckas_first_choice_unless_another_is_more_accurate_with_paired_confidence() -> None:
    """A lead of 2 points on 1000 images whose errors nest (20 discordant images, all one way: p ~ 2e-6) is
    confident; 30 images gained and 20 lost (McNemar p ~ 0.2) is noise; 10 gained and none lost (p ~ 0.002)
    passes at 95% but not at 99.9%."""
    first, second, third = (_candidate(k) for k in range(3))
    noisy = np.roll(_correct(810), 5)
    confident = lead_with_confidence([(first, _correct(800)), (second, noisy), (third, _correct(820))], 0.95)
    assert [c for c, _ in confident] == [third, second, first]
    assert [v for _, v in confident] == [82.0, 81.0, 80.0]
    kept = lead_with_confidence([(first, _correct(800)), (second, np.roll(_correct(810), 20))], 0.95)
    assert [c for c, _ in kept] == [first, second], "a noisy lead displaced CKA's first choice"
    assert [c for c, _ in lead_with_confidence([(first, _correct(800)), (third, _correct(810))], 0.95)] == [
        third,
        first,
    ]
    stricter = lead_with_confidence([(first, _correct(800)), (third, _correct(810))], 0.999)
    assert [c for c, _ in stricter] == [first, third], "p ~ 0.002 displaced at the 99.9% level"


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


def test_selection_never_reads_the_test_split(cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permuted test labels change every test figure and no choice (fresh cache: figures are cached per split)."""
    reference = run_search(*_configs("measured", "drop"), cache)
    load = search_module.load_splits

    def permuted(*args: object, **kwargs: object) -> Splits:
        splits = load(*args, **kwargs)  # type: ignore[arg-type]
        order = torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))
        return replace(splits, test=replace(splits.test, labels=splits.test.labels[order]))

    monkeypatch.setattr(search_module, "load_splits", permuted)
    shuffled = run_search(*_configs("measured", "drop"), Cache(tmp_path / "fresh"))
    assert _points(shuffled) == _points(reference)
    assert [d.budget for d in shuffled.dropped] == [d.budget for d in reference.dropped]
    for ours, theirs in zip(shuffled.variants, reference.variants, strict=True):
        assert ours.selection == theirs.selection and ours.scores.validation == theirs.scores.validation
    assert shuffled.back.scores.test != reference.back.scores.test, "the permutation reached the test figures"
