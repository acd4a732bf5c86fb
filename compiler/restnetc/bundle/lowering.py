"""Lowering every rung with every backend, verifying each artifact, and applying the accuracy policy.

Each artifact is run by its own runtime over the validation and test images and compared with the eager
fp32 model on each: top-1 accuracy, top-1 agreement and the largest logit difference. When int8 loses more
than the target's tolerance on validation, the build says so and applies the target's policy (see
``AccuracyPolicy``), deciding on validation only; the test figures only report. Each (rung, backend) pair
goes through lowering, verification and the policy in one worker process, pairs side by side.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends import Backend, DelegationReport, Lowered, TensorQuantization, get_backend
from restnetc.backends.native_output import captured
from restnetc.backends.pt2e import export_batched, observe
from restnetc.bundle.ladder import Rung
from restnetc.bundle.screening import Simulate, screen
from restnetc.cache import Cache, stage_key, toolchain_versions, warn_recompute
from restnetc.config.target import AccuracyPolicy, Quantization
from restnetc.config.target import Backend as BackendName
from restnetc.errors import RestnetcError
from restnetc.progress import console, step
from restnetc.workers import run_all

SCREENING_IMAGES = 500
"""Validation images on which float units are screened in simulation before a candidate is lowered."""
SCREENING_BATCH = 125
MIN_FLOAT_GAIN_POINTS = 0.5
"""Float islands cost bytes (a float head is ~1 MB on EfficientNet-Lite); keep them only for a real gain."""


class BuildError(RestnetcError):
    """A build stopped: a model could not be lowered, or the accuracy policy says fail."""


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
        flags: np.ndarray = np.frombuffer(self.correct.encode("ascii"), dtype=np.uint8) == ord("1")
        return flags


@dataclasses.dataclass(frozen=True)
class Evaluations:
    """An artifact's figures on the validation split (every decision) and the test split (reports only)."""

    validation: Evaluation
    test: Evaluation


@dataclasses.dataclass(frozen=True)
class Verified:
    """A lowered, verified artifact and what the accuracy policy did."""

    lowered: Lowered
    float_modules: tuple[str, ...]
    evaluation: Evaluations
    policy: str


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
class PairJob:
    """One rung to lower with one backend, with the rung's eager fp32 logits on validation and test, and its
    eager top-1 on validation (what the accuracy policy compares the artifact's with)."""

    rung: Rung
    backend: BackendName
    digest: str
    eager_validation: torch.Tensor
    eager_test: torch.Tensor
    eager_accuracy: float

    @property
    def label(self) -> str:
        return f"{self.rung.id} {self.backend.value}"


@dataclasses.dataclass(frozen=True)
class TryFloat:
    """The accuracy policy's verdict on an all-int8 artifact under ``keep-float``: lower a candidate with these
    quantization units kept in float (screening found them worth it), then keep whichever verifies better."""

    units: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PairResult:
    """A pair's verified artifact and what happened on the way, as console lines (rich markup) in order."""

    verified: Verified
    messages: tuple[str, ...]


class _Graphs:
    """One pair's exported program, calibrated observers and int8 graphs by float units, each made once.

    Lowering compiles these very graphs and screening evaluates them: every choice of float units reuses
    the one calibration (observer states are copied; calibration runs the float model, so they are the
    same), and the keep-float candidate that screening picks is compiled from the graph it was scored on.
    """

    def __init__(self, model: nn.Module, backend: Backend, calibration: torch.Tensor) -> None:
        self.model = model
        self.backend = backend
        self.calibration = calibration
        self._exported: torch.export.ExportedProgram | None = None
        self._observed: torch.fx.GraphModule | None = None
        self._int8: dict[tuple[str, ...], tuple[nn.Module, Quantizer]] = {}

    def int8(self, float_units: tuple[str, ...]) -> tuple[nn.Module, Quantizer]:
        """The calibrated int8 graph with ``float_units`` kept in float, and its quantizer."""
        if float_units not in self._int8:
            with captured():
                if self._exported is None:
                    self._exported = export_batched(self.model, self.calibration)
                    self._observed = observe(self._exported, self.backend.int8_quantizer(), self.calibration)
                graph = self.backend.quantize(self._exported, self.calibration, float_units, self._observed)
                self._int8[float_units] = graph
        return self._int8[float_units]


def _to_json(lowered: Lowered) -> dict[str, object]:
    """The cached description of ``lowered`` beside its bytes, field for field from its dataclasses."""

    def quant(q: TensorQuantization | None) -> dict[str, object] | None:
        return None if q is None else dataclasses.asdict(q)

    return {
        "entry_point": lowered.entry_point,
        "delegation": dataclasses.asdict(lowered.delegation),
        "planned_memory": lowered.planned_memory,
        "input": quant(lowered.input_quantization),
        "output": quant(lowered.output_quantization),
    }


def _from_json(data: bytes, meta: dict[str, object]) -> Lowered:
    def quant(value: object) -> TensorQuantization | None:
        return None if value is None else TensorQuantization(**value)  # type: ignore[arg-type]

    return Lowered(
        data,
        DelegationReport(**meta["delegation"]),  # type: ignore[arg-type]
        quant(meta["input"]),
        quant(meta["output"]),
        str(meta["entry_point"]),
        meta.get("planned_memory"),  # type: ignore[arg-type]
    )


def _figures(out: np.ndarray, labels: torch.Tensor, eager: torch.Tensor) -> Evaluation:
    predicted = out.argmax(axis=1)
    correct = predicted == labels.numpy()
    return Evaluation(
        accuracy=round(float(correct.mean() * 100), 3),
        agreement=round(float((predicted == eager.argmax(1).numpy()).mean() * 100), 3),
        max_logit_diff=round(float(np.abs(out - eager.numpy()).max()), 5),
        correct="".join("1" if c else "0" for c in correct),
    )


def _evaluations(stored: dict[str, dict[str, object]]) -> Evaluations:
    return Evaluations(Evaluation(**stored["validation"]), Evaluation(**stored["test"]))  # type: ignore[arg-type]


class Lowerer:
    """Lowers and verifies rungs for one target, caching artifacts and their figures."""

    def __init__(
        self,
        quantization: Quantization,
        calibration: torch.Tensor,
        validation: HeldOut,
        test: HeldOut,
        policy: AccuracyPolicy,
        threads: int,
        cache: Cache,
        work_dir: Path,
        workers: int | None = None,
    ) -> None:
        self.quantization = quantization
        self.calibration = calibration
        self.calibration_digest = hashlib.sha256(calibration.numpy().tobytes()).hexdigest()
        self.validation = validation
        self.test = test
        self.policy = policy
        self.threads = threads
        self.cache = cache
        self.work_dir = work_dir
        self.tools = toolchain_versions()
        self.workers = workers or os.cpu_count() or 1

    def _single_threaded(self) -> Lowerer:
        """A copy for a worker process: it has one core, so its runtimes verify with one thread."""
        worker = copy.copy(self)
        worker.threads = 1
        return worker

    def _artifact_key(self, job: PairJob, float_modules: tuple[str, ...]) -> str:
        example_shape = (1, *self.calibration.shape[1:])
        inputs = (job.digest, self.calibration_digest, example_shape, self.tools)
        return stage_key("artifact", job.backend.value, self.quantization.value, float_modules, *inputs)

    def _result_key(self, job: PairJob) -> str:
        policy = self.policy.model_dump(mode="json")
        held_out = (self.validation.digest, self.test.digest)
        return stage_key("verified", self._artifact_key(job, ()), *held_out, policy)

    def _verify_key(self, sha256: str) -> str:
        """The key of the figures verified for the artifact whose bytes have ``sha256``."""
        return stage_key("verify", sha256, self.validation.digest, self.test.digest)

    def _load_result(self, job: PairJob) -> Verified | None:
        """``job``'s stored outcome, only if the stored artifact is the very bytes that were verified.

        The outcome names its artifact's entry and sha256; the figures come from the record keyed by that
        sha256, so they can never be applied to other bytes.
        """
        key = self._result_key(job)
        stored = self.cache.load_json(key)
        if stored is None:
            return None
        data, meta = self.cache.load_bytes(stored["artifact"]), self.cache.load_json(stored["artifact"])
        if data is None or meta is None:
            return None
        if hashlib.sha256(data).hexdigest() != stored["sha256"]:
            warn_recompute(key, "its artifact's bytes are not the ones verified")
            return None
        evaluation = self.cache.load_json(self._verify_key(stored["sha256"]))
        if evaluation is None:
            return None
        floats = tuple(stored["float_modules"])
        return Verified(_from_json(data, meta), floats, _evaluations(evaluation), stored["policy"])

    def _save_result(self, job: PairJob, verified: Verified) -> None:
        stored = {
            "artifact": self._artifact_key(job, verified.float_modules),
            "sha256": hashlib.sha256(verified.lowered.data).hexdigest(),
            "float_modules": list(verified.float_modules),
            "policy": verified.policy,
        }
        self.cache.save_json(self._result_key(job), stored)

    def _lower(self, job: PairJob, graphs: _Graphs, float_modules: tuple[str, ...], log: list[str]) -> Lowered:
        """``job``'s rung lowered with ``float_modules`` kept in float, from the cache or the toolchain."""
        key = self._artifact_key(job, float_modules)
        data, meta = self.cache.load_bytes(key), self.cache.load_json(key)
        if data is not None and meta is not None:
            return _from_json(data, meta)
        label = f"{job.label} {self.quantization.value}"
        if float_modules:
            label += f" (float: {', '.join(float_modules)})"
        backend, example = graphs.backend, self.calibration[:1]
        with captured() as output:
            try:
                if self.quantization is Quantization.INT8:
                    graph, quantizer = graphs.int8(float_modules)
                    lowered = backend.compile(graph, example, quantizer)
                else:
                    lowered = backend.lower(job.rung.model, example, self.quantization, self.calibration)
            except Exception as exc:  # any toolchain failure: keep the toolchain's words
                raise BuildError(f"{label}: lowering failed: {type(exc).__name__}: {exc}\n{output.tail()}") from None
        self.cache.save_bytes(key, lowered.data)
        self.cache.save_json(key, _to_json(lowered))
        d = lowered.delegation
        log.append(
            f"[bold cyan]>[/] lowered {label}: {len(lowered.data) / 1e6:.2f} MB, "
            f"{d.delegated_ops} ops delegated, {d.fallback_count} fell back"
        )
        return lowered

    def _evaluate(self, lowered: Lowered, backend: Backend, job: PairJob, label: str) -> Evaluations:
        sha = hashlib.sha256(lowered.data).hexdigest()
        key = self._verify_key(sha)
        if (stored := self.cache.load_json(key)) is not None:
            return _evaluations(stored)
        path = self.work_dir / f"verify-{sha[:16]}{backend.suffix}"
        path.write_bytes(lowered.data)
        images = torch.cat([self.validation.images, self.test.images]).numpy()
        with captured() as output:
            try:
                out = backend.load(path, self.threads)(images)
            except Exception as exc:  # the runtime refused what the toolchain produced: keep its words
                raise BuildError(
                    f"{label}: the lowered program does not run in its runtime: {type(exc).__name__}: {exc}\n"
                    f"{output.tail()}"
                ) from None
            finally:
                path.unlink()
        count = len(self.validation.labels)
        evaluations = Evaluations(
            _figures(out[:count], self.validation.labels, job.eager_validation),
            _figures(out[count:], self.test.labels, job.eager_test),
        )
        self.cache.save_json(key, {"validation": evaluations.validation.__dict__, "test": evaluations.test.__dict__})
        return evaluations

    def _simulator(self, job: PairJob, graphs: _Graphs) -> Simulate:
        """Simulated int8 top-1 of the job's rung (its int8 graphs run in eager) on the screening images, cached."""
        images, labels = self.validation.images[:SCREENING_IMAGES], self.validation.labels[:SCREENING_IMAGES]

        def simulate(units: tuple[str, ...]) -> float:
            inputs = (self.calibration_digest, self.validation.digest)
            key = stage_key("simulated-int8", graphs.backend.name, units, job.digest, *inputs)
            if (stored := self.cache.load_json(key)) is not None:
                return float(stored)
            graph, _ = graphs.int8(units)
            with torch.no_grad():  # a converted graph refuses .eval(); it has no train-time behaviour anyway
                logits = torch.cat([graph(chunk) for chunk in images.split(SCREENING_BATCH)])
            value = round(float((logits.argmax(1) == labels).double().mean() * 100), 3)
            self.cache.save_json(key, value)
            return value

        return simulate

    def build_all(
        self,
        rungs: list[Rung],
        backends: list[Backend],
        eager: dict[str, tuple[torch.Tensor, torch.Tensor]],
    ) -> dict[tuple[str, str], Verified]:
        """Lower and verify every rung with every backend, applying the accuracy policy where int8 loses too much.

        ``eager`` holds each rung's fp32 logits on validation and on test, by id. Pairs not in the cache run
        in worker processes, one per core.
        """
        verified: dict[tuple[str, str], Verified] = {}
        pending: list[PairJob] = []
        for backend in backends:
            for rung in rungs:
                name = BackendName(backend.name)
                validation, test = eager[rung.id]
                top1 = float((validation.argmax(1) == self.validation.labels).double().mean() * 100)
                job = PairJob(rung, name, rung.digest, validation, test, top1)
                if (stored := self._load_result(job)) is None:
                    pending.append(job)
                else:
                    verified[(rung.id, backend.name)] = stored
                    step(f"{job.label}: verified artifact from the cache ({stored.policy})")
        pending.sort(key=lambda job: -job.rung.params)  # the longest first, so no core idles at the end
        count = min(len(pending), self.workers)
        state = self if count <= 1 else self._single_threaded()
        with console.status(f"lowering and verifying {len(pending)} artifacts in {count} processes"):
            for index, result in run_all(Lowerer.build_pair, state, pending, count):
                for message in result.messages:
                    console.print(message, highlight=False)
                self._save_result(pending[index], result.verified)
                verified[(pending[index].rung.id, pending[index].backend.value)] = result.verified
        return verified

    def build_pair(self, job: PairJob) -> PairResult:
        """Lower ``job``, verify the artifact and apply the accuracy policy (lowering a keep-float candidate)."""
        backend = get_backend(job.backend)
        backend.check_supported(self.quantization)
        graphs = _Graphs(job.rung.model, backend, self.calibration)
        log: list[str] = []
        plain = self._lower(job, graphs, (), log)
        first = Verified(plain, (), self._evaluate(plain, backend, job, job.label), "")
        outcome = self._judge(job, graphs, first, log)
        if isinstance(outcome, TryFloat):
            units = outcome.units
            candidate = self._lower(job, graphs, units, log)
            result = self._evaluate(candidate, backend, job, f"{job.label} keep-float")
            top1 = result.validation.accuracy
            log.append(f"[bold cyan]>[/] {job.label} keep-float {', '.join(units)}: validation top-1 {top1:.2f}%")
            better = top1 >= first.evaluation.validation.accuracy + MIN_FLOAT_GAIN_POINTS
            outcome = self._kept(job, first, Verified(candidate, units, result, "") if better else first, log)
        return PairResult(outcome, tuple(log))

    def _judge(self, job: PairJob, graphs: _Graphs, first: Verified, log: list[str]) -> Verified | TryFloat:
        """The final result for ``first``, or the float units worth lowering as a keep-float candidate."""
        drop = job.eager_accuracy - first.evaluation.validation.accuracy
        tolerance = self.policy.tolerance_points
        if self.quantization is Quantization.FP32 or drop <= tolerance:
            return Verified(first.lowered, (), first.evaluation, "none: within tolerance")
        headline = (
            f"{job.label} {self.quantization.value}: validation top-1 {first.evaluation.validation.accuracy:.2f}% "
            f"is {drop:.2f} points below eager fp32 {job.eager_accuracy:.2f}% (tolerance {tolerance})"
        )
        log.append(f"[bold yellow]ACCURACY WARNING[/] {headline}")
        if self.policy.policy == "fail":
            raise BuildError(f"{headline}; the target's accuracy policy is 'fail'")
        if self.policy.policy == "warn":
            return Verified(first.lowered, (), first.evaluation, f"warn: kept with a {drop:.2f}-point drop")
        screening = screen(job.rung.model, self.calibration[:1], self._simulator(job, graphs), drop - tolerance)
        tried = ", ".join(f"{'+'.join(units) or 'all int8'} {top1:.2f}%" for units, top1 in screening.tried.items())
        log.append(f"[bold cyan]>[/] {job.label}: simulated top-1 with float units: {tried}")
        return TryFloat(screening.float_units) if screening.float_units else self._kept(job, first, first, log)

    def _kept(self, job: PairJob, first: Verified, best: Verified, log: list[str]) -> Verified:
        """``best`` with the keep-float policy's note; warns loudly if it is still beyond tolerance."""
        drop = job.eager_accuracy - first.evaluation.validation.accuracy
        top1 = best.evaluation.validation.accuracy
        recovered = job.eager_accuracy - top1 <= self.policy.tolerance_points
        kept = ", ".join(best.float_modules) or "nothing"
        note = f"keep-float: int8 lost {drop:.2f} points on validation; kept {kept} in float -> {top1:.2f}%" + (
            "" if recovered else " (still beyond tolerance)"
        )
        if not recovered:
            log.append(f"[bold yellow]ACCURACY WARNING[/] {job.label}: {note}")
        return Verified(best.lowered, best.float_modules, best.evaluation, note)
