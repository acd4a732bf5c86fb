"""Verifying a lowered artifact: run it in its own runtime over the validation and test images, check that it
computes what it was compiled from (``Reference``), and compare it with the eager fp32 model on each split (top-1,
top-1 agreement, largest logit difference).

Figures are cached by the sha256 of the artifact's bytes, so they can only ever describe those bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from restnetc.backends import Backend, Lowered
from restnetc.cache import Cache, stage_key
from restnetc.errors import RestnetcError
from restnetc.evaluation.correctness import correctness_flags, correctness_text
from restnetc.native_output import captured


class BuildError(RestnetcError):
    """A build stopped: a model could not be lowered or run, a lowered program does not compute what it was
    compiled from, or the accuracy policy says fail."""


REFERENCE_MIN_COSINE = 0.99
"""How closely an artifact must compute its ``Reference``: the mean, over the reference images, of the cosine
between its logits and the reference's, image by image. Measured on 500 validation images: sound int8 artifacts
against their PT2E simulation 0.9975-0.99995 (the DeiT-S -> DeiT-Ti ladder's stitches and parents, the demo's
rungs); ExecuTorch DeiT stitches whose shared bias XNNPACK stored scaled for one of its two readers (before
``executorch._own_biases``) 0.935-0.984, top-1 agreeing with the simulation on 86-92% of the images."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """What an artifact must compute on the validation split's first ``len(logits)`` images: the logits of the
    graph it was compiled from, run in eager PyTorch; ``source`` names that graph in words (an int8 artifact's
    PT2E simulation, a float artifact's eager model)."""

    logits: torch.Tensor
    source: str

    def cosines(self, out: np.ndarray) -> np.ndarray:
        """The cosine between ``out``'s logits and these, image by image."""
        expected = self.logits.numpy()
        norms = np.linalg.norm(out, axis=1) * np.linalg.norm(expected, axis=1)
        return (out * expected).sum(1) / norms  # type: ignore[no-any-return]

    def cosine(self, out: np.ndarray) -> float:
        """The mean over the reference images of ``cosines``: what ``check`` bounds."""
        return float(self.cosines(out).mean())

    def agreement(self, out: np.ndarray) -> float:
        """The % of the reference images on which ``out`` and these logits agree on top-1."""
        return float((out.argmax(1) == self.logits.numpy().argmax(1)).mean() * 100)

    def check(self, out: np.ndarray, label: str) -> None:
        """BuildError unless ``out``, the artifact ``label``'s logits on the reference images, computes these
        logits to ``REFERENCE_MIN_COSINE``: a program the toolchain got wrong must not ship as int8's loss."""
        if (cosine := self.cosine(out)) >= REFERENCE_MIN_COSINE:
            return
        agreement = self.agreement(out)
        raise BuildError(
            f"{label}: the lowered program does not compute what it was compiled from: on the first {len(out)} "
            f"validation images its logits and its {self.source}'s have a mean cosine of {cosine:.4f} (at least "
            f"{REFERENCE_MIN_COSINE} expected) and agree on top-1 for {agreement:.1f}% of them. The toolchain "
            "mis-lowered it; it was not shipped."
        )


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
        self,
        data: bytes,
        backend: Backend,
        eager: EagerLogits,
        label: str,
        entry_point: str | None = None,
        reference: Callable[[], Reference] | None = None,
    ) -> Evaluations:
        """The figures on both splits of the artifact ``data`` (its entry point ``entry_point``, default as
        ``Runtime.load``); BuildError (with the runtime's words) if its runtime refuses it, or if it does not
        compute what ``reference()`` gives (``Reference.check``; made only when the bytes run, not when their
        figures are stored). With a reference, figures are stored only once the bytes passed the check (a ladder
        program's entry points have none: packing compares their figures with their rungs' own artifacts')."""
        sha = hashlib.sha256(data).hexdigest()
        if (stored := self.stored(sha, entry_point)) is not None:
            return stored
        images = torch.cat([self.validation.images, self.test.images]).numpy()
        with _directory(self.work_dir) as directory, captured() as output:
            path = directory / f"verify-{sha[:16]}{backend.suffix}"
            path.write_bytes(data)
            try:
                out = backend.runtime.load(path, self.threads, entry_point)(images)
            except Exception as exc:  # the runtime refused what the toolchain produced: keep its words
                raise BuildError(
                    f"{label}: the lowered program does not run in its runtime: {type(exc).__name__}: {exc}\n"
                    f"{output.tail()}"
                ) from None
            finally:
                path.unlink()
        if reference is not None:
            expected = reference()
            expected.check(out[: len(expected.logits)], label)
        count = len(self.validation.labels)
        evaluations = Evaluations(
            _figures(out[:count], self.validation.labels, eager.validation),
            _figures(out[count:], self.test.labels, eager.test),
        )
        self.record(sha, entry_point, evaluations)
        return evaluations
