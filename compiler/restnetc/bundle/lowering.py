"""Lowering every rung with every backend: each (rung, backend) pair is lowered, verified (``verification``: it
must compute what it was compiled from) and, when int8 loses more than the target's tolerance on validation, handed
to the target's accuracy policy (``accuracy_policy``), in one worker process, pairs side by side. Artifacts and
outcomes are cached; an outcome is reused only with the very bytes it verified.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Mapping
from contextlib import closing

import torch
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends import (
    Backend,
    DelegationReport,
    Ends,
    Lowered,
    ModelCard,
    TensorQuantization,
    get_backend,
)
from restnetc.backends.bias_correction import BIAS_IMAGES, layer_biases
from restnetc.backends.pt2e import (
    Observed,
    all_int8_biases,
    export_batched,
    observe,
    observed_tensors,
    restore_observed,
)
from restnetc.bundle.accuracy_policy import OverTolerance, TryFloat, get_policy
from restnetc.bundle.ladder import Rung
from restnetc.bundle.manifest import Int8Recipe
from restnetc.bundle.screening import SCREENING_IMAGES, Screening, screen
from restnetc.bundle.verification import BuildError, EagerLogits, Evaluations, Reference, Verified, Verifier
from restnetc.cache import Cache, stage_key, tensors_digest, toolchain_versions, warn_recompute
from restnetc.config.target import AccuracyPolicy, Quantization
from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.progress import Note, status, step
from restnetc.workers import LOCAL, Executor

SCREENING_BATCH = 125


def simulated_logits(graph: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``graph``'s logits on ``images`` in eager, in batches of ``SCREENING_BATCH`` (an int8 graph: its simulation)."""
    with torch.no_grad():  # a converted graph refuses .eval(); it has no train-time behaviour anyway
        return torch.cat([graph(chunk) for chunk in images.split(SCREENING_BATCH)])


@dataclasses.dataclass(frozen=True)
class Description:
    """The card a backend's artifacts state about their model, and the tool that writes it (``Backend.card_writer``):
    both are part of a described artifact's cache key."""

    card: ModelCard
    writer: str


@dataclasses.dataclass(frozen=True)
class PairJob:
    """One rung to lower with one backend, with the rung's eager fp32 logits and its eager top-1 on validation
    (what the accuracy policy compares the artifact's with)."""

    rung: Rung
    backend: BackendName
    eager: EagerLogits
    eager_accuracy: float

    @property
    def label(self) -> str:
        return f"{self.rung.id} {self.backend.value}"


@dataclasses.dataclass(frozen=True)
class PairResult:
    """A pair's verified artifact and what happened on the way, as notes to log in order."""

    verified: Verified
    messages: tuple[Note, ...]


@dataclasses.dataclass(frozen=True)
class Observation:
    """A model's calibrated observers for one backend (``pt2e.Observed``), and the digest of their stored
    states, which its graphs' corrected biases are keyed by."""

    observed: Observed
    digest: str


@dataclasses.dataclass(frozen=True)
class Observations:
    """Calibrated observers and corrected biases kept in the cache by model weights and backend, so that, with
    a cache the jobs can write, each model is calibrated and corrected once: a parent serves as its variants'
    donor, and packing makes again the int8 graphs that lowering made, from the very states lowering used.
    Processes racing to store an entry all take the first one's (``Cache.save_first``)."""

    cache: Cache
    calibration: torch.Tensor
    calibration_digest: str
    tools: Mapping[str, str]

    @classmethod
    def uncached(cls, calibration: torch.Tensor) -> Observations:
        """Observations that keep nothing: every model is calibrated where it is needed."""
        return cls(Cache(None), calibration, "", {})

    def observed(
        self, backend: Backend, exported: torch.export.ExportedProgram, digest: str, make: Callable[[], Observed]
    ) -> Observation:
        """The observation of ``exported`` (of the model whose ``quantized_digest`` is ``digest``) with
        ``backend``'s quantizer: restored from the cache, else ``make()`` and stored."""
        key = stage_key("int8-observed", backend.name, digest, self.calibration_digest, self.tools)
        stored = self.cache.load(key)
        if stored is None:
            fresh, ours = _observation(make)
            if (stored := self.cache.save_first(key, ours)) is ours:
                return fresh
        if (restored := restore_observed(exported, backend.int8_quantizer(), stored)) is not None:
            return Observation(restored, tensors_digest(stored))
        warn_recompute(key, "its observers are not the export's")
        fresh, ours = _observation(make)
        self.cache.save(key, ours)
        return fresh

    def _biases_key(self, backend: Backend, observation: Observation, float_units: tuple[str, ...]) -> str:
        inputs = (observation.digest, float_units, self.calibration_digest, self.tools)
        return stage_key("int8-biases", backend.name, *inputs)

    def biases(
        self, backend: Backend, observation: Observation, float_units: tuple[str, ...]
    ) -> dict[str, torch.Tensor] | None:
        """The corrected biases, by layer name, of the int8 graph made from ``observation`` with ``float_units``
        in float, as ``save_biases`` stored them, or None."""
        return self.cache.load(self._biases_key(backend, observation, float_units))

    def save_biases(
        self, backend: Backend, observation: Observation, float_units: tuple[str, ...], biases: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Store ``biases`` for the graph ``biases`` names, unless another process came first; what is stored."""
        return self.cache.save_first(self._biases_key(backend, observation, float_units), biases)


def _observation(make: Callable[[], Observed]) -> tuple[Observation, dict[str, torch.Tensor]]:
    """``make()``'s observation, and the tensors that store it."""
    observed = make()
    tensors = observed_tensors(observed)
    return Observation(observed, tensors_digest(tensors)), tensors


class Graphs:
    """One pair's exported program, calibrated observers and int8 graphs by float units, each made once.

    Lowering compiles these very graphs and screening evaluates them: every choice of float units reuses
    the one calibration (observer states are copied; calibration runs the float model, so they are the
    same), and the keep-float candidate that screening picks is compiled from the graph it was scored on.
    A variant's modules shared with its back parent take the parent's quantization (``Rung.donor``).
    Observers and corrected biases come from ``observations`` when it has them.
    """

    def __init__(self, rung: Rung, backend: Backend, observations: Observations) -> None:
        self.rung = rung
        self.backend = backend
        self.observations = observations
        self.calibration = observations.calibration
        self._exported: torch.export.ExportedProgram | None = None
        self._observation: Observation | None = None
        self._int8: dict[tuple[str, ...], tuple[nn.Module, Quantizer]] = {}

    def _observe(self, exported: torch.export.ExportedProgram) -> Observation:
        quantizer, donor, calibration = self.backend.int8_quantizer(), self.rung.donor, self.calibration
        observations = self.observations

        def make() -> Observed:
            if donor is None:
                return observe(exported, quantizer, calibration)
            theirs = export_batched(donor.model, calibration)
            own = self.rung.donor_digest  # a parent rung's quantized_digest
            assert own is not None
            source = observations.observed(self.backend, theirs, own, lambda: observe(theirs, quantizer, calibration))
            corrected = observations.biases(self.backend, source, ())
            if corrected is None:  # what the parent's own all-int8 graph takes, made once
                made = all_int8_biases(source.observed, calibration[:BIAS_IMAGES])
                corrected = observations.save_biases(self.backend, source, (), made)
            return observe(exported, quantizer, calibration, donor, source.observed, corrected)

        return observations.observed(self.backend, exported, self.rung.quantized_digest, make)

    def _observed(self) -> tuple[torch.export.ExportedProgram, Observation]:
        if self._exported is None or self._observation is None:
            with captured():
                self._exported = export_batched(self.rung.model, self.calibration)
                self._observation = self._observe(self._exported)
        return self._exported, self._observation

    def observed(self) -> torch.fx.GraphModule:
        """The rung's calibrated observers: the prepared float graph every int8 graph here converts (not a copy:
        callers copy before changing it)."""
        return self._observed()[1].observed.graph

    def int8(self, float_units: tuple[str, ...]) -> tuple[nn.Module, Quantizer]:
        """The calibrated int8 graph with ``float_units`` kept in float, and its quantizer."""
        if float_units not in self._int8:
            exported, observation = self._observed()
            backend = self.backend
            with captured():
                stored = self.observations.biases(backend, observation, float_units)
                graph = backend.quantize(exported, self.calibration, float_units, observation.observed, stored)
                if stored is None:
                    assert isinstance(graph[0], torch.fx.GraphModule)  # every int8 graph is a converted PT2E graph
                    ours = layer_biases(graph[0])
                    first = self.observations.save_biases(backend, observation, float_units, ours)
                    if first is not ours:  # another process stored its own first: the graph takes those
                        graph = backend.quantize(exported, self.calibration, float_units, observation.observed, first)
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
        "input_layout": lowered.input_layout,
    }


def quantization_from_json(value: object) -> TensorQuantization | None:
    """A tensor quantization as ``dataclasses.asdict`` stored it (None stays None)."""
    return None if value is None else TensorQuantization(**value)  # type: ignore[arg-type]


def _from_json(data: bytes, meta: dict[str, object]) -> Lowered:
    return Lowered(
        data,
        DelegationReport(**meta["delegation"]),  # type: ignore[arg-type]
        quantization_from_json(meta["input"]),
        quantization_from_json(meta["output"]),
        str(meta["entry_point"]),
        meta.get("planned_memory"),  # type: ignore[arg-type]
        meta["input_layout"],  # type: ignore[arg-type]
    )


class Lowerer:
    """Lowers and verifies rungs for one target, caching artifacts and outcomes."""

    def __init__(
        self,
        quantization: Quantization,
        calibration: torch.Tensor,
        verifier: Verifier,
        policy: AccuracyPolicy,
        cache: Cache,
        workers: int | None = None,
        executor: Executor = LOCAL,
        descriptions: Mapping[str, Description] | None = None,
        pixels: Mapping[str, TensorQuantization] | None = None,
    ) -> None:
        """``descriptions``: by backend name, the card its artifacts state about their model (``Backend.describe``;
        the card's name followed by the rung's id) and the tool that writes it; a backend left out states nothing.
        A worker lacking that tool fails the job rather than ship an artifact without its card.
        ``pixels``: by backend name, the quantization under which its artifacts take raw uint8 pixels
        (``Ends.pixels``); a backend left out takes float32 images."""
        self.quantization = quantization
        self.descriptions = dict(descriptions or {})
        self.pixels = dict(pixels or {})
        self.calibration = calibration
        self.calibration_digest = hashlib.sha256(calibration.numpy().tobytes()).hexdigest()
        self.verifier = verifier
        self.policy = policy
        self.cache = cache
        self.tools = toolchain_versions()
        self.workers = workers
        self.executor = executor

    def slots(self, jobs: int) -> int:
        """How many of ``jobs`` run at once: at most the ``workers`` given, else as many as the executor runs."""
        return min(jobs, self.workers) if self.workers else self.executor.slots(jobs)

    def for_workers(self, count: int) -> Lowerer:
        """What ``count`` jobs run with: this lowerer for one local job; else a copy whose runtimes verify with
        one thread (a worker has one core), and for a remote executor one that writes nothing on the worker's
        machine but temporary files (a read-only cache: the caller records what comes back)."""
        if count <= 1 and not self.executor.remote:
            return self
        worker = copy.copy(self)
        worker.verifier = dataclasses.replace(self.verifier, threads=1)
        if self.executor.remote:
            worker.cache = Cache(self.cache.root, writable=False)
            worker.verifier = dataclasses.replace(worker.verifier, cache=worker.cache, work_dir=None)
        return worker

    def recipe(self, rung: Rung, backend: BackendName) -> Int8Recipe | None:
        """How ``rung``'s artifacts are quantized for ``backend`` (None for fp32), as the manifest states it."""
        if self.quantization is not Quantization.INT8:
            return None
        return Int8Recipe(
            quantizer=type(get_backend(backend).int8_quantizer()).__name__,
            calibration_images=len(self.calibration),
            bias_correction_images=min(BIAS_IMAGES, len(self.calibration)),
            donor_modules=[] if rung.donor is None else list(rung.donor.modules),
        )

    @property
    def observations(self) -> Observations:
        """Where this lowerer's calibrated observers are kept (its cache)."""
        return Observations(self.cache, self.calibration, self.calibration_digest, self.tools)

    def _artifact_key(self, job: PairJob, float_modules: tuple[str, ...]) -> str:
        example_shape = (1, *self.calibration.shape[1:])
        description = self.descriptions.get(job.backend.value)
        card = None if description is None else dataclasses.asdict(description)
        inputs = (
            job.rung.quantized_digest,
            self.calibration_digest,
            example_shape,
            self.tools,
            card,
            self.ends(job.backend),
        )
        return stage_key("artifact", job.backend.value, self.quantization.value, float_modules, *inputs)

    def ends(self, backend: BackendName) -> Ends:
        """The ends of ``backend``'s shipped artifacts: whole models, the image input as ``pixels`` says."""
        return Ends(pixels=self.pixels.get(backend.value))

    def _result_key(self, job: PairJob) -> str:
        policy = self.policy.model_dump(mode="json")
        held_out = (self.verifier.validation.digest, self.verifier.test.digest)
        return stage_key("verified", self._artifact_key(job, ()), *held_out, policy)

    def _load_result(self, job: PairJob) -> Verified | None:
        """``job``'s stored outcome, only if the stored artifact is the very bytes that were verified.

        The outcome names its artifact's entry and sha256; the figures come from the record keyed by that
        sha256, so they can never be applied to other bytes. (A keep-float outcome also stores the figures of
        the all-int8 artifact it replaced, ``Verified.all_int8``: they describe no bytes it ships.)
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
        evaluation = self.verifier.stored(stored["sha256"])
        all_int8 = stored.get("all_int8")
        if evaluation is None or (stored["float_modules"] and all_int8 is None):  # recorded before all_int8 was
            return None
        kept = None if all_int8 is None else Evaluations.from_json(all_int8)
        return Verified(_from_json(data, meta), tuple(stored["float_modules"]), evaluation, stored["policy"], kept)

    def _save_result(self, job: PairJob, verified: Verified) -> None:
        """Record ``job``'s outcome, and with a remote executor (whose workers store nothing) its artifact and
        figures too."""
        artifact, sha256 = self._artifact_key(job, verified.float_modules), hashlib.sha256(verified.lowered.data)
        if self.executor.remote:
            self._store_artifact(artifact, verified.lowered)
            self.verifier.record(sha256.hexdigest(), None, verified.evaluation)
        stored = {
            "artifact": artifact,
            "sha256": sha256.hexdigest(),
            "float_modules": list(verified.float_modules),
            "policy": verified.policy,
            "all_int8": None if verified.all_int8 is None else dataclasses.asdict(verified.all_int8),
        }
        self.cache.save_json(self._result_key(job), stored)

    def _store_artifact(self, key: str, lowered: Lowered) -> None:
        self.cache.save_bytes(key, lowered.data)
        self.cache.save_json(key, _to_json(lowered))

    def _lower(self, job: PairJob, graphs: Graphs, float_modules: tuple[str, ...], log: list[Note]) -> Lowered:
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
                ends = self.ends(job.backend)
                if self.quantization is Quantization.INT8:
                    graph, quantizer = graphs.int8(float_modules)
                    lowered = backend.compile(graph, example, quantizer, ends)
                else:
                    lowered = backend.lower(job.rung.model, example, self.quantization, self.calibration, ends=ends)
            except Exception as exc:  # any toolchain failure: keep the toolchain's words
                raise BuildError(f"{label}: lowering failed: {type(exc).__name__}: {exc}\n{output.tail()}") from None
        if (description := self.descriptions.get(job.backend.value)) is not None:
            card = dataclasses.replace(description.card, name=f"{description.card.name} {job.rung.id}")
            try:
                lowered = dataclasses.replace(lowered, data=backend.describe(lowered.data, card))
            except Exception as exc:  # the writer's own words: a refused program, a tool missing on a worker
                raise BuildError(f"{label}: writing its {description.writer} model card failed: {exc}") from None
        self._store_artifact(key, lowered)
        d = lowered.delegation
        log.append(
            Note(
                logging.INFO,
                f"lowered {label}: {len(lowered.data) / 1e6:.2f} MB, "
                f"{d.delegated_ops} ops delegated, {d.fallback_count} fell back",
            )
        )
        return lowered

    def _simulation(self, graphs: Graphs) -> Callable[[tuple[str, ...]], torch.Tensor]:
        """The logits of ``graphs``' int8 graph with the given float units, run in eager on the screening images
        (the validation split's first), each computed once: the check of the artifact and screening share them."""
        images = self.verifier.validation.images[:SCREENING_IMAGES]

        @functools.cache
        def logits(units: tuple[str, ...]) -> torch.Tensor:
            return simulated_logits(graphs.int8(units)[0], images)

        return logits

    def _reference(
        self, job: PairJob, simulation: Callable[[tuple[str, ...]], torch.Tensor], units: tuple[str, ...]
    ) -> Callable[[], Reference]:
        """What ``job``'s artifact with ``units`` in float must compute on the screening images, made when asked:
        its int8 graph's simulation, or for a float artifact the eager model."""
        if self.quantization is Quantization.INT8:
            return lambda: Reference(simulation(units), "PT2E simulation")
        return lambda: Reference(job.eager.validation[:SCREENING_IMAGES], "eager model")

    def _screen(
        self, job: PairJob, graphs: Graphs, simulation: Callable[[tuple[str, ...]], torch.Tensor]
    ) -> Callable[[float], Screening]:
        """Screening of float units for ``job``'s rung: its int8 graphs' ``simulation`` scored on the screening
        images."""
        validation = self.verifier.validation
        labels = validation.labels[:SCREENING_IMAGES]

        def simulate(units: tuple[str, ...]) -> float:
            inputs = (self.calibration_digest, validation.digest)
            key = stage_key("simulated-int8", graphs.backend.name, units, job.rung.quantized_digest, *inputs)
            if (stored := self.cache.load_json(key)) is not None:
                return float(stored)
            value = round(float((simulation(units).argmax(1) == labels).double().mean() * 100), 3)
            self.cache.save_json(key, value)
            return value

        return lambda needed_gain: screen(job.rung.model, self.calibration[:1], simulate, needed_gain)

    def build_all(
        self, rungs: list[Rung], backends: list[Backend], eager: dict[str, EagerLogits]
    ) -> dict[tuple[str, str], Verified]:
        """Lower and verify every rung with every backend, applying the accuracy policy where int8 loses too much.

        ``eager`` holds each rung's fp32 logits by id. Pairs not in the cache run as jobs of the lowerer's executor.
        """
        verified: dict[tuple[str, str], Verified] = {}
        pending: list[PairJob] = []
        labels = self.verifier.validation.labels
        for backend in backends:
            for rung in rungs:
                logits = eager[rung.id]
                top1 = float((logits.validation.argmax(1) == labels).double().mean() * 100)
                job = PairJob(rung, BackendName(backend.name), logits, top1)
                if (stored := self._load_result(job)) is None:
                    pending.append(job)
                else:
                    verified[(rung.id, backend.name)] = stored
                    step(f"{job.label}: verified artifact from the cache ({stored.policy})")
        pending.sort(key=lambda job: -job.rung.params)  # the longest first, so no core idles at the end
        count = self.slots(len(pending))
        where = f"{self.executor.name} tasks" if self.executor.remote else f"{count} processes"
        jobs = self.executor.run_all(Lowerer.build_pair, self.for_workers(count), pending, count)
        with status(f"lowering and verifying {len(pending)} artifacts in {where}"), closing(jobs):
            for index, result in jobs:
                for note in result.messages:
                    note.emit()
                self._save_result(pending[index], result.verified)
                verified[(pending[index].rung.id, pending[index].backend.value)] = result.verified
        if pending:
            step(f"{len(pending)} artifacts lowered and verified in {where}")
        return verified

    def build_pair(self, job: PairJob) -> PairResult:
        """Lower ``job`` and verify the artifact; beyond tolerance, apply the accuracy policy (which may ask for
        a keep-float candidate, lowered and verified here too)."""
        backend = get_backend(job.backend)
        backend.check_supported(self.quantization)
        graphs = Graphs(job.rung, backend, self.observations)
        simulation = self._simulation(graphs)
        log: list[Note] = []
        plain = self._lower(job, graphs, (), log)
        checked = self._reference(job, simulation, ())
        evaluation = self.verifier.evaluate(plain.data, backend, job.eager, job.label, reference=checked)
        first = Verified(plain, (), evaluation, "")
        drop = job.eager_accuracy - first.evaluation.validation.accuracy
        if self.quantization is Quantization.FP32 or drop <= self.policy.tolerance_points:
            return PairResult(dataclasses.replace(first, policy="none: within tolerance"), tuple(log))
        case = OverTolerance(
            job.label,
            self.quantization.value,
            job.eager_accuracy,
            first,
            self.policy.tolerance_points,
            self._screen(job, graphs, simulation),
            log,
        )
        log.append(Note(logging.WARNING, f"ACCURACY WARNING {case.headline}"))
        rule = get_policy(self.policy.policy)
        outcome = rule.decide(case)
        if isinstance(outcome, TryFloat):
            candidate = self._lower(job, graphs, outcome.units, log)
            label, checked = f"{job.label} keep-float", self._reference(job, simulation, outcome.units)
            evaluation = self.verifier.evaluate(candidate.data, backend, job.eager, label, reference=checked)
            outcome = rule.settle(case, Verified(candidate, outcome.units, evaluation, ""))
        if outcome.float_modules:
            outcome = dataclasses.replace(outcome, all_int8=first.evaluation)
        return PairResult(outcome, tuple(log))
