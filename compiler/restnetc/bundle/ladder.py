"""The models a bundle ships: both parents as the ends of the ladder, and one stitched variant per rung."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from restnetc.backends.pt2e import Donor
from restnetc.budget.costs import Cost
from restnetc.bundle.manifest import StitchInfo
from restnetc.cache import weights_digest
from restnetc.config.target import Budget
from restnetc.results import SearchResult


@dataclass(frozen=True)
class Rung:
    """One model to lower, with what the search knows about it."""

    id: str
    role: str
    model: nn.Module
    params: int
    macs: int
    budget: Budget | None
    stitch: StitchInfo | None
    parent: str | None = None
    """The parent model's name, for a parent rung."""
    stitch_cost: Cost | None = None
    """A variant's stitching layer alone (params, MACs), for the cost model."""
    donor: Donor | None = None
    """A variant's back parent, whose quantization its shared modules take (``pt2e.observe``)."""

    @cached_property
    def digest(self) -> str:
        """The model's weights digest, hashed once (the cache keys of the rung's float stages; int8 ones take
        ``quantized_digest``)."""
        return weights_digest(self.model)

    @cached_property
    def donor_digest(self) -> str | None:
        """The donor's weights digest (its parent rung's ``quantized_digest``), hashed once; None without one."""
        return None if self.donor is None else weights_digest(self.donor.model)

    @cached_property
    def quantized_digest(self) -> str:
        """What the rung's int8 graphs derive from besides the calibration: its weights and its donor's."""
        return self.digest if self.donor_digest is None else f"{self.digest}+{self.donor_digest}"


def ladder(result: SearchResult) -> list[Rung]:
    """Parents and distinct variants, cheapest first. A variant whose back part is its parent's own takes that
    parent's quantization there (``Rung.donor``)."""
    back = result.parents[1].model
    rungs = [
        Rung(
            f"parent-{re.sub(r'[^A-Za-z0-9._-]', '-', parent.name)}",  # ids are file names: timm:x -> timm-x
            "parent",
            parent.model,
            parent.costs.total.params,
            parent.costs.total.macs,
            None,
            None,
            parent.name,
        )
        for parent in result.parents
    ]
    seen: set[tuple[int, int]] = set()
    for variant in result.variants:
        point = (variant.candidate.front_block, variant.candidate.back_block)
        if point in seen:
            continue
        seen.add(point)
        stitch = StitchInfo(
            front_model=result.front.name,
            front_block=point[0],
            back_model=result.back.name,
            back_block=point[1],
            cka=round(variant.candidate.cka, 6),
            order=result.project.order.value,
            stitch_kind=variant.stitch_kind,
            trainable_params=variant.trainable_params,
        )
        rungs.append(
            Rung(
                f"stitch-{point[0]:02d}-{point[1]:02d}",
                "variant",
                result.stitched_models[point],
                variant.candidate.cost.params,
                variant.candidate.cost.macs,
                variant.budget,
                stitch,
                stitch_cost=variant.stitch_cost,
                donor=Donor(back, shared) if (shared := result.stitched_models[point].shared_with_back()) else None,
            )
        )
    return sorted(rungs, key=lambda r: r.params)


@torch.no_grad()
def eager_logits(model: nn.Module, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """fp32 logits of ``model`` over ``images``, in batches."""
    model.eval()
    return torch.cat([model(chunk) for chunk in images.split(batch)])
