"""Lowering every rung with every backend, verifying each artifact, and applying the accuracy policy.

Each artifact is run by its own runtime over the held-out images and compared with the eager fp32 model:
top-1 accuracy, top-1 agreement and the largest logit difference. When int8 loses more than the target's
tolerance, the build says so and applies the target's policy (see ``AccuracyPolicy``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from restnetc.backends import Backend, DelegationReport, Lowered, TensorQuantization
from restnetc.backends.native_output import captured
from restnetc.backends.pt2e import quantize_pt2e
from restnetc.bundle.ladder import Rung, weights_digest
from restnetc.cache import Cache, stage_key
from restnetc.config.target import AccuracyPolicy, Quantization
from restnetc.errors import RestnetcError
from restnetc.progress import console, step

SCREENING_IMAGES = 500
"""Held-out images on which keep-float candidates are compared in simulation before one is lowered."""
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

    def _lower(self, rung: Rung, digest: str, backend: Backend, float_modules: tuple[str, ...]) -> Lowered:
        example = self.calibration[:1]
        key = stage_key(
            "artifact",
            backend.name,
            self.quantization.value,
            float_modules,
            digest,
            self.calibration_digest,
            tuple(example.shape),
            self.tools,
        )
        data, meta = self.cache.load_bytes(key), self.cache.load_json(key)
        if data is not None and meta is not None:
            return _from_json(data, meta)
        what = f"{rung.id} -> {backend.name} {self.quantization.value}"
        if float_modules:
            what += f" (float: {', '.join(float_modules)})"
        with console.status(f"lowering {what}"), captured() as log:
            try:
                lowered = backend.lower(rung.model, example, self.quantization, self.calibration, float_modules)
            except Exception as exc:  # any toolchain failure: name the model and show the toolchain's words
                raise BuildError(f"{what}: lowering failed: {type(exc).__name__}: {exc}\n{log.tail()}") from None
        self.cache.save_bytes(key, lowered.data)
        self.cache.save_json(key, _to_json(lowered))
        step(
            f"lowered {what}: {len(lowered.data) / 1e6:.2f} MB, "
            f"{lowered.delegation.delegated_ops} ops delegated, {lowered.delegation.fallback_count} fell back"
        )
        return lowered

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

    def _simulate(self, rung: Rung, digest: str, backend: Backend, modules: tuple[str, ...]) -> float:
        """Top-1 % of the backend's int8 quantization simulated in eager PyTorch, on the screening images."""
        key = stage_key("simulated-int8", backend.name, modules, digest, self.calibration_digest, self.held_out.digest)
        if (stored := self.cache.load_json(key)) is not None:
            return float(stored)
        example = self.calibration[:1]
        with captured():
            graph = quantize_pt2e(rung.model, example, backend.int8_quantizer(), self.calibration, modules, False)
        images, labels = self.held_out.images[:SCREENING_IMAGES], self.held_out.labels[:SCREENING_IMAGES]
        with torch.no_grad():
            logits = torch.cat([graph(image) for image in images.split(1)])
        value = float((logits.argmax(1) == labels).double().mean() * 100)
        self.cache.save_json(key, value)
        return value

    def _screen(self, rung: Rung, digest: str, backend: Backend) -> tuple[tuple[str, ...], float]:
        """The keep-float candidate with the best simulated accuracy (each costs seconds, not a lowering)."""
        scored = []
        for modules in rung.sensitive_modules:
            simulated = self._simulate(rung, digest, backend, modules)
            step(f"keep-float {', '.join(modules)}: simulated int8 top-1 {simulated:.2f}%")
            scored.append((simulated, -len(modules), modules))
        simulated, _, modules = max(scored)
        return modules, simulated

    def build(self, rung: Rung, backend: Backend, eager: torch.Tensor, eager_accuracy: float) -> Verified:
        """Lower and verify ``rung``; apply the accuracy policy if int8 loses more than the tolerance."""
        digest = weights_digest(rung.model)
        lowered = self._lower(rung, digest, backend, ())
        evaluation = self._evaluate(lowered, backend, eager)
        drop = eager_accuracy - evaluation.accuracy
        tolerance = self.policy.tolerance_points
        if self.quantization is Quantization.FP32 or drop <= tolerance:
            return Verified(lowered, (), evaluation, "none: within tolerance")
        headline = (
            f"{rung.id} {backend.name} {self.quantization.value}: top-1 {evaluation.accuracy:.2f}% is "
            f"{drop:.2f} points below eager fp32 {eager_accuracy:.2f}% (tolerance {tolerance})"
        )
        console.print(f"[bold yellow]ACCURACY WARNING[/] {headline}", highlight=False)
        if self.policy.policy == "fail":
            raise BuildError(f"{headline}; the target's accuracy policy is 'fail'")
        if self.policy.policy == "warn":
            return Verified(lowered, (), evaluation, f"warn: kept with a {drop:.2f}-point drop")
        best = Verified(lowered, (), evaluation, "")
        modules, simulated = self._screen(rung, digest, backend)
        if simulated > self._simulate(rung, digest, backend, ()):
            candidate = self._lower(rung, digest, backend, modules)
            result = self._evaluate(candidate, backend, eager)
            step(f"keep-float {', '.join(modules)}: top-1 {result.accuracy:.2f}% in the runtime")
            if result.accuracy >= best.evaluation.accuracy + MIN_FLOAT_GAIN_POINTS:
                best = Verified(candidate, modules, result, "")
        recovered = eager_accuracy - best.evaluation.accuracy <= tolerance
        kept = ", ".join(best.float_modules) or "nothing"
        note = f"keep-float: int8 lost {drop:.2f} points; kept {kept} in float -> {best.evaluation.accuracy:.2f}%" + (
            "" if recovered else " (still beyond tolerance)"
        )
        if not recovered:
            console.print(f"[bold yellow]ACCURACY WARNING[/] {rung.id} {backend.name}: {note}", highlight=False)
        return Verified(best.lowered, best.float_modules, best.evaluation, note)
