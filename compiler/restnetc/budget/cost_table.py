"""A per-part cost table for one target: predicts any stitched variant's latency and memory from its parts.

A stitched variant runs the front's stem and blocks ``0..i``, a stitching layer, then the back's blocks
``j+1..`` and head. Each part of both parents is lowered on its own with the target's backend and timed
(``restnetc.budget.profiling``), once per target; a variant's latency is predicted as the sum of its parts'
times. Every part was timed as its own program, so each time carries one program invocation; that overhead,
timed on a one-op program, is counted once per variant instead of once per part. A stitching layer (a
resample and a 1x1 channel map) is predicted from its multiply-accumulates at the parts' median time per MAC.
Both parents are also lowered and timed whole: the mean gap between a whole parent and the sum of its parts
(what splitting a graph cannot see: fusion across parts, cache effects) is added to every prediction.
On small parts the times are mostly noise around the invocation overhead: a part never counts for less than
nothing (its time beyond the overhead is clipped at zero), and no program is predicted faster than the one-op
program.

Peak memory to load and run an artifact is predicted as ``base + slope * artifact bytes``, fitted by least
squares to the memory probes of the whole parents and of the one-op program (the runtime's fixed cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from restnetc.atomic import write_text_atomic
from restnetc.budget.costs import ZERO, Cost
from restnetc.config.base import StrictModel, VersionedConfig
from restnetc.config.loader import load_config
from restnetc.config.paths import FileName, RelativePath
from restnetc.config.target import Backend, Quantization
from restnetc.errors import ConfigError

COST_TABLE_NAME = "cost_table.json"
"""The cost table's file name inside a bundle."""


class PartFigures(StrictModel):
    """One part lowered alone: median time of one inference, artifact size, peak memory, MACs."""

    ms: float = Field(ge=0)
    bytes: int = Field(ge=0)
    peak_bytes: int = Field(ge=0, description="peak memory to load and run it once, in a fresh process")
    macs: int = Field(ge=0)
    input_shape: tuple[int, ...] = Field(description="the program's input, batch of one")
    file: RelativePath = Field(description="the part's artifact name, as pushed by `restnetc bench plan`")


class ModelParts(StrictModel):
    """A parent's parts in forward order, and the parent lowered whole."""

    stem: PartFigures
    blocks: list[PartFigures] = Field(min_length=1)
    head: PartFigures
    whole: PartFigures

    def all(self) -> list[PartFigures]:
        """The parts in forward order (not the whole)."""
        return [self.stem, *self.blocks, self.head]

    def with_times(self, ms: dict[str, float]) -> ModelParts:
        """A copy with the time of every part (and the whole) whose file is in ``ms`` replaced."""
        parts = [p.model_copy(update={"ms": ms[p.file]}) if p.file in ms else p for p in [*self.all(), self.whole]]
        return ModelParts(stem=parts[0], blocks=parts[1:-2], head=parts[-2], whole=parts[-1])


@dataclass(frozen=True)
class Prediction:
    """A model's latency and peak memory as the cost table predicts them: the one cost model that stitch
    selection and the manifest's budget check both read."""

    latency_ms: float
    memory_bytes: float


class CostTable(VersionedConfig):
    """Per-part latency and sizes of both parents on one target, with where the times come from."""

    target: FileName
    backend: Backend
    quantization: Quantization
    threads: int = Field(ge=1)
    input_size: int = Field(ge=1)
    source: Literal["host", "device"]
    machine: str = Field(description="the CPU the times were taken on")
    overhead: PartFigures = Field(description="a one-op program: the cost of one invocation")
    models: dict[str, ModelParts]
    profiling_seconds: float = Field(ge=0, description="wall time spent lowering, probing and timing the parts")

    def files(self) -> list[str]:
        """Every part's and whole parent's artifact name, the one-op program last."""
        return [*(p.file for m in self.models.values() for p in [*m.all(), m.whole]), self.overhead.file]

    def with_times(self, ms: dict[str, float]) -> CostTable:
        """A copy with the time of every program whose file is in ``ms`` replaced."""
        overhead = self.overhead.model_copy(update={"ms": ms.get(self.overhead.file, self.overhead.ms)})
        models = {name: parts.with_times(ms) for name, parts in self.models.items()}
        return self.model_copy(update={"overhead": overhead, "models": models})

    def _parts(self, model: str) -> ModelParts:
        if model not in self.models:
            known = ", ".join(sorted(self.models))
            raise ConfigError(f"cost table for {self.target}: no parts of {model!r} (it has: {known})")
        return self.models[model]

    def _chain(self, front: str, i: int, back: str, j: int) -> list[PartFigures]:
        f, b = self._parts(front), self._parts(back)
        return [f.stem, *f.blocks[: i + 1], *b.blocks[j + 1 :], b.head]

    def _compute_ms(self, part: PartFigures) -> float:
        """A part's time beyond one invocation, clipped at zero (a noisy small part costs nothing, never less)."""
        return max(part.ms - self.overhead.ms, 0.0)

    @property
    def ms_per_mac(self) -> float:
        """Median over the parts of their time per MAC, invocation overhead excluded."""
        rates = sorted(self._compute_ms(p) / p.macs for m in self.models.values() for p in m.all() if p.macs)
        return rates[len(rates) // 2] if rates else 0.0

    def _sum_ms(self, parts: list[PartFigures], stitch_macs: int) -> float:
        return sum(self._compute_ms(p) for p in parts) + stitch_macs * self.ms_per_mac + self.overhead.ms

    @property
    def whole_offset_ms(self) -> float:
        """Mean over the parents of (whole parent's time - its parts' predicted sum: their clipped times beyond
        one invocation, plus one invocation)."""
        gaps = [m.whole.ms - self._sum_ms(m.all(), 0) for m in self.models.values()]
        return sum(gaps) / len(gaps)

    def latency_ms(self, front: str, i: int, back: str, j: int, stitch_macs: int) -> float:
        """Predicted latency of the variant stitched after ``front`` block ``i`` into ``back`` after block ``j``;
        never below the one-op program's."""
        predicted = self._sum_ms(self._chain(front, i, back, j), stitch_macs) + self.whole_offset_ms
        return max(predicted, self.overhead.ms)

    def chain_macs(self, front: str, i: int, back: str, j: int) -> int:
        """MACs of the parents' parts in the variant (its total minus this is the stitching layer's)."""
        return sum(p.macs for p in self._chain(front, i, back, j))

    def model_latency_ms(self, model: str) -> float:
        """Predicted latency of a whole parent."""
        parts = self._parts(model)
        return self.latency_ms(model, len(parts.blocks) - 1, model, len(parts.blocks) - 1, 0)

    def artifact_bytes(self, front: str, i: int, back: str, j: int, stitch_params: int) -> int:
        """Predicted artifact size: the parts' sizes plus one byte per stitching parameter."""
        return sum(p.bytes for p in self._chain(front, i, back, j)) + stitch_params

    def predict(self, front: str, i: int, back: str, j: int, stitch: Cost) -> Prediction:
        """The variant stitched after ``front`` block ``i`` into ``back`` after block ``j`` by a stitching layer
        of cost ``stitch``: its latency, and the peak memory of its predicted artifact."""
        artifact = self.artifact_bytes(front, i, back, j, stitch.params)
        return Prediction(self.latency_ms(front, i, back, j, stitch.macs), self.memory_bytes(artifact))

    def predict_model(self, model: str) -> Prediction:
        """A whole parent, predicted exactly as a variant is (its own chain, no stitching layer)."""
        last = len(self._parts(model).blocks) - 1
        return self.predict(model, last, model, last, ZERO)

    @property
    def memory_fit(self) -> tuple[float, float]:
        """``(base, slope)``: least squares of peak memory on artifact bytes over the wholes and the one-op program."""
        points = [self.overhead, *(m.whole for m in self.models.values())]
        slope, base = np.polyfit([p.bytes for p in points], [p.peak_bytes for p in points], 1)
        return float(base), float(slope)

    def memory_bytes(self, artifact_bytes: int) -> float:
        """Predicted peak memory to load and run an artifact of ``artifact_bytes``."""
        base, slope = self.memory_fit
        return base + slope * artifact_bytes


def parts_dir(table_path: Path) -> Path:
    """Where the part artifacts of the table at ``table_path`` live: ``NAME.parts/`` beside ``NAME.json``."""
    return table_path.with_suffix(".parts")


def save_table(table: CostTable, path: Path) -> None:
    """Write ``table`` as JSON (the format ``load_table`` and ``restnetc bench ingest --table`` read), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, table.model_dump_json(indent=2) + "\n")


def load_table(path: Path) -> CostTable:
    """Read a cost table (JSON); ConfigError naming the file and the field on any problem."""
    return load_config(path, CostTable)
