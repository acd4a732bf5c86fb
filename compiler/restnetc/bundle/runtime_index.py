"""``bundle.index``: the compact form of ``manifest.json`` that the runtime shim (``runtime_shim/``) reads.

It is derived from the manifest every time the manifest is written, so the two always agree; a C parser
of a line format is smaller and safer than a JSON parser on a device. Format, one record per line:

    restnet-bundle-index 4
    identity HEX                            (sha256 of every byte after this line)
    input shape=1,3,64,64 mean=0.498,0.498,0.498 std=0.502,0.502,0.502 resize=bilinear|bicubic
    label <class name>                      (one per class, in class order)
    runtime threads=N                       (the target's threads: what the shim gives each runtime)
    artifact id=... backend=... file=... bytes=N sha256=HEX memory=N program=N accuracy=PCT params=N
             entry=NAME in=DTYPE:SCALE:ZERO_POINT out=DTYPE:SCALE:ZERO_POINT layout=NCHW|NHWC
             packing=shared|own rank=N                                               (one line)

``memory`` is the peak memory to load and run the artifact: the device figure when benchmark logs were
ingested, else the host's. ``program`` is the host's figure of what the open file holds before an entry point
loads (``memory_bytes.host.program``, one figure per file; 0 when not measured): a rung of a ladder file whose
program is open costs about ``memory - program`` more. ``layout`` is the order of the artifact's input tensor
(callers give NCHW; the shim reorders for NHWC). ``packing`` is the manifest's: ``shared`` when the compiler
checked that the file's entry points read each weight under one quantization, so the shim packs each weight
once for all of them. ``rank`` is the artifact's place in the build's ship order (``ship_ranks``): the shim
prefers a higher rank, then accuracy. Readers ignore keys they do not know, so keys that change nothing for an
old reader can be added within a version (``program`` was, an index without it reads as 0; ``packing`` too,
read as ``own``; ``rank`` too, read as 0: an old shim chooses by accuracy alone, a preference, not a misreading;
the ``runtime`` record too: an old shim skips a record kind it does not know and runs each runtime at its default
threads, slower perhaps, never wrong);
``layout`` could not (an old shim would feed an NHWC model NCHW), so it came with version 3, and ``resize``
neither (an old image tool would resize otherwise than the model was trained), so it came with version 4. The
identity lets the shim refuse an edited or truncated index and notice a bundle replaced under a running app; ids,
files and entry points are limited to ``[A-Za-z0-9._/-]``-style sets and labels carry no control characters,
as the shim's strict parser requires. The artifact keys, their order and the version are ``restnetc.shim_abi``'s;
this module only says where each value comes from in the manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from restnetc.atomic import write_text_atomic
from restnetc.bundle.manifest import Artifact, BundleError, Manifest, Quantization
from restnetc.bundle.recommend import ladder_policy, ship_path
from restnetc.config.target import LadderPolicy, Metric
from restnetc.shim_abi import ARTIFACT_KEYS, FLOAT32, INDEX_VERSION, MAX_THREADS

INDEX_NAME = "bundle.index"


def memory_need(artifact: Artifact) -> int:
    """Bytes the runtime needs for ``artifact``: measured on the device if known, else on the host."""
    device = artifact.memory_bytes.device
    if device is not None and device.peak is not None:
        return device.peak
    return artifact.memory_bytes.host.peak_delta


def ship_ranks(manifest: Manifest) -> dict[tuple[str, str], int]:
    """Each artifact's rank in the shim's selection order (index ``rank``), by ``(id, backend)``: ``backend_ranks``
    for each backend, under the target's ladder policy."""
    try:
        ladder = ladder_policy(manifest)
    except ValueError as exc:
        raise BundleError(f"manifest.json: target: ladder: {str(exc).splitlines()[0]}") from None
    backends = dict.fromkeys(a.backend for a in manifest.artifacts)
    return {
        (artifact_id, backend): rank
        for backend in backends
        for artifact_id, rank in backend_ranks([a for a in manifest.artifacts if a.backend == backend], ladder).items()
    }


def backend_ranks(artifacts: list[Artifact], ladder: LadderPolicy) -> dict[str, int]:
    """Ranks of one backend's ``artifacts`` by id: ``recommend``'s rule walked along ``memory_need`` (the index's
    own ``memory``, the device's figure once ingested, whatever the target's cost source; figures within
    ``ladder.measured_slack`` above a step's cheapest count as one step, ``ship_path``). The first artifact the
    walk ships ranks 1, each next one it moves to one more, so a device running the highest rank that fits its
    memory runs what the rule ships within that memory (down to the step below, inside a step's noise band). An
    artifact the walk never ships ranks 0."""
    shipped = list(dict.fromkeys(a.id for _, a in ship_path(artifacts, memory_need, Metric.MEMORY_MB, ladder)))
    return {a.id: shipped.index(a.id) + 1 if a.id in shipped else 0 for a in artifacts}


def _runtime_lines(manifest: Manifest) -> list[str]:
    """The ``runtime`` record: the target's ``runtime.threads`` from the manifest's copy of the target (none if it
    has no such figure: the shim then runs each runtime at its default)."""
    runtime = manifest.target.get("runtime")
    threads = runtime.get("threads") if isinstance(runtime, dict) else None
    if threads is None:
        return []
    if type(threads) is not int or not 1 <= threads <= MAX_THREADS:
        raise BundleError(f"manifest.json: target: runtime: threads: expected 1 to {MAX_THREADS}, got {threads!r}")
    return [f"runtime threads={threads}"]


def _token(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"index value {text!r} is empty or contains whitespace")
    return text


def _quantization(spec: Quantization | None) -> str:
    q = spec or Quantization(dtype=FLOAT32.dtype, scale=FLOAT32.scale, zero_point=FLOAT32.zero_point)
    return f"{q.dtype}:{q.scale:.9g}:{q.zero_point}"


def _floats(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:.9g}" for v in values)


def _label(label: str) -> str:
    """``label`` with runs of whitespace as one space; any other control character is refused."""
    text = " ".join(label.split())
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"label {label!r} contains a control character")
    return text


_VALUES: dict[str, Callable[[Artifact, int], object]] = {
    "id": lambda a, _: a.id,
    "backend": lambda a, _: a.backend,
    "file": lambda a, _: a.file,
    "bytes": lambda a, _: a.bytes,
    "sha256": lambda a, _: a.sha256,
    "memory": lambda a, _: memory_need(a),
    "program": lambda a, _: a.memory_bytes.host.program or 0,
    "accuracy": lambda a, _: f"{a.accuracy.artifact:.3f}",
    "params": lambda a, _: a.params,
    "entry": lambda a, _: a.entry_point,
    "in": lambda a, _: _quantization(a.input.quantization),
    "out": lambda a, _: _quantization(a.input.output_quantization),
    "layout": lambda a, _: a.input.layout,
    "packing": lambda a, _: a.packing,
    "rank": lambda _, rank: rank,
}
"""Where each value of an artifact line comes from, given the artifact and its ``ship_ranks`` rank, for every key
of the record."""
if tuple(_VALUES) != ARTIFACT_KEYS:
    raise RuntimeError(f"bundle.index writer keys {tuple(_VALUES)} differ from shim_abi.ARTIFACT_KEYS {ARTIFACT_KEYS}")


def seal(body: str) -> str:
    """The index text for ``body`` (its lines after the identity): version line, identity, body."""
    identity = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f"restnet-bundle-index {INDEX_VERSION}\nidentity {identity}\n{body}"


def render_index(manifest: Manifest) -> str:
    """The text of ``bundle.index`` for ``manifest``."""
    first = manifest.artifacts[0].input
    lines = [
        f"input shape={','.join(str(d) for d in first.shape)} mean={_floats(first.normalization['mean'])} "
        f"std={_floats(first.normalization['std'])} resize={first.resize}",
    ]
    lines += [f"label {_label(label)}" for label in manifest.labels]
    lines += _runtime_lines(manifest)
    ranks = ship_ranks(manifest)
    for a in manifest.artifacts:
        rank = ranks[(a.id, a.backend)]
        lines.append("artifact " + " ".join(f"{key}={_token(value(a, rank))}" for key, value in _VALUES.items()))
    return seal("\n".join(lines) + "\n")


def write_index(bundle: Path, manifest: Manifest) -> None:
    """Replace ``bundle/bundle.index`` atomically."""
    write_text_atomic(bundle / INDEX_NAME, render_index(manifest))
