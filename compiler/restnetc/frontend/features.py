"""Passes over image sets: streamed CKA between two parents, and captured block outputs and logits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from restnetc.data import ImageSet
from restnetc.distributed import ALONE, Ranks
from restnetc.frontend.cka import MIN_UNBIASED_BATCH, Estimator, StreamingCKA
from restnetc.models.blocks import BlockModel
from restnetc.progress import track


@torch.no_grad()
def stream_cka(
    model_a: BlockModel,
    model_b: BlockModel,
    images: ImageSet,
    batch_size: int,
    estimator: Estimator,
    ranks: Ranks = ALONE,
) -> tuple[np.ndarray, int]:
    """CKA ``[blocks of A, blocks of B]`` over ``images`` in one pass; returns it and the samples used.

    A trailing minibatch smaller than the unbiased estimator's minimum is left out (and not counted). Under
    several ``ranks`` (a collective: every rank calls it), each rank takes its share of the same minibatches
    and the HSIC sums are added over the ranks, so every rank returns the one-process matrix up to the order
    of float64 additions.
    """
    model_a.eval()
    model_b.eval()
    accumulator = StreamingCKA(len(model_a.blocks), len(model_b.blocks), estimator)
    batches = [b for b, _ in images.batches(batch_size) if len(b) >= MIN_UNBIASED_BATCH]
    for batch in track(ranks.share(batches), "CKA over calibration images"):
        accumulator.update(list(model_a.block_outputs(batch)), list(model_b.block_outputs(batch)))
    samples = torch.tensor([accumulator.samples], dtype=torch.float64)
    ranks.sum(accumulator.hsic)
    ranks.sum(samples)
    accumulator.samples = int(samples.item())
    return accumulator.compute(), accumulator.samples


@dataclass(frozen=True)
class Capture:
    """Selected block outputs and the logits of a parent over an image set, in image order."""

    blocks: dict[int, torch.Tensor]
    logits: torch.Tensor


@torch.no_grad()
def capture(model: BlockModel, images: ImageSet, keep: Sequence[int], batch_size: int, what: str) -> Capture:
    """Run ``model`` over ``images`` keeping the outputs of blocks ``keep`` and the logits."""
    model.eval()
    kept: dict[int, list[torch.Tensor]] = {index: [] for index in keep}
    logits = []
    for batch, _ in track(images.batches(batch_size), what):
        x = model.stem(batch)
        for index, block in enumerate(model.blocks):
            x = block(x)
            if index in kept:
                kept[index].append(x)
        logits.append(model.head(x))
    return Capture({i: torch.cat(v) for i, v in kept.items()}, torch.cat(logits))


@torch.no_grad()
def embed(model: BlockModel, images: ImageSet, batch_size: int, what: str) -> torch.Tensor:
    """Pre-logits features ``[N, D]`` of ``model`` over ``images`` (the input of a linear probe)."""
    model.eval()
    outputs = []
    for batch, _ in track(images.batches(batch_size), what):
        x = model.stem(batch)
        for block in model.blocks:
            x = block(x)
        outputs.append(model.head.embed(x))
    return torch.cat(outputs)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((logits.argmax(dim=1) == labels).double().mean() * 100.0)
