"""Streaming CKA against textbook formulas and CKA's defining invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnetc.frontend.cka import StreamingCKA, cka_matrix


def textbook_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019, eq. for linear CKA: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), centred."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def song_unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. 2012, unbiased HSIC written out term by term."""
    n = k.shape[0]
    k = k.copy()
    l_ = l_.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l_, 0)
    one = np.ones(n)
    trace = np.trace(k @ l_)
    middle = (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
    last = 2 / (n - 2) * (one @ k @ l_ @ one)
    return float((trace + middle - last) / (n * (n - 3)))


def features(seed: int, n: int = 24, dims: tuple[int, ...] = (5, 3, 2)) -> torch.Tensor:
    return torch.randn(n, *dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_biased_single_batch_matches_textbook() -> None:
    x, y = features(0), features(1, dims=(7,))
    y = y + 0.5 * x.reshape(24, -1)[:, :7]
    got = cka_matrix([x], [y], "biased")[0, 0]
    want = textbook_linear_cka(x.reshape(24, -1).numpy(), y.numpy())
    assert got == pytest.approx(want, abs=1e-10)


def test_streaming_unbiased_matches_song_estimator_summed_over_batches() -> None:
    acc = StreamingCKA(1, 1, "unbiased")
    xy, xx, yy = 0.0, 0.0, 0.0
    for seed in range(3):
        x = features(seed).reshape(24, -1)
        y = x[:, :6] @ torch.randn(6, 4, dtype=torch.float64) + 0.3 * features(seed + 10, dims=(4,))
        acc.update([x], [y])
        k, l_ = (x @ x.T).numpy(), (y @ y.T).numpy()
        xy += song_unbiased_hsic(k, l_)
        xx += song_unbiased_hsic(k, k)
        yy += song_unbiased_hsic(l_, l_)
    assert acc.compute()[0, 0] == pytest.approx(xy / np.sqrt(xx * yy), abs=1e-10)
    assert acc.samples == 72


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_self_similarity_is_one_and_matrix_is_symmetric(estimator: str) -> None:
    a = [features(0), features(1, dims=(9,))]
    cka = cka_matrix(a, a, estimator)  # type: ignore[arg-type]
    assert np.allclose(np.diag(cka), 1.0)
    assert np.allclose(cka, cka.T)
    swapped = cka_matrix([a[1]], [a[0]], estimator)  # type: ignore[arg-type]
    assert swapped[0, 0] == pytest.approx(cka[0, 1], abs=1e-12)


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_invariant_to_orthogonal_transform_and_isotropic_scaling(estimator: str) -> None:
    x = features(3, dims=(8,))
    y = x @ torch.randn(8, 8, dtype=torch.float64) + features(4, dims=(8,))
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    base = cka_matrix([x], [y], estimator)[0, 0]  # type: ignore[arg-type]
    assert cka_matrix([x @ q * 7.5], [y], estimator)[0, 0] == pytest.approx(base, abs=1e-10)  # type: ignore[arg-type]
    assert 0.0 < base < 1.0


def test_unbiased_rejects_tiny_minibatches() -> None:
    acc = StreamingCKA(1, 1, "unbiased")
    with pytest.raises(ValueError, match="at least 4 samples, got 3"):
        acc.update([features(0, n=3)], [features(1, n=3)])


def test_constant_features_give_zero_not_nan() -> None:
    constant = torch.ones(16, 4, dtype=torch.float64)
    for estimator in ("unbiased", "biased"):
        cka = cka_matrix([constant, features(0, n=16)], [constant], estimator)  # type: ignore[arg-type]
        assert not np.isnan(cka).any()
        assert (cka == 0.0).all()


def test_merge_equals_single_accumulator() -> None:
    batches = [(features(s), features(s + 5, dims=(3,))) for s in range(4)]
    whole, left, right = (StreamingCKA(1, 1) for _ in range(3))
    for i, (x, y) in enumerate(batches):
        whole.update([x], [y])
        (left if i % 2 else right).update([x], [y])
    left.merge(right)
    assert np.allclose(left.compute(), whole.compute())
