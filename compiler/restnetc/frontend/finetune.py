"""Training a stitched model: least-squares initialisation of the stitching layer, then gradient fine-tuning.

By default only the stitching layer trains, on cached front features (the front is frozen, so its output
never changes): each step costs the stitching layer and the back part only. ``finetune.scope`` can train the
back part and/or the front part too; when the front trains, each step runs the whole model on images. Under
several data-parallel ranks the same loop runs under DistributedDataParallel, each rank on its share of the
training images (see ``finetune_stitch`` for when that reaches one process's weights).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from restnetc.config.project import DistillConfig, FinetuneConfig
from restnetc.distributed import ALONE, Ranks
from restnetc.frontend.stitch import StitchedModel, StitchLayer
from restnetc.progress import track

MAX_LSTSQ_ROWS = 200_000
RIDGE = 1e-6  # relative to the mean diagonal: only guards against dead (constant) channels


def _rows(grid: torch.Tensor) -> torch.Tensor:
    return grid.permute(0, 2, 3, 1).reshape(-1, grid.shape[1]).to(torch.float64)


@torch.no_grad()
def fit_least_squares(stitch: StitchLayer, front_out: torch.Tensor, back_out: torch.Tensor, seed: int) -> None:
    """Set the channel map to the ridge least-squares fit from front outputs to the back parent's outputs.

    ``front_out`` and ``back_out`` are the two parents' block outputs at the stitch point for the same
    images; every spatial position of every image is one equation.
    """
    source = _rows(stitch.source_grid(front_out)[0])
    target = _rows(stitch.target_grid(back_out))
    if source.shape[0] > MAX_LSTSQ_ROWS:
        keep = torch.randperm(source.shape[0], generator=torch.Generator().manual_seed(seed))[:MAX_LSTSQ_ROWS]
        source, target = source[keep], target[keep]
    design = torch.cat([source, torch.ones(source.shape[0], 1, dtype=torch.float64)], dim=1)
    gram = design.T @ design
    ridge = RIDGE * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=torch.float64)
    solution = torch.linalg.solve(gram + ridge, design.T @ target)  # [C_in + 1, C_out]
    stitch.set_affine(solution[:-1].T.float(), solution[-1].float())


@dataclass(frozen=True)
class FinetuneReport:
    """What fine-tuning cost and reached."""

    seconds: float
    steps: int
    final_loss: float
    best_epoch: int
    """The epoch whose weights were kept (1-based; 0: the initial weights; the last epoch without validation)."""
    validation: tuple[float, ...] = ()
    """Validation top-1 % of the initial weights and after each epoch, when validation data was given."""


@torch.no_grad()
def _top1(forward: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    inputs, labels = data
    correct = sum(
        int((forward(x).argmax(1) == y).sum()) for x, y in zip(inputs.split(256), labels.split(256), strict=True)
    )
    return 100.0 * correct / max(len(labels), 1)


def stitch_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    distill: DistillConfig | None,
    size: int,
) -> torch.Tensor:
    """A stitch's training loss over ``logits`` (summed, divided by the minibatch ``size``): cross-entropy on
    ``labels``, blended with ``distill.weight`` of the temperature-scaled KL divergence to ``teacher_logits``
    when both are given."""
    loss = F.cross_entropy(logits, labels, reduction="sum") / size
    if distill is None or teacher_logits is None:
        return loss
    t = distill.temperature
    kl = F.kl_div(
        F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1), log_target=True, reduction="sum"
    )
    return (1 - distill.weight) * loss + distill.weight * kl / size * t * t


class _Step(nn.Module):
    """What one training step runs: the whole stitched model on images when its front trains, else its back part
    (stitching layer onwards) on cached front features."""

    def __init__(self, model: StitchedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.model.front_trainable else self.model.back(x)


def finetune_stitch(
    model: StitchedModel,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    config: FinetuneConfig,
    seed: int,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    ranks: Ranks = ALONE,
) -> FinetuneReport:
    """Train every trainable part of ``model``: cross-entropy, plus KL to the teacher if configured.

    ``inputs`` are cached front features, or images when the front part is trainable; ``validation`` the
    same kind of inputs with labels. With validation, the weights of the epoch (or the initial ones) that
    score best on it are kept (earliest on ties), so more epochs never make a rung worse on validation.

    Under several ``ranks`` (a collective: every rank calls it for the same model), ``inputs``, ``labels`` and
    ``teacher_logits`` hold this rank's share of the training images, every ``ranks.size``-th from position
    ``ranks.rank`` (``Ranks.share``), and the model trains under DistributedDataParallel from rank 0's trainable
    weights (the frozen parts are every rank's own copy of the same parents, so they are not sent). Each step
    takes the minibatch one process would take, each rank the images of it that it holds, and the gradients add
    up to one process's: with the stitching layer alone trainable (the default scope), or trainable parts
    without batch normalisation, every rank reaches one process's weights within float rounding. A trainable
    batch-norm layer normalises by each rank's share of the minibatch instead (DDP without SyncBatchNorm), and
    its running statistics are rank 0's own. Only rank 0 scores ``validation`` and keeps its best epoch: its
    weights and report are the outcome.
    """
    assert model.stitch is not None
    step = _Step(model)
    trained: nn.Module = step
    if ranks.size > 1:
        shared = [name for name, p in step.named_parameters() if not p.requires_grad]
        shared += [name for name, _ in step.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(step, shared)
        trained = DistributedDataParallel(step, forward_sync_buffers=False)
    generator = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    distill = config.distill if teacher_logits is not None else None
    held = torch.tensor(labels.shape[0])
    ranks.sum(held)
    count = int(held)
    steps_per_epoch = (count + config.batch_size - 1) // config.batch_size
    start = time.perf_counter()
    model.eval()
    validation = validation if ranks.main else None
    scores = [_top1(step, validation)] if validation is not None else []
    best = (scores[0], 0, [p.detach().clone() for p in trainable]) if scores else None
    loss = torch.zeros(())
    steps = 0

    def batches() -> Iterator[tuple[int, torch.Tensor, int, bool]]:
        """Each step's epoch, this rank's positions of the images it holds in the minibatch, the minibatch size,
        and whether it ends the epoch."""
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(count, generator=generator)
            for i in range(0, count, config.batch_size):
                batch = order[i : i + config.batch_size]
                mine = batch[batch % ranks.size == ranks.rank] // ranks.size
                yield epoch, mine, len(batch), i + config.batch_size >= count

    total = config.epochs * steps_per_epoch
    for epoch, index, size, last in track(batches(), f"fine-tuning ({config.scope})", total=total):
        model.train()
        logits = trained(inputs[index])
        # Sums over this rank's images divided by the whole minibatch: the ranks' terms add up to one process's
        # mean loss; DistributedDataParallel averages gradients over the ranks, hence the factor ``ranks.size``.
        teacher = None if teacher_logits is None else teacher_logits[index]
        loss = stitch_loss(logits, labels[index], teacher, distill, size)
        optimizer.zero_grad()
        (loss * ranks.size).backward()
        optimizer.step()
        steps += 1
        if last and validation is not None and best is not None:
            model.eval()
            scores.append(_top1(step, validation))
            if scores[-1] > best[0]:
                best = (scores[-1], epoch, [p.detach().clone() for p in trainable])
    model.eval()
    final_loss = loss.detach().clone()
    ranks.sum(final_loss)
    best_epoch = config.epochs
    if best is not None:
        best_epoch = best[1]
        with torch.no_grad():
            for parameter, kept in zip(trainable, best[2], strict=True):
                parameter.copy_(kept)
    return FinetuneReport(time.perf_counter() - start, steps, float(final_loss), best_epoch, tuple(scores))
