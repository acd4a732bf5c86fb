"""Packing a backend's shipped rungs into one program (``bundle.layout: ladder``).

Each rung enters the program as the very graph its own artifact was compiled from (the lowering's
calibration, the float units its accuracy policy chose), behind an entry point named after it. An entry point
must then compute on the held-out images exactly what the rung's own, verified file computed: same top-1,
agreement and largest logit difference, image for image. So the per-rung verification, the accuracy policy's
decisions and the ladder's standings all carry over to the program; a program that breaks this is refused.
Programs and their entry points' figures are cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from contextlib import closing

from torch import nn

from restnetc.backends import DelegationReport, EntryPoint, LoweredProgram, get_backend
from restnetc.bundle.ladder import Rung
from restnetc.bundle.lowering import Graphs, Lowerer, quantization_from_json
from restnetc.bundle.verification import BuildError, EagerLogits, Evaluations, Verified
from restnetc.cache import stage_key
from restnetc.config.target import Backend as BackendName
from restnetc.config.target import Quantization
from restnetc.native_output import captured
from restnetc.progress import status, step

LADDER_STEM = "ladder"
"""A ladder program's file is ``<backend>/ladder<suffix>``."""


def entry_point_name(rung_id: str) -> str:
    """Rung ``rung_id``'s entry point in a ladder program: the id with every character an entry point may not
    hold (``shim_abi.ENTRY_POINT_PATTERN``) as ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", rung_id)


@dataclasses.dataclass(frozen=True)
class Member:
    """A shipped rung, its verified per-rung artifact, and its eager fp32 logits (what verification compares)."""

    rung: Rung
    verified: Verified
    eager: EagerLogits

    @property
    def entry_point(self) -> str:
        return entry_point_name(self.rung.id)


@dataclasses.dataclass(frozen=True)
class PackJob:
    """One backend's shipped rungs, in the order their entry points take in the program."""

    backend: BackendName
    members: tuple[Member, ...]


@dataclasses.dataclass(frozen=True)
class Packed:
    """A verified ladder program and each entry point's figures, by entry point name."""

    program: LoweredProgram
    evaluations: dict[str, Evaluations]


def _key(lowerer: Lowerer, job: PackJob) -> str:
    members = [(m.entry_point, m.rung.quantized_digest, list(m.verified.float_modules)) for m in job.members]
    example_shape = (1, *lowerer.calibration.shape[1:])
    inputs = (members, lowerer.calibration_digest, example_shape, lowerer.tools, lowerer.ends(job.backend))
    return stage_key("program", job.backend.value, lowerer.quantization.value, *inputs)


def _entry_from_json(stored: dict[str, object]) -> EntryPoint:
    """An entry point as ``dataclasses.asdict`` stored it."""
    return EntryPoint(
        str(stored["name"]),
        DelegationReport(**stored["delegation"]),  # type: ignore[arg-type]
        quantization_from_json(stored["input_quantization"]),
        quantization_from_json(stored["output_quantization"]),
        stored.get("planned_memory"),  # type: ignore[arg-type]
        stored["input_layout"],  # type: ignore[arg-type]
    )


def _compile(lowerer: Lowerer, job: PackJob) -> LoweredProgram:
    """``job``'s program, from the cache or the toolchain."""
    key = _key(lowerer, job)
    data, meta = lowerer.cache.load_bytes(key), lowerer.cache.load_json(key)
    if data is not None and meta is not None:
        return LoweredProgram(data, tuple(_entry_from_json(entry) for entry in meta["entries"]))
    backend = get_backend(job.backend)
    example = lowerer.calibration[:1]
    quantizer = backend.int8_quantizer() if lowerer.quantization is Quantization.INT8 else None

    def graph(member: Member) -> nn.Module:
        """The graph ``member``'s own artifact was compiled from (``Lowerer``: float, or int8 from the observers
        and corrected biases lowering stored, or calibrated again when the cache kept none)."""
        if quantizer is None:
            return member.rung.model
        return Graphs(member.rung, backend, lowerer.observations).int8(member.verified.float_modules)[0]

    with captured() as output:
        try:
            graphs = {member.entry_point: graph(member) for member in job.members}
            program = backend.compile_program(graphs, example, quantizer, lowerer.ends(job.backend).pixels)
        except Exception as exc:  # any toolchain failure: keep the toolchain's words
            raise BuildError(
                f"{job.backend.value} ladder program: lowering failed: {type(exc).__name__}: {exc}\n{output.tail()}"
            ) from None
    _store_program(lowerer, key, program)
    return program


def _store_program(lowerer: Lowerer, key: str, program: LoweredProgram) -> None:
    lowerer.cache.save_bytes(key, program.data)
    lowerer.cache.save_json(key, {"entries": [dataclasses.asdict(entry) for entry in program.entry_points]})


def _record(lowerer: Lowerer, job: PackJob, packed: Packed) -> None:
    """Store ``job``'s program and its entry points' figures (what a remote worker cannot)."""
    _store_program(lowerer, _key(lowerer, job), packed.program)
    sha256 = hashlib.sha256(packed.program.data).hexdigest()
    for entry_point, evaluations in packed.evaluations.items():
        lowerer.verifier.record(sha256, entry_point, evaluations)


def pack(lowerer: Lowerer, job: PackJob) -> Packed:
    """``job``'s members in one program, each entry point verified to compute what its rung's own file does.

    BuildError when the toolchain fails, or when an entry point's figures on either held-out split differ from
    its rung's own artifact's (which would mean the program is not the ladder that was verified and judged).
    """
    program = _compile(lowerer, job)
    backend = get_backend(job.backend)
    evaluations = {}
    for member in job.members:
        label = f"{member.rung.id} {job.backend.value} (ladder program)"
        figures = lowerer.verifier.evaluate(program.data, backend, member.eager, label, member.entry_point)
        if figures != member.verified.evaluation:
            own, packed = member.verified.evaluation.validation, figures.validation
            raise BuildError(
                f"{label}: entry point {member.entry_point!r} does not compute what the rung's own artifact does "
                f"(validation top-1 {packed.accuracy}% vs {own.accuracy}%, agreement {packed.agreement}% vs "
                f"{own.agreement}%, largest logit difference {packed.max_logit_diff} vs {own.max_logit_diff})"
            )
        evaluations[member.entry_point] = figures
    return Packed(program, evaluations)


def pack_all(lowerer: Lowerer, jobs: list[PackJob]) -> dict[BackendName, Packed]:
    """Every job's program, backends side by side as jobs of the lowerer's executor."""
    count = lowerer.slots(len(jobs))
    packed: dict[BackendName, Packed] = {}
    results = lowerer.executor.run_all(pack, lowerer.for_workers(count), jobs, count)
    with (
        status(f"packing {len(jobs)} ladder programs with the {lowerer.executor.name} executor"),
        closing(results),
    ):
        for index, result in results:
            if lowerer.executor.remote:
                _record(lowerer, jobs[index], result)
            packed[jobs[index].backend] = result
            data = result.program.data
            step(
                f"ladder program {jobs[index].backend.value}: {len(jobs[index].members)} entry "
                f"points, {len(data) / 1e6:.2f} MB, sha256 {hashlib.sha256(data).hexdigest()[:12]}"
            )
    return packed
