"""Task heads for the parents: a linear probe on frozen pre-logits features (``parent_training.py`` goes further)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restnetc.config.project import TaskHeadConfig


def needs_probe(config: TaskHeadConfig, classifier_outputs: int | None, num_classes: int) -> bool:
    """Whether a parent gets a new linear probe (``auto`` and ``finetune``: when its classifier's class count
    differs; ``finetune`` then trains the whole parent, probe included)."""
    if config.mode in ("auto", "finetune"):
        return classifier_outputs != num_classes
    return config.mode == "linear-probe"


def classifier_outputs(head: nn.Module) -> int | None:
    """Output count of the last Linear layer in ``head``, if any."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TaskHeadConfig, seed: int
) -> nn.Linear:
    """Full-batch softmax regression on ``features`` ``[N, D]``; returns the trained Linear."""
    torch.manual_seed(seed)
    probe = nn.Linear(features.shape[1], num_classes)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for _ in range(config.epochs):
        optimizer.zero_grad()
        F.cross_entropy(probe(features), labels).backward()
        optimizer.step()
    return probe.eval()
