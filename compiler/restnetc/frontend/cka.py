"""Linear CKA between every block of model A and every block of model B, streamed over minibatches.

For each minibatch, every layer's linear Gram matrix is centred (U-centred for the unbiased estimator of
Song et al. 2012, H K H for the biased one), the centred Grams of all layers of both models are stacked as
rows of one matrix, and a single matrix product gives the HSIC of every layer pair, including each layer
with itself. Those HSIC values are summed in float64 over minibatches (Nguyen et al. 2021, "minibatch CKA");
CKA is the summed cross term over the geometric mean of the summed self terms. Memory depends on the
minibatch size and the number of layers only, never on the dataset size.

The accumulator is a plain sum, so data-parallel ranks can combine theirs with
``torch.distributed.all_reduce(acc.hsic, op=SUM)`` (or ``merge``) before ``compute``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

Estimator = Literal["unbiased", "biased"]

MIN_UNBIASED_BATCH = 4
_EPS = 1e-12


def _gram(features: torch.Tensor) -> torch.Tensor:
    flat = features.reshape(features.shape[0], -1).to(torch.float64)
    return flat @ flat.T


def u_center(gram: torch.Tensor) -> torch.Tensor:
    """U-centring: ``<u_center(K), u_center(L)> / (n (n - 3))`` is the unbiased HSIC estimator."""
    n = gram.shape[0]
    if n < MIN_UNBIASED_BATCH:
        raise ValueError(
            f"the unbiased HSIC estimator needs minibatches of at least {MIN_UNBIASED_BATCH} samples, got {n}"
        )
    k = gram.clone()
    k.fill_diagonal_(0.0)
    row = k.sum(dim=1, keepdim=True) / (n - 2)
    total = k.sum() / ((n - 1) * (n - 2))
    centred = k - row - row.T + total
    centred.fill_diagonal_(0.0)
    return centred


def h_center(gram: torch.Tensor) -> torch.Tensor:
    """Double centring ``H K H``: ``<H K H, H L H> / (n - 1)^2`` is the biased HSIC estimator."""
    row = gram.mean(dim=1, keepdim=True)
    return gram - row - row.T + gram.mean()


def _normaliser(n: int, estimator: Estimator) -> float:
    return float(n * (n - 3)) if estimator == "unbiased" else float((n - 1) ** 2)


class StreamingCKA:
    """Sum of minibatch HSIC values for all layer pairs of two models; ``compute`` yields the CKA matrix."""

    def __init__(self, layers_a: int, layers_b: int, estimator: Estimator = "unbiased") -> None:
        if layers_a < 1 or layers_b < 1:
            raise ValueError("both models need at least one layer")
        self.layers_a = layers_a
        self.layers_b = layers_b
        self.estimator: Estimator = estimator
        size = layers_a + layers_b
        self.hsic = torch.zeros(size, size, dtype=torch.float64)
        self.samples = 0

    def update(self, features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor]) -> None:
        """Add one minibatch: one tensor per layer, batch dimension first, same batch for all."""
        if len(features_a) != self.layers_a or len(features_b) != self.layers_b:
            raise ValueError(
                f"expected {self.layers_a} + {self.layers_b} layer outputs, got {len(features_a)} + {len(features_b)}"
            )
        n = features_a[0].shape[0]
        if any(f.shape[0] != n for f in [*features_a, *features_b]):
            raise ValueError("every layer output of a minibatch must have the same batch size")
        center = u_center if self.estimator == "unbiased" else h_center
        stacked = torch.stack([center(_gram(f)).reshape(-1) for f in [*features_a, *features_b]])
        self.hsic += (stacked @ stacked.T) / _normaliser(n, self.estimator)
        self.samples += n

    def merge(self, other: StreamingCKA) -> None:
        """Add another accumulator's sums (e.g. from another data-parallel rank)."""
        if (other.layers_a, other.layers_b, other.estimator) != (
            self.layers_a,
            self.layers_b,
            self.estimator,
        ):
            raise ValueError("cannot merge CKA accumulators of different shapes or estimators")
        self.hsic += other.hsic
        self.samples += other.samples

    def compute(self) -> np.ndarray:
        """CKA matrix ``[layers_a, layers_b]`` in [0, 1].

        A layer whose representation is constant over the data has zero self-HSIC: it carries no information
        about the inputs, and its CKA with every layer is defined as 0 (never NaN).
        """
        if self.samples == 0:
            raise ValueError("no minibatch was accumulated")
        la = self.layers_a
        cross = self.hsic[:la, la:]
        self_a = self.hsic.diagonal()[:la].clamp(min=0.0)
        self_b = self.hsic.diagonal()[la:].clamp(min=0.0)
        denominator = torch.sqrt(torch.outer(self_a, self_b))
        safe = torch.where(denominator > _EPS, denominator, torch.ones_like(denominator))
        cka = torch.where(denominator > _EPS, cross / safe, torch.zeros_like(cross))
        return cka.clamp(0.0, 1.0).numpy()


def cka_matrix(
    features_a: Sequence[torch.Tensor], features_b: Sequence[torch.Tensor], estimator: Estimator = "biased"
) -> np.ndarray:
    """CKA between every layer pair from a single batch of features (the plain estimator by default)."""
    accumulator = StreamingCKA(len(features_a), len(features_b), estimator)
    accumulator.update(features_a, features_b)
    return accumulator.compute()
