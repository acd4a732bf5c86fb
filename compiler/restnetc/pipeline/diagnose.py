"""``restnetc diagnose``: where int8 loses, per rung and backend (``bundle.diagnosis``), on the build's own inputs.

The search comes from the stage cache when a build or search of the same project and target ran; each rung is
calibrated on the target's calibration images, as a build calibrates it, and judged on validation images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from restnetc.backends import get_backend, list_backends
from restnetc.bundle.diagnosis import Diagnosis, diagnose
from restnetc.bundle.ladder import ladder
from restnetc.cache import Cache
from restnetc.config.project import ProjectConfig
from restnetc.config.target import TargetConfig
from restnetc.errors import RestnetcError
from restnetc.pipeline.search import run_search
from restnetc.progress import step


@dataclass(frozen=True)
class RungDiagnosis:
    """One rung's diagnosis under one backend (``diagnosis.backend``)."""

    rung: str
    diagnosis: Diagnosis


def run_diagnosis(
    project: ProjectConfig,
    target: TargetConfig,
    cache: Cache,
    rungs: Sequence[str] = (),
    backends: Sequence[str] = (),
    images: int = 512,
) -> list[RungDiagnosis]:
    """Diagnose the rungs named in ``rungs`` (default: every rung of the ladder) under each of ``backends``
    (registered names, default: the target's) on the first ``images`` validation images. RestnetcError names
    an unknown backend (before any work) or rung."""
    unknown_backends = [name for name in backends if name not in list_backends()]
    if unknown_backends:
        raise RestnetcError(f"no backend {', '.join(unknown_backends)} (registered: {', '.join(list_backends())})")
    search = run_search(project, target, cache, build=True)
    ladder_rungs = {rung.id: rung for rung in ladder(search)}
    unknown = [name for name in rungs if name not in ladder_rungs]
    if unknown:
        raise RestnetcError(f"no rung {', '.join(unknown)} in the ladder (it has: {', '.join(ladder_rungs)})")
    calibration = search.train.images[: target.runtime.calibration_images]
    validation = search.validation
    results = []
    for name in backends or [backend.value for backend in target.runtime.backends]:
        backend = get_backend(name)
        for rung_id in rungs or list(ladder_rungs):
            rung = ladder_rungs[rung_id]
            diagnosis = diagnose(
                rung.model, backend, calibration, validation.images[:images], validation.labels[:images], rung.donor
            )
            step(f"diagnosed {rung_id} {backend.name} int8 over {len(diagnosis.units)} units")
            results.append(RungDiagnosis(rung_id, diagnosis))
    return results
