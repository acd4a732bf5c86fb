"""Content-addressed cache of stage results: a change to any input of a stage changes its key.

restnetc's own source is an input of every stage: keys carry a digest of the package's Python files, so an
edited compiler (a development checkout, a patched install) never reuses what an older one stored under
the same version number.

Entries are dicts of tensors (``torch.save``, read back with ``weights_only=True``), raw bytes, or JSON;
every write is atomic, so an interrupted run never leaves a partial entry.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import restnetc

PACKAGE = Path(restnetc.__file__).parent
TOOLS = ("restnetc", "torch", "executorch", "litert-torch", "ai-edge-litert", "torchao", "timm")


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
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def toolchain_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an artifact (part of every artifact's cache key)."""
    return {name: importlib.metadata.version(name) for name in TOOLS}


class Cache:
    """Stage results under ``root``; a cache with ``root=None`` stores nothing."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        """The stored tensors for ``key``, or None if absent or unreadable."""
        if self.root is None:
            return None
        path = self.root / f"{key}.pt"
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store ``tensors`` for ``key``."""
        self._write(f"{key}.pt", lambda tmp: torch.save(tensors, tmp))

    def load_bytes(self, key: str) -> bytes | None:
        """Stored raw bytes for ``key``, or None."""
        if self.root is None or not (self.root / f"{key}.bin").is_file():
            return None
        return (self.root / f"{key}.bin").read_bytes()

    def save_bytes(self, key: str, data: bytes) -> None:
        """Store raw bytes for ``key``."""
        self._write(f"{key}.bin", lambda tmp: Path(tmp).write_bytes(data))

    def load_json(self, key: str) -> Any:
        """Stored JSON value for ``key``, or None."""
        if self.root is None:
            return None
        try:
            return json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def save_json(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value for ``key``."""
        self._write(f"{key}.json", lambda tmp: Path(tmp).write_text(json.dumps(value)))

    def _write(self, name: str, write: Callable[[str], object]) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        os.close(handle)
        try:
            write(tmp)
            os.replace(tmp, self.root / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
