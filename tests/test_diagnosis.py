"""``bundle.diagnosis`` finds the unit where int8 loses, with every registered backend's quantizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restnetc.backends import get_backend, list_backends
from restnetc.bundle.diagnosis import diagnose


class _Outlier(nn.Module):
    """Two 1x1 convolutions whose middle activation has one channel at a constant 1000 (undone by the second):
    per-tensor int8 between them leaves the other channels, which carry the signal, a few levels. Bias
    correction restores their mean, not their signal; kept in float, the error goes."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.outer = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)
        with torch.no_grad():
            self.inner.weight[0] = 0
            self.inner.bias[0] = 1000  # stays positive through the ReLU
            self.outer.weight[:, 0] /= 1000
            self.outer.weight[:, 1:] *= 100

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.outer(torch.relu(self.inner(x))))


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()), _Outlier(), nn.Sequential(nn.Conv2d(8, 8, 1))]
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


@pytest.mark.parametrize("name", list_backends())
def test_the_unit_with_an_outlier_channel_recovers_the_most_when_kept_in_float(name: str) -> None:
    torch.manual_seed(0)
    model = _Model().eval()
    images = torch.rand(96, 3, 8, 8) * torch.rand(96, 3, 1, 1) * 4  # images differ beyond their pixels' noise
    with torch.no_grad():
        labels = model(images).argmax(1)
    diagnosis = diagnose(model, get_backend(name), images[:64], images[64:], labels[64:])
    assert [s.float_units for s in diagnosis.units] == [
        ("stem",),
        ("blocks.0",),
        ("blocks.1",),
        ("blocks.2",),
        ("head",),
    ]
    assert diagnosis.eager_top1 == 100 and diagnosis.images == 32
    best = diagnosis.ranked()[0]
    assert best.float_units == ("blocks.1",), [(s.float_units, s.sqnr_db) for s in diagnosis.ranked()]
    assert best.sqnr_db > diagnosis.all_int8.sqnr_db + 10 and best.params == 2 * (8 * 8 + 8), (best, diagnosis.all_int8)
