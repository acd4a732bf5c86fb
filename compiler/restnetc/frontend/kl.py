"""KL divergence between representations at a stitch point: a training-free ranking of stitch points.

In the spirit of KLAS (ICLR 2026), which ranks stitches by the KL divergence between intermediate
representations: here, at each position of the back's grid, the channel distribution (softmax over channels)
of the back parent's own block output against that of the front's output mapped by the least-squares
stitching layer. A low divergence means the back part receives what it was trained on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restnetc.frontend.stitch import StitchLayer


@torch.no_grad()
def representation_kl(stitch: StitchLayer, front_out: torch.Tensor, back_out: torch.Tensor) -> float:
    """Mean over images and positions of ``KL(back || stitched)`` between channel softmaxes, in nats.

    ``front_out`` and ``back_out`` are the two parents' block outputs at the stitch point for the same
    images; ``stitch`` is already fitted (e.g. by least squares).
    """
    target = F.log_softmax(stitch.target_grid(back_out).double(), dim=1)
    mapped = F.log_softmax(stitch.target_grid(stitch(front_out)).double(), dim=1)
    per_position = (target.exp() * (target - mapped)).sum(dim=1)
    return float(per_position.mean())
