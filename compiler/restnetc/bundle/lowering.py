"""Lowering every rung with every backend, verifying each artifact, and applying the accuracy policy.

Each artifact is run by its own runtime over the held-out images and compared with the eager fp32 model:
top-1 accuracy, top-1 agreement and the largest logit difference. When int8 loses more than the target's
tolerance, the build says so and applies the target's policy (see ``AccuracyPolicy``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from restnetc.backends import Backend, DelegationReport, Lowered, TensorQuantization
from restnetc.backends.native_output import captured
from restnetc.backends.pt2e import export_batched, quantize_pt2e
from restnetc.bundle.ladder import Rung, weights_digest
from restnetc.bundle.lowering_pool import LoweringJob, lower_all
from restnetc.bundle.screening import Simulate, screen
from restnetc.cache import Cache, stage_key
from restnetc.config.target import AccuracyPolicy, Quantization
from restnetc.config.target import Backend as BackendName
from restnetc.errors import RestnetcError
from restnetc.progress import console, step

SCREENING_IMAGES = 500
"""Held-out images on which float units are screened in simulation before a candidate is lowered."""
SCREENING_BATCH = 125
MIN_FLOAT_GAIN_POINTS = 0.5
"""Float islands cost bytes (a float head is ~1 MB on EfficientNet-Lite); keep them only for a real gain."""
TOOLS = ("restnetc", "torch", "executorch", "litert-torch", "ai-edge-litert", "torchao", "timm")


class BuildError(RestnetcError):
    """A build stopped: a model could not be lowered, or the accuracy policy says fail."""


def toolchain_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an artifact (part of every artifact's cache key)."""
    return {name: importlib.metadata.version(name) for name in TOOLS}


@dataclass(frozen=True)
class Evaluation:
    """An artifact's figures on the held-out images."""

    accuracy: float
    agreement: float
    max_logit_diff: float


@dataclass(frozen=True)
class Verified:
    """A lowered, verified artifact and what the accuracy policy did."""

    lowered: Lowered
    float_modules: tuple[str, ...]
    evaluation: Evaluation
    policy: str


@dataclass(frozen=True)
class HeldOut:
    """Held-out images with labels, and a digest that identifies them."""

    images: torch.Tensor
    labels: torch.Tensor
    digest: str

    @staticmethod
    def of(images: torch.Tensor, labels: torch.Tensor) -> HeldOut:
        digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
        return HeldOut(images, labels, digest)


def _to_json(lowered: Lowered) -> dict[str, object]:
    quant = {
        k: None if q is None else {"dtype": q.dtype, "scale": q.scale, "zero_point": q.zero_point}
        for k, q in (("input", lowered.input_quantization), ("output", lowered.output_quantization))
    }
    d = lowered.delegation
    delegation = {
        "delegate": d.delegate,
        "partitions": d.partitions,
        "delegated_ops": d.delegated_ops,
        "fallback_ops": d.fallback_ops,
    }
    return {"entry_point": lowered.entry_point, "delegation": delegation, **quant}


def _from_json(data: bytes, meta: dict[str, object]) -> Lowered:
    def quant(value: object) -> TensorQuantization | None:
        return None if value is None else TensorQuantization(**value)  # type: ignore[arg-type]

    return Lowered(
        data,
        DelegationReport(**meta["delegation"]),  # type: ignore[arg-type]
        quant(meta["input"]),
        quant(meta["output"]),
        str(meta["entry_point"]),
    )


class Lowerer:
    """Lowers and verifies rungs for one target, caching artifacts and their figures."""

    def __init__(
        self,
        quantization: Quantization,
        calibration: torch.Tensor,
        held_out: HeldOut,
        policy: AccuracyPolicy,
        threads: int,
        cache: Cache,
        work_dir: Path,
        workers: int | None = None,
    ) -> None:
        self.quantization = quantization
        self.calibration = calibration
        self.calibration_digest = hashlib.sha256(calibration.numpy().tobytes()).hexdigest()
        self.held_out = held_out
        self.policy = policy
        self.threads = threads
        self.cache = cache
        self.work_dir = work_dir
        self.tools = toolchain_versions()
        self.workers = workers or os.cpu_count() or 1
        self._exported: dict[str, torch.export.ExportedProgram] = {}
        self._digests: dict[str, str] = {}

    def _digest(self, rung: Rung) -> str:
        """The rung's weights digest, hashed once per build (every artifact key and simulation needs it)."""
        if rung.id not in self._digests:
            self._digests[rung.id] = weights_digest(rung.model)
        return self._digests[rung.id]

    def _artifact_key(self, rung_digest: str, backend: Backend, float_modules: tuple[str, ...]) -> str:
        example_shape = (1, *self.calibration.shape[1:])
        inputs = (rung_digest, self.calibration_digest, example_shape, self.tools)
        return stage_key("artifact", backend.name, self.quantization.value, float_modules, *inputs)

    def _lower_all(self, requests: list[tuple[Rung, Backend, tuple[str, ...]]]) -> list[Lowered]:
        """Lower each ``(rung, backend, float modules)``, from the cache or in worker processes."""
        keys = [self._artifact_key(self._digest(rung), b, floats) for rung, b, floats in requests]
        results: list[Lowered | None] = []
        for key in keys:
            data, meta = self.cache.load_bytes(key), self.cache.load_json(key)
            results.append(None if data is None or meta is None else _from_json(data, meta))
        missing = [i for i, result in enumerate(results) if result is None]
        jobs = [self._job(*requests[i]) for i in missing]
        status = f"lowering {len(jobs)} artifacts in {min(len(jobs), self.workers)} processes"
        with console.status(status):
            for index, outcome in lower_all(jobs, self.workers):
                if isinstance(outcome, str):
                    raise BuildError(f"{jobs[index].label}: {outcome}")
                self.cache.save_bytes(keys[missing[index]], outcome.data)
                self.cache.save_json(keys[missing[index]], _to_json(outcome))
                results[missing[index]] = outcome
                step(
                    f"lowered {jobs[index].label}: {len(outcome.data) / 1e6:.2f} MB, "
                    f"{outcome.delegation.delegated_ops} ops delegated, {outcome.delegation.fallback_count} fell back"
                )
        return [result for result in results if result is not None]

    def _job(self, rung: Rung, backend: Backend, float_modules: tuple[str, ...]) -> LoweringJob:
        label = f"{rung.id} -> {backend.name} {self.quantization.value}"
        if float_modules:
            label += f" (float: {', '.join(float_modules)})"
        name = BackendName(backend.name)
        example = self.calibration[:1]
        return LoweringJob(label, rung.model, name, self.quantization, example, self.calibration, float_modules)

    def _evaluate(self, lowered: Lowered, backend: Backend, eager: torch.Tensor) -> Evaluation:
        sha = hashlib.sha256(lowered.data).hexdigest()
        key = stage_key("verify", sha, self.held_out.digest)
        if (stored := self.cache.load_json(key)) is not None:
            return Evaluation(**stored)
        path = self.work_dir / f"verify-{sha[:16]}{backend.suffix}"
        path.write_bytes(lowered.data)
        status = console.status(f"verifying {backend.name} artifact on {len(self.held_out.labels)} images")
        with status, captured():
            out = backend.load(path, self.threads)(self.held_out.images.numpy())
        path.unlink()
        predicted = out.argmax(axis=1)
        labels = self.held_out.labels.numpy()
        evaluation = Evaluation(
            accuracy=round(float((predicted == labels).mean() * 100), 3),
            agreement=round(float((predicted == eager.argmax(1).numpy()).mean() * 100), 3),
            max_logit_diff=round(float(np.abs(out - eager.numpy()).max()), 5),
        )
        self.cache.save_json(key, evaluation.__dict__)
        return evaluation

    def _simulator(self, rung: Rung, digest: str, backend: Backend) -> Simulate:
        """Simulated int8 top-1 of ``rung`` under ``backend``'s quantizer on the screening images, cached."""
        images, labels = self.held_out.images[:SCREENING_IMAGES], self.held_out.labels[:SCREENING_IMAGES]

        def simulate(units: tuple[str, ...]) -> float:
            inputs = (self.calibration_digest, self.held_out.digest)
            key = stage_key("simulated-int8", backend.name, units, digest, *inputs)
            if (stored := self.cache.load_json(key)) is not None:
                return float(stored)
            with captured():
                if digest not in self._exported:  # one export per model serves every backend and choice
                    self._exported[digest] = export_batched(rung.model, self.calibration)
                quantizer = backend.int8_quantizer()
                graph = quantize_pt2e(self._exported[digest], quantizer, self.calibration, units, False)
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
        eager: dict[str, torch.Tensor],
        eager_accuracy: dict[str, float],
    ) -> dict[tuple[str, str], Verified]:
        """Lower and verify every rung with every backend, applying the accuracy policy where int8 loses too much.

        ``eager`` and ``eager_accuracy`` hold each rung's fp32 logits and top-1 on the held-out images, by id.
        """
        pairs = [(rung, backend) for backend in backends for rung in rungs]
        plain = self._lower_all([(rung, backend, ()) for rung, backend in pairs])
        verified: dict[tuple[str, str], Verified] = {}
        retry: list[tuple[Rung, Backend, Verified, tuple[str, ...]]] = []
        for (rung, backend), lowered in zip(pairs, plain, strict=True):
            first = Verified(lowered, (), self._evaluate(lowered, backend, eager[rung.id]), "")
            outcome = self._judge(rung, backend, first, eager_accuracy[rung.id])
            if isinstance(outcome, Verified):
                verified[(rung.id, backend.name)] = outcome
            else:
                retry.append((rung, backend, first, outcome))
        candidates = self._lower_all([(rung, backend, floats) for rung, backend, _, floats in retry])
        for (rung, backend, first, floats), candidate in zip(retry, candidates, strict=True):
            result = self._evaluate(candidate, backend, eager[rung.id])
            kept = ", ".join(floats)
            step(f"{rung.id} {backend.name} keep-float {kept}: top-1 {result.accuracy:.2f}% in the runtime")
            better = result.accuracy >= first.evaluation.accuracy + MIN_FLOAT_GAIN_POINTS
            best = Verified(candidate, floats, result, "") if better else first
            verified[(rung.id, backend.name)] = self._kept(rung, backend, first, best, eager_accuracy[rung.id])
        return verified

    def _judge(
        self, rung: Rung, backend: Backend, first: Verified, eager_accuracy: float
    ) -> Verified | tuple[str, ...]:
        """The final result for ``first``, or the float units worth lowering as a keep-float candidate."""
        drop = eager_accuracy - first.evaluation.accuracy
        tolerance = self.policy.tolerance_points
        if self.quantization is Quantization.FP32 or drop <= tolerance:
            return Verified(first.lowered, (), first.evaluation, "none: within tolerance")
        headline = (
            f"{rung.id} {backend.name} {self.quantization.value}: top-1 {first.evaluation.accuracy:.2f}% is "
            f"{drop:.2f} points below eager fp32 {eager_accuracy:.2f}% (tolerance {tolerance})"
        )
        console.print(f"[bold yellow]ACCURACY WARNING[/] {headline}", highlight=False)
        if self.policy.policy == "fail":
            raise BuildError(f"{headline}; the target's accuracy policy is 'fail'")
        if self.policy.policy == "warn":
            return Verified(first.lowered, (), first.evaluation, f"warn: kept with a {drop:.2f}-point drop")
        with console.status(f"screening float units of {rung.id} for {backend.name} in simulation"):
            simulate = self._simulator(rung, self._digest(rung), backend)
            screening = screen(rung.model, self.calibration[:1], simulate, drop - tolerance)
        tried = ", ".join(f"{'+'.join(units) or 'all int8'} {top1:.2f}%" for units, top1 in screening.tried.items())
        step(f"{rung.id} {backend.name}: simulated top-1 with float units: {tried}")
        return screening.float_units or self._kept(rung, backend, first, first, eager_accuracy)

    def _kept(self, rung: Rung, backend: Backend, first: Verified, best: Verified, eager_accuracy: float) -> Verified:
        """``best`` with the keep-float policy's note; warns loudly if it is still beyond tolerance."""
        drop = eager_accuracy - first.evaluation.accuracy
        recovered = eager_accuracy - best.evaluation.accuracy <= self.policy.tolerance_points
        kept = ", ".join(best.float_modules) or "nothing"
        note = f"keep-float: int8 lost {drop:.2f} points; kept {kept} in float -> {best.evaluation.accuracy:.2f}%" + (
            "" if recovered else " (still beyond tolerance)"
        )
        if not recovered:
            console.print(f"[bold yellow]ACCURACY WARNING[/] {rung.id} {backend.name}: {note}", highlight=False)
        return Verified(best.lowered, best.float_modules, best.evaluation, note)
