"""``bundle.index``: the compact form of ``manifest.json`` that the runtime shim (``runtime_shim/``) reads.

It is derived from the manifest every time the manifest is written, so the two always agree; a C parser
of a line format is smaller and safer than a JSON parser on a device. Format, one record per line:

    restnet-bundle-index 4
    identity HEX                            (sha256 of every byte after this line)
    input shape=1,3,64,64 mean=0.498,0.498,0.498 std=0.502,0.502,0.502 resize=bilinear|bicubic
    label <class name>                      (one per class, in class order)
    artifact id=... backend=... file=... bytes=N sha256=HEX memory=N program=N accuracy=PCT params=N
             entry=NAME in=DTYPE:SCALE:ZERO_POINT out=DTYPE:SCALE:ZERO_POINT layout=NCHW|NHWC
             packing=shared|own                                                      (one line)

``memory`` is the peak memory to load and run the artifact: the device figure when benchmark logs were
ingested, else the host's. ``program`` is the host's figure of what the open file holds before an entry point
loads (``memory_bytes.host.program``, one figure per file; 0 when not measured): a rung of a ladder file whose
program is open costs about ``memory - program`` more. ``layout`` is the order of the artifact's input tensor
(callers give NCHW; the shim reorders for NHWC). ``packing`` is the manifest's: ``shared`` when the compiler
checked that the file's entry points read each weight under one quantization, so the shim packs each weight
once for all of them. Readers ignore keys they do not know, so keys that change nothing for an old reader can
be added within a version (``program`` was, an index without it reads as 0; ``packing`` too, read as ``own``);
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
from restnetc.bundle.manifest import Artifact, Manifest, Quantization
from restnetc.shim_abi import ARTIFACT_KEYS, FLOAT32, INDEX_VERSION

INDEX_NAME = "bundle.index"


def memory_need(artifact: Artifact) -> int:
    """Bytes the runtime needs for ``artifact``: measured on the device if known, else on the host."""
    device = artifact.memory_bytes.device
    if device is not None and device.peak is not None:
        return device.peak
    return artifact.memory_bytes.host.peak_delta


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


_VALUES: dict[str, Callable[[Artifact], object]] = {
    "id": lambda a: a.id,
    "backend": lambda a: a.backend,
    "file": lambda a: a.file,
    "bytes": lambda a: a.bytes,
    "sha256": lambda a: a.sha256,
    "memory": memory_need,
    "program": lambda a: a.memory_bytes.host.program or 0,
    "accuracy": lambda a: f"{a.accuracy.artifact:.3f}",
    "params": lambda a: a.params,
    "entry": lambda a: a.entry_point,
    "in": lambda a: _quantization(a.input.quantization),
    "out": lambda a: _quantization(a.input.output_quantization),
    "layout": lambda a: a.input.layout,
    "packing": lambda a: a.packing,
}
"""Where each value of an artifact line comes from in the manifest, for every key of the record."""
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
    for a in manifest.artifacts:
        lines.append("artifact " + " ".join(f"{key}={_token(value(a))}" for key, value in _VALUES.items()))
    return seal("\n".join(lines) + "\n")


def write_index(bundle: Path, manifest: Manifest) -> None:
    """Replace ``bundle/bundle.index`` atomically."""
    write_text_atomic(bundle / INDEX_NAME, render_index(manifest))
