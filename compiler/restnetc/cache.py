"""Content-addressed cache of stage results: a change to any input of a stage changes its key.

Entries are dicts of tensors written atomically with ``torch.save`` and read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

import restnetc


def default_cache_dir() -> Path:
    """``$RESTNETC_CACHE``, else ``$XDG_CACHE_HOME/restnetc``, else ``~/.cache/restnetc``."""
    if env := os.environ.get("RESTNETC_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "restnetc"


def stage_key(stage: str, *inputs: Any) -> str:
    """A key for ``stage`` over JSON-serialisable ``inputs`` (and the restnetc version)."""
    payload = json.dumps([stage, restnetc.__version__, *inputs], sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


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
        """Store ``tensors`` for ``key`` (atomically: readers never see a partial file)."""
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        os.close(handle)
        try:
            torch.save(tensors, tmp)
            os.replace(tmp, self.root / f"{key}.pt")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
