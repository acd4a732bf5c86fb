"""Verifying a lowered artifact: run it in its own runtime over the validation and test images and compare it
with the eager fp32 model on each split (top-1, top-1 agreement, largest logit difference).

Figures are cached by the sha256 of the artifact's bytes, so they can only ever describe those bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from restnetc.backends import Backend, Lowered
from restnetc.backends.native_output import captured
from restnetc.cache import Cache, stage_key
from restnetc.errors import RestnetcError
from restnetc.evaluation.correctness import correctness_flags, correctness_text


class BuildError(RestnetcError):
    """A build stopped: a model could not be lowered or run, or the accuracy policy says fail."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """An artifact's figures on one split; ``correct`` holds ``0``/``1`` per image, in the split's order."""

    accuracy: float
    agreement: float
    max_logit_diff: float
    correct: str

    @property
    def correct_array(self) -> np.ndarray:
        """``correct`` as a bool array (for paired tests)."""
        return correctness_flags(self.correct)


@dataclasses.dataclass(frozen=True)
class Evaluations:
    """An artifact's figures on the validation split (every decision) and the test split (reports only)."""

    validation: Evaluation
    test: Evaluation

    @staticmethod
    def from_json(stored: dict[str, dict[str, object]]) -> Evaluations:
        return Evaluations(Evaluation(**stored["validation"]), Evaluation(**stored["test"]))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Verified:
    """A lowered, verified artifact, the quantization units it keeps in float, and the accuracy policy's note;
    ``all_int8``: when it keeps some, the figures of the all-int8 artifact it replaced (None otherwise)."""

    lowered: Lowered
    float_modules: tuple[str, ...]
    evaluation: Evaluations
    policy: str
    all_int8: Evaluations | None = None


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """A held-out split's images with labels, and a digest that identifies them."""

    images: torch.Tensor
    labels: torch.Tensor
    digest: str

    @staticmethod
    def of(images: torch.Tensor, labels: torch.Tensor) -> HeldOut:
        digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
        return HeldOut(images, labels, digest)


@dataclasses.dataclass(frozen=True)
class EagerLogits:
    """The eager fp32 model's logits on the validation and test images (what an artifact is compared with)."""

    validation: torch.Tensor
    test: torch.Tensor


def _figures(out: np.ndarray, labels: torch.Tensor, eager: torch.Tensor) -> Evaluation:
    predicted = out.argmax(axis=1)
    correct = predicted == labels.numpy()
    return Evaluation(
        accuracy=round(float(correct.mean() * 100), 3),
        agreement=round(float((predicted == eager.argmax(1).numpy()).mean() * 100), 3),
        max_logit_diff=round(float(np.abs(out - eager.numpy()).max()), 5),
        correct=correctness_text(correct),
    )


@contextmanager
def _directory(work_dir: Path | None) -> Iterator[Path]:
    """``work_dir``, or a temporary directory on this machine for the duration."""
    if work_dir is not None:
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="restnetc-verify-") as temporary:
        yield Path(temporary)


@dataclasses.dataclass(frozen=True)
class Verifier:
    """Runs artifacts in their runtimes on ``validation`` and ``test`` with ``threads`` threads, writing each
    artifact to ``work_dir`` (None: a temporary directory of the machine that runs it) only while it runs;
    figures are cached in ``cache``."""

    validation: HeldOut
    test: HeldOut
    threads: int
    cache: Cache
    work_dir: Path | None

    def key(self, sha256: str, entry_point: str | None = None) -> str:
        """The cache key of the figures verified for entry point ``entry_point`` (default: the artifact's one)
        of the artifact whose bytes have ``sha256``."""
        return stage_key("verify", sha256, self.validation.digest, self.test.digest, *filter(None, [entry_point]))

    def stored(self, sha256: str, entry_point: str | None = None) -> Evaluations | None:
        """The figures verified earlier for the bytes with ``sha256`` (and ``entry_point``), if any."""
        stored = self.cache.load_json(self.key(sha256, entry_point))
        return None if stored is None else Evaluations.from_json(stored)

    def record(self, sha256: str, entry_point: str | None, evaluations: Evaluations) -> None:
        """Store ``evaluations`` as the figures of the bytes with ``sha256`` (and ``entry_point``)."""
        self.cache.save_json(self.key(sha256, entry_point), dataclasses.asdict(evaluations))

    def evaluate(
        self, data: bytes, backend: Backend, eager: EagerLogits, label: str, entry_point: str | None = None
    ) -> Evaluations:
        """The figures on both splits of the artifact ``data`` (its entry point ``entry_point``, default as the
        backend's ``load``); BuildError (with the runtime's words) if its runtime refuses it."""
        sha = hashlib.sha256(data).hexdigest()
        if (stored := self.stored(sha, entry_point)) is not None:
            return stored
        images = torch.cat([self.validation.images, self.test.images]).numpy()
        with _directory(self.work_dir) as directory, captured() as output:
            path = directory / f"verify-{sha[:16]}{backend.suffix}"
            path.write_bytes(data)
            try:
                out = backend.load(path, self.threads, entry_point)(images)
            except Exception as exc:  # the runtime refused what the toolchain produced: keep its words
                raise BuildError(
                    f"{label}: the lowered program does not run in its runtime: {type(exc).__name__}: {exc}\n"
                    f"{output.tail()}"
                ) from None
            finally:
                path.unlink()
        count = len(self.validation.labels)
        evaluations = Evaluations(
            _figures(out[:count], self.validation.labels, eager.validation),
            _figures(out[count:], self.test.labels, eager.test),
        )
        self.record(sha, entry_point, evaluations)
        return evaluations
