"""Content-addressed cache of stage results: a change to any input of a stage changes its key.

restnetc's own source is an input of every stage: keys carry a digest of the package's Python files, so an
edited compiler (a development checkout, a patched install) never reuses what an older one stored under
the same version number.

Entries are dicts of tensors (``torch.save``, read back with ``weights_only=True``), raw bytes (lowered
artifacts), or JSON. Every entry is one file, written atomically: a header line with the sha256 of the
payload, then the payload. An entry that cannot be read, whose payload does not match its sha256 (a
flipped byte, a truncation), that has no header (written by an older restnetc), or that does not decode
is a miss: the cache prints a CACHE WARNING naming the file, and the caller recomputes and overwrites it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

import restnetc
from restnetc.atomic import write_bytes_atomic
from restnetc.progress import warn

T = TypeVar("T")
PACKAGE = Path(restnetc.__file__).parent
TOOLS = ("restnetc", "torch", "executorch", "litert-torch", "ai-edge-litert", "flatbuffers", "torchao", "timm")


def default_cache_dir() -> Path:
    """``$RESTNETC_CACHE``, else ``$XDG_CACHE_HOME/restnetc``, else ``~/.cache/restnetc``."""
    if env := os.environ.get("RESTNETC_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "restnetc"


def source_digest(package: Path) -> str:
    """sha256 over the Python files (relative paths and contents) under ``package``."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _compiler_digest() -> str:
    return source_digest(PACKAGE)


def stage_key(stage: str, *inputs: Any) -> str:
    """A key for ``stage`` over JSON-serialisable ``inputs`` and restnetc's source digest (which covers its version)."""
    payload = json.dumps([stage, _compiler_digest(), *inputs], sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


def weights_digest(model: nn.Module) -> str:
    """sha256 over every parameter and buffer (names, shapes, values): identifies the model for caches."""
    return tensors_digest(model.state_dict())


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over named tensors (names, shapes, values), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def toolchain_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an artifact (part of every artifact's cache key)."""
    return {name: importlib.metadata.version(name) for name in TOOLS}


_MAGIC = b"restnetc-cache sha256:"
_HEADER_BYTES = len(_MAGIC) + 64 + 1
"""The header line: the magic, the payload's sha256 in hex, a newline."""


def warn_recompute(entry: str, problem: str) -> None:
    """Warn that ``entry`` is not used because of ``problem``, and will be recomputed."""
    warn(f"CACHE WARNING {entry}: {problem}; recomputing it")


class Cache:
    """Stage results under ``root``; a cache with ``root=None`` stores nothing, and one not ``writable`` (a
    data-parallel rank other than the first) reads entries but never writes one.

    Every ``load_*`` returns None for an absent entry and for a damaged one (after a CACHE WARNING).
    """

    def __init__(self, root: Path | None, *, writable: bool = True) -> None:
        self.root = root
        self.writable = writable

    @staticmethod
    def at(directory: str | Path | None, *, enabled: bool = True, writable: bool = True) -> Cache:
        """The cache under ``directory`` (None: ``default_cache_dir()``), or one that stores nothing when not
        ``enabled``: what ``--cache-dir`` / ``--no-cache`` and the API's ``cache_dir`` / ``use_cache`` mean."""
        if not enabled:
            return Cache(None, writable=writable)
        return Cache(Path(directory) if directory is not None else default_cache_dir(), writable=writable)

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        """The stored tensors for ``key``, or None."""
        return self._decode(f"{key}.pt", _tensors)

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store ``tensors`` for ``key``."""
        self._write(f"{key}.pt", _saved(tensors))

    def save_first(self, key: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Store ``tensors`` for ``key`` unless a sound entry is there already, and return what the entry holds
        (``tensors`` when the cache keeps nothing): writers racing to store one key all end up with the first
        one's tensors, so what they make from them agrees."""
        name, payload = f"{key}.pt", _saved(tensors)
        if self._write(name, payload, replace=False) or self.root is None or not self.writable:
            return tensors
        if (stored := self.load(key)) is not None:
            return stored
        self._write(name, payload)  # the entry there is damaged (warned of): replace it
        return tensors

    def load_bytes(self, key: str) -> bytes | None:
        """Stored raw bytes for ``key``, or None."""
        return self._read(f"{key}.bin")

    def save_bytes(self, key: str, data: bytes) -> None:
        """Store raw bytes for ``key``."""
        self._write(f"{key}.bin", data)

    def load_json(self, key: str) -> Any:
        """Stored JSON value for ``key``, or None."""
        return self._decode(f"{key}.json", json.loads)

    def save_json(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value for ``key``."""
        self._write(f"{key}.json", json.dumps(value).encode())

    def _read(self, name: str) -> bytes | None:
        """The payload of entry ``name`` if it is present and matches its sha256."""
        if self.root is None:
            return None
        path = self.root / name
        try:
            return _payload(path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            problem = f"unreadable ({exc.strerror or exc})"
        except ValueError as exc:
            problem = str(exc)
        warn_recompute(str(path), problem)
        return None

    def _decode(self, name: str, decode: Callable[[bytes], T]) -> T | None:
        """The payload of entry ``name`` decoded, or None if it is absent, damaged or does not decode."""
        payload = self._read(name)
        if payload is None:
            return None
        try:
            return decode(payload)
        except Exception as exc:  # whatever a decoder raises on bytes it cannot take, the entry is a miss
            assert self.root is not None
            warn_recompute(str(self.root / name), f"does not decode ({type(exc).__name__})")
            return None

    def _write(self, name: str, payload: bytes, replace: bool = True) -> bool:
        """Replace entry ``name`` (without ``replace``: only if absent) with the header and ``payload``,
        atomically, readable by the owner only (not fsynced: a torn entry fails its digest and is recomputed);
        whether it was written."""
        if self.root is None or not self.writable:
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        header = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
        return write_bytes_atomic(self.root / name, header, payload, durable=False, mode=0o600, replace=replace)


def _payload(entry: bytes) -> bytes:
    """The payload of a stored entry; ValueError if its header is missing or its sha256 does not match."""
    header, payload = entry[:_HEADER_BYTES], entry[_HEADER_BYTES:]
    if not header.startswith(_MAGIC) or not header.endswith(b"\n"):
        raise ValueError("no sha256 header (damaged, or written by an older restnetc)")
    if header[len(_MAGIC) : -1] != hashlib.sha256(payload).hexdigest().encode():
        raise ValueError("content does not match its sha256 (damaged or truncated)")
    return payload


def _saved(tensors: dict[str, torch.Tensor]) -> bytes:
    """The payload of an entry of ``tensors`` (``_tensors`` reads it back)."""
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getvalue()


def _tensors(payload: bytes) -> dict[str, torch.Tensor]:
    """A ``torch.save``d dict of tensors, loaded with ``weights_only=True``; anything else raises ValueError."""
    data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or not all(isinstance(value, torch.Tensor) for value in data.values()):
        raise ValueError("not a dict of tensors")
    return data
