"""``restnetc bench run``: re-measure every artifact of a bundle on this machine and update its manifest.

Latency uses the target's protocol (warm-up, then timed runs interleaved across all artifacts) and thread
count; memory is probed in a separate process per artifact. Files are verified against the manifest first,
so a tampered bundle is refused rather than measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from restnetc.budget.measure import TimedEntry, measure_latency, measure_memory
from restnetc.bundle.integrity import check_files
from restnetc.bundle.manifest import BundleError, Manifest, safe_path
from restnetc.config.target import TargetConfig


def remeasure(bundle: Path, manifest: Manifest) -> Manifest:
    """``manifest`` with every artifact's ``latency_ms.host`` and ``memory_bytes.host`` measured again here."""
    if bad := [check for check in check_files(bundle, manifest) if check.problem is not None]:
        raise BundleError(f"{bundle}: {bad[0].file}: {bad[0].problem}; refusing to measure a damaged bundle")
    target = TargetConfig.model_validate(manifest.target)
    threads = target.runtime.host_threads()
    paths = {f"{a.id}/{a.backend}": safe_path(bundle, a.file) for a in manifest.artifacts}
    entries = {
        key: TimedEntry(a.backend, paths[key], np.zeros(a.input.shape, dtype=np.float32), a.entry_point)
        for a in manifest.artifacts
        for key in [f"{a.id}/{a.backend}"]
    }
    latency = measure_latency(entries, target.measurement, threads)
    memories = {
        key: measure_memory(a.backend, paths[key], a.input.shape, threads, a.entry_point)
        for a in manifest.artifacts
        for key in [f"{a.id}/{a.backend}"]
    }
    resident: dict[str, int] = {}  # one program figure per file, as the build gives it: the largest entry's probe
    for a in manifest.artifacts:
        resident[a.file] = max(resident.get(a.file, 0), memories[f"{a.id}/{a.backend}"].program or 0)
    artifacts = []
    for a in manifest.artifacts:
        host = latency[f"{a.id}/{a.backend}"]
        memory = memories[f"{a.id}/{a.backend}"].model_copy(update={"program": resident[a.file]})
        update = {
            "latency_ms": a.latency_ms.model_copy(update={"host": host}),
            "memory_bytes": a.memory_bytes.model_copy(update={"host": memory}),
        }
        artifacts.append(a.model_copy(update=update))
    return manifest.model_copy(update={"artifacts": artifacts})
