"""restnetc as a Python library: ``build``, ``search`` and ``inspect``, the CLI's main commands as typed functions.

Contract, for every function here:
- it runs in the calling process (lowering and verification jobs in worker processes or on Ray, as
  ``executor`` says) and returns the typed result the CLI prints;
- bad input (a config file, a field, a bundle) raises a ``restnetc.errors.RestnetcError`` subclass whose
  message names the file and field; nothing is written then;
- progress and warnings go to the ``restnetc`` logger (``logging``), which has only a ``NullHandler``: the
  caller decides what is shown. (ExecuTorch's XNNPACK partitioner calls ``logging.basicConfig(level=WARNING)``
  when first imported, so after a build has used it, warnings reach stderr through the root logger unless the
  caller configured logging first.)

``target`` and ``project`` take a YAML path or an already validated config; ``project=None`` means
``./restnetc.yaml`` if present, else the built-in demo, as on the command line. Not thread-safe: call one at a
time per process (the stage cache is safe to share between processes); under torchrun, use the CLI, which
shares the work between ranks (here every rank would run the whole job).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from restnetc.backends import get_backend
from restnetc.bundle.integrity import verify_files
from restnetc.bundle.manifest import Manifest, read_manifest
from restnetc.cache import Cache
from restnetc.config import ProjectConfig, TargetConfig, load_project, load_target
from restnetc.data.check import check_subsets
from restnetc.errors import ConfigError, DataError
from restnetc.models.factory import with_model_normalization
from restnetc.pipeline.build import BuildResult, raw_pixel_inputs, run_build
from restnetc.pipeline.search import run_search
from restnetc.results import SearchResult
from restnetc.workers import executor_for

__all__ = ["BuildResult", "Inspection", "SearchResult", "build", "inspect", "search"]


@dataclasses.dataclass(frozen=True)
class Inspection:
    """A bundle whose every artifact file matched its manifest entry (size and sha256) when inspected."""

    bundle: Path
    manifest: Manifest
    sizes: dict[str, int]
    """Bytes on disk per artifact file (relative to the bundle)."""
    operators: dict[tuple[str, str], dict[str, int]] | None
    """When asked for: per (artifact id, backend), how often its entry point calls each operator, read from
    its file by the backend's own names; else None."""


def _target(target: str | Path | TargetConfig) -> TargetConfig:
    return target if isinstance(target, TargetConfig) else load_target(Path(target))


def _project(project: str | Path | ProjectConfig | None) -> ProjectConfig:
    """The project, with ``data.normalization`` from its models when omitted."""
    if not isinstance(project, ProjectConfig):
        project = load_project(None if project is None else Path(project))[0]
    return with_model_normalization(project)


def check_targets(project: ProjectConfig, targets: Sequence[tuple[TargetConfig, Path | None]]) -> None:
    """Every target's images taken from the project's training images fit there (reads no data), and the
    image input each target asks of its artifacts fits the project's normalisation; the ``DataError`` or
    ``ConfigError`` names the target file when there is one."""
    for config, path in targets:
        try:
            check_subsets(project, config)
            raw_pixel_inputs(project, config)
        except (DataError, ConfigError) as error:
            raise type(error)(f"{path}: {error}" if path is not None else str(error)) from None


def search(
    target: str | Path | TargetConfig,
    project: str | Path | ProjectConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    executor: str = "local",
) -> SearchResult:
    """CKA search, a stitch point per budget and stitching-layer fine-tuning (``restnetc search``, without
    writing its outputs). ``cache_dir``: the stage cache (default ``$RESTNETC_CACHE`` or
    ``~/.cache/restnetc``); ``use_cache=False`` recomputes every stage. ``executor``: as ``--executor``."""
    target_config, project_config = _target(target), _project(project)
    jobs = executor_for(executor)
    jobs.open()
    return run_search(project_config, target_config, Cache.at(cache_dir, enabled=use_cache), executor=jobs)


def build(
    target: str | Path | TargetConfig,
    project: str | Path | ProjectConfig | None = None,
    *,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    executor: str = "local",
) -> BuildResult:
    """Search, lower and verify every rung with every backend of ``target`` into the bundle ``out`` (default
    ``dist/<target name>``), which appears only if every stage succeeds (``restnetc build``). Other
    arguments as for ``search``."""
    target_config, project_config = _target(target), _project(project)
    check_targets(project_config, [(target_config, None if isinstance(target, TargetConfig) else Path(target))])
    jobs = executor_for(executor)
    jobs.open()
    cache = Cache.at(cache_dir, enabled=use_cache)
    return run_build(project_config, target_config, cache, None if out is None else Path(out), executor=jobs)


def inspect(bundle: str | Path, *, operators: bool = False) -> Inspection:
    """Read ``bundle``'s manifest and verify every artifact file against it (``restnetc inspect``);
    ``BundleError`` naming each file that does not match. ``operators``: also count the operators each entry
    point calls, from its file."""
    root = Path(bundle)
    manifest = read_manifest(root)
    sizes = verify_files(root, manifest)
    counts = None
    if operators:
        backends = {name: get_backend(name) for name in {a.backend for a in manifest.artifacts}}
        counts = {
            (a.id, a.backend): backends[a.backend].operators((root / a.file).read_bytes(), a.entry_point)
            for a in manifest.artifacts
        }
    return Inspection(root, manifest, sizes, counts)
