"""Python face of the runtime shim: open a bundle, probe memory, pick and run a variant, through the same C core.

The core (``runtime_shim/src``) and its LiteRT backend are compiled into this package as ``_shim.so`` (CMake
target ``restnetc_shim``, built by scikit-build-core at install) and called with ctypes; nothing here
re-implements selection, validation, quantization or switching. The ExecuTorch backend is C++ linked against the
ExecuTorch runtime, so it is not built into the package: pass the path of a ``librestnet_shim_executorch.so``
built with CMake. The ctypes mirrors of the header's structures live in ``restnetc.shim_abi``.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restnetc.errors import RestnetcError
from restnetc.shim_abi import (
    ARTIFACT_RECORD,
    DEFAULT_HEADROOM_BYTES,
    MAX_THREADS,
    Artifact,
    BackendTable,
    Error,
    ExecutorchOptions,
    InputLayout,
    InputSpec,
    LitertOptions,
    MemoryFigures,
    Policy,
    Quantization,
    SelectionRecord,
    TensorQuantization,
)
from restnetc.shim_abi import DEFAULT_HYSTERESIS as DEFAULT_HYSTERESIS
from restnetc.shim_abi import PackingPolicy as PackingPolicy
from restnetc.units import MIB

NO_CHOICE = ctypes.c_size_t(-1).value
DEFAULT_HEADROOM_MB = DEFAULT_HEADROOM_BYTES / MIB
"""Memory kept free beside a variant, MiB (the C core's ``RS_DEFAULT_HEADROOM_BYTES``)."""


class ShimError(RestnetcError):
    """The C core reported an error; ``status`` is its status name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _library() -> ctypes.CDLL:
    # Located as a module so that an editable install (whose built files live outside the source tree) finds it;
    # it is a plain shared library, never imported.
    spec = importlib.util.find_spec("restnetc._shim")
    if spec is None or spec.origin is None:
        raise RestnetcError("restnetc's runtime shim core is not built: reinstall restnetc (pip install -e .)")
    lib = ctypes.CDLL(spec.origin)
    handle, error = ctypes.c_void_p, ctypes.POINTER(Error)
    signatures: dict[str, tuple[object, list[object]]] = {
        "rs_bundle_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(handle), error]),
        "rs_bundle_close": (None, [handle]),
        "rs_bundle_artifact_count": (ctypes.c_size_t, [handle]),
        "rs_bundle_artifact": (ctypes.POINTER(Artifact), [handle, ctypes.c_size_t]),
        "rs_bundle_validate": (ctypes.c_int, [handle, ctypes.c_size_t, error]),
        "rs_bundle_identity": (ctypes.c_char_p, [handle]),
        "rs_bundle_threads": (ctypes.c_int, [handle]),
        "rs_bundle_check_current": (ctypes.c_int, [handle, error]),
        "rs_probe_memory": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(MemoryFigures), error]),
        "rs_select": (
            ctypes.c_int,
            [handle, ctypes.POINTER(Policy), ctypes.c_uint64, ctypes.c_size_t, ctypes.POINTER(SelectionRecord), error],
        ),
        "rs_bundle_input": (ctypes.POINTER(InputSpec), [handle]),
        "rs_bundle_label_count": (ctypes.c_size_t, [handle]),
        "rs_bundle_label": (ctypes.c_char_p, [handle, ctypes.c_size_t]),
        "rs_litert_backend_open_with": (
            ctypes.c_int,
            [ctypes.c_char_p, ctypes.POINTER(LitertOptions), ctypes.POINTER(BackendTable), error],
        ),
        "rs_backend_close": (None, [ctypes.POINTER(BackendTable)]),
        "rs_runner_open": (
            ctypes.c_int,
            [
                handle,
                ctypes.POINTER(Policy),
                ctypes.POINTER(BackendTable),
                ctypes.c_char_p,
                ctypes.POINTER(handle),
                error,
            ],
        ),
        "rs_runner_run": (
            ctypes.c_int,
            [
                handle,
                ctypes.POINTER(ctypes.c_float),
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.c_float),
                ctypes.c_size_t,
                error,
            ],
        ),
        "rs_runner_refresh": (ctypes.c_int, [handle, ctypes.POINTER(ctypes.c_int), error]),
        "rs_runner_refresh_with": (ctypes.c_int, [handle, ctypes.c_uint64, ctypes.POINTER(ctypes.c_int), error]),
        "rs_runner_use": (ctypes.c_int, [handle, ctypes.c_char_p, error]),
        "rs_runner_preload": (ctypes.c_int, [handle, ctypes.c_char_p, error]),
        "rs_runner_resident": (ctypes.c_int, [handle, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), error]),
        "rs_runner_current": (ctypes.POINTER(Artifact), [handle]),
        "rs_runner_close": (None, [handle]),
        "rs_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "rs_verdict_name": (ctypes.c_char_p, [ctypes.c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


@functools.cache
def _lib() -> ctypes.CDLL:
    """The core, loaded and typed on first use."""
    return _library()


def _check(status: int, error: Error) -> None:
    if status != 0:
        raise ShimError(_lib().rs_status_name(status).decode(), error.message.decode(errors="replace"))


@dataclass(frozen=True)
class Memory:
    """Memory available now, bytes, and where the tightest figure came from."""

    available: int
    mem_available: int | None
    cgroup_limit: int | None
    cgroup_usage: int
    source: str


def probe_memory(root: Path | str = "/") -> Memory:
    """Memory available to this process (``root`` points at a fixture tree in tests)."""
    memory, error = MemoryFigures(), Error()
    _check(_lib().rs_probe_memory(str(root).encode(), ctypes.byref(memory), ctypes.byref(error)), error)
    unset = 2**64 - 1
    return Memory(
        available=memory.available,
        mem_available=None if memory.mem_available == unset else memory.mem_available,
        cgroup_limit=None if memory.cgroup_limit == unset else memory.cgroup_limit,
        cgroup_usage=memory.cgroup_usage,
        source=memory.source.decode(),
    )


@dataclass(frozen=True)
class Variant:
    """One artifact as the shim's index describes it: one attribute per ``rs_artifact`` member."""

    id: str
    backend: str
    file: str
    bytes: int
    sha256: str
    memory_bytes: int
    program_memory_bytes: int
    accuracy: float
    params: int
    entry_point: str
    input_quantization: TensorQuantization
    output_quantization: TensorQuantization
    input_layout: InputLayout
    shared_packing: int
    """1 when the compiler checked that the file's entry points may share packed weights (index ``packing``)."""
    rank: int
    """Place in the compiler's ship order for the backend (index ``rank``): selection prefers a higher rank."""


@dataclass(frozen=True)
class Verdict:
    """Why a variant was or was not chosen."""

    variant: Variant
    verdict: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """The chosen variant (``None`` if nothing fits) and a verdict for every variant of the bundle; ``status`` is
    the C core's status name (``ok`` or ``nothing fits``) and ``message`` its reason when nothing fits."""

    chosen: Variant | None
    available: int
    verdicts: tuple[Verdict, ...]
    status: str = "ok"
    message: str = ""


def _value(member: object) -> Any:
    """A ctypes member as Python: text decoded, quantization as a ``TensorQuantization``."""
    if isinstance(member, bytes):
        return member.decode()
    if isinstance(member, Quantization):
        return TensorQuantization(member.dtype.decode(), member.scale, member.zero_point)
    return member


def _variant(a: Artifact) -> Variant:
    return Variant(**{f.member: _value(getattr(a, f.member)) for f in ARTIFACT_RECORD})


def _policy(
    backend: str, headroom_mb: float, hysteresis: float, override: str | None, preload_neighbours: bool = False
) -> Policy:
    return Policy(
        backend.encode(),
        int(headroom_mb * MIB),
        hysteresis,
        override.encode() if override else None,
        int(preload_neighbours),
    )


class Bundle:
    """A bundle opened by the C core. Use as a context manager, or call ``close``.

    Thread safe: calls on it are serialised with ``close``, and the core locks its validation state. Closing it
    while a ``Runner`` uses it is safe: the runner holds its own reference in C until it is closed.
    """

    def __init__(self, directory: Path | str) -> None:
        self._handle, self._lock = ctypes.c_void_p(), threading.RLock()
        error = Error()
        _check(_lib().rs_bundle_open(str(directory).encode(), ctypes.byref(self._handle), ctypes.byref(error)), error)
        count = _lib().rs_bundle_artifact_count(self._handle)
        self.variants = tuple(_variant(_lib().rs_bundle_artifact(self._handle, i).contents) for i in range(count))
        n, c, h, w = _lib().rs_bundle_input(self._handle).contents.shape
        self.input_shape: tuple[int, int, int, int] = (n, c, h, w)
        """N, C, H, W of the float32 input every variant takes."""
        labels = range(_lib().rs_bundle_label_count(self._handle))
        self.labels = tuple(_lib().rs_bundle_label(self._handle, i).decode() for i in labels)

    @property
    def handle(self) -> ctypes.c_void_p:
        """The C ``rs_bundle *`` (for the runner); valid until ``close``."""
        if not self._handle:
            raise ShimError("argument", "the bundle is closed")
        return self._handle

    def validate(self, variant_id: str, backend: str) -> None:
        """Raise ``ShimError`` unless the variant's file is inside the bundle with the indexed size and sha256."""
        index = next(i for i, v in enumerate(self.variants) if (v.id, v.backend) == (variant_id, backend))
        error = Error()
        with self._lock:
            _check(_lib().rs_bundle_validate(self.handle, index, ctypes.byref(error)), error)

    @property
    def threads(self) -> int:
        """The threads the compiler's target gives each runtime (the index's ``runtime`` record); 0 when it does not
        say."""
        with self._lock:
            return int(_lib().rs_bundle_threads(self.handle))

    @property
    def identity(self) -> str:
        """sha256 of the index's content: changes with any artifact, label or figure."""
        with self._lock:
            return str(_lib().rs_bundle_identity(self.handle).decode())

    def check_current(self) -> None:
        """Raise ``ShimError`` (status "bundle replaced") if the directory no longer holds this bundle."""
        error = Error()
        with self._lock:
            _check(_lib().rs_bundle_check_current(self.handle, ctypes.byref(error)), error)

    def select(
        self,
        backend: str,
        available: int | None = None,
        *,
        memory_root: Path | str = "/",
        headroom_mb: float = DEFAULT_HEADROOM_MB,
        hysteresis: float = DEFAULT_HYSTERESIS,
        current: str | None = None,
        override: str | None = None,
    ) -> Selection:
        """The valid variant of ``backend`` that fits ``available`` bytes (probed if ``None``) and comes first in
        the ship order (``Variant.rank``, then accuracy, then less memory): what the compiler's ship rule
        recommends for that memory.

        ``current`` is the variant in use (moving up from it needs ``hysteresis`` extra room). Nothing fitting
        is not an error here: ``chosen`` is ``None`` and every verdict says why.
        """
        if available is None:
            available = probe_memory(memory_root).available
        in_use = next((i for i, v in enumerate(self.variants) if (v.id, v.backend) == (current, backend)), NO_CHOICE)
        policy = _policy(backend, headroom_mb, hysteresis, override)
        selection, error = SelectionRecord(), Error()
        with self._lock:
            status = _lib().rs_select(
                self.handle, ctypes.byref(policy), available, in_use, ctypes.byref(selection), ctypes.byref(error)
            )
        if status != 0 and _lib().rs_status_name(status) != b"nothing fits":
            _check(status, error)
        names = [_lib().rs_verdict_name(selection.verdicts[i].kind).decode() for i in range(len(self.variants))]
        verdicts = tuple(
            Verdict(v, names[i], selection.verdicts[i].reason.decode()) for i, v in enumerate(self.variants)
        )
        chosen = None if selection.chosen == NO_CHOICE else self.variants[selection.chosen]
        message = "" if status == 0 else error.message.decode(errors="replace")
        return Selection(chosen, selection.available, verdicts, _lib().rs_status_name(status).decode(), message)

    def close(self) -> None:
        with self._lock:
            if self._handle:
                _lib().rs_bundle_close(self._handle)
                self._handle = ctypes.c_void_p()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _default_litert_library() -> Path:
    """``$RESTNET_SHIM_LITERT`` as ``restnet-shim`` reads it (a device's own copy), else libLiteRt.so of the
    installed ``ai-edge-litert`` wheel (the same runtime ``restnetc build`` verified)."""
    if named := os.environ.get("RESTNET_SHIM_LITERT"):
        return Path(named)
    import ai_edge_litert

    return Path(ai_edge_litert.__file__).parent / "libLiteRt.so"


class Runner:
    """Runs the variant of ``backend`` that fits the memory available now, through the C core's runner.

    Thread safe: calls are serialised by a lock, and ``close`` waits for a call in flight. The runner keeps its
    bundle alive (in C) until it is closed. LiteRT runs from ``litert_library`` (default: ``$RESTNET_SHIM_LITERT``,
    else the installed wheel's libLiteRt.so); ExecuTorch needs ``executorch_library``, a
    ``librestnet_shim_executorch.so`` built from ``runtime_shim/`` with CMake. ``memory_root`` is "/" except in
    tests (fixture trees). ``preload_neighbours``: after each refresh (and at open), also load the rungs next to the
    current one in selection order (``Variant.rank``, then accuracy) that share its open program (a ladder file),
    while the headroom stays free (``rs_policy.preload_neighbours``). ``packing`` (``rs_packing``): whether the
    rungs of a ladder file share one packed copy of the weights they share; by default where the bundle's index says
    the compiler checked that they may (``rs_litert_options``, ``rs_executorch_options``; with ExecuTorch, XNNPACK
    methods that share run one at a time in the process). ``threads``: how many threads the runtime runs on, at most
    the CPUs this process may use; None (default) takes the bundle's (``Bundle.threads``), 0 leaves the runtime as
    it is (LiteRT: one thread; ExecuTorch: its pool as it stands). ExecuTorch's thread pool is the process's: the
    shim resizes it only while none of its methods is loaded, so a process that also runs ExecuTorch by itself
    passes 0 unless it holds no method then (``rs_executorch_options``).
    """

    def __init__(
        self,
        bundle: Bundle,
        backend: str = "litert",
        *,
        memory_root: Path | str = "/",
        headroom_mb: float = DEFAULT_HEADROOM_MB,
        hysteresis: float = DEFAULT_HYSTERESIS,
        override: str | None = None,
        litert_library: Path | str | None = None,
        executorch_library: Path | str | None = None,
        preload_neighbours: bool = False,
        packing: PackingPolicy = PackingPolicy.AS_INDEXED,
        threads: int | None = None,
    ) -> None:
        self._bundle, self._handle, self._backend = bundle, ctypes.c_void_p(), BackendTable()
        self._lock = threading.Lock()
        self._plugin: ctypes.CDLL | None = None
        error = Error()
        count = bundle.threads if threads is None else threads
        if type(count) is not int or not 0 <= count <= MAX_THREADS:
            raise ShimError("argument", f"threads {count}: expected 0 (the runtime's default) to {MAX_THREADS}")
        if backend == "litert":
            library = str(litert_library or _default_litert_library()).encode()
            options = LitertOptions(int(packing), count)
            opened = _lib().rs_litert_backend_open_with(
                library, ctypes.byref(options), ctypes.byref(self._backend), ctypes.byref(error)
            )
            _check(opened, error)
        elif backend == "executorch" and executorch_library is not None:
            self._plugin = ctypes.CDLL(str(executorch_library))
            opener = self._plugin.rs_executorch_backend_open_with
            opener.restype = ctypes.c_int
            opener.argtypes = [ctypes.POINTER(ExecutorchOptions), ctypes.POINTER(BackendTable), ctypes.POINTER(Error)]
            settings = ExecutorchOptions(int(packing), count)
            _check(opener(ctypes.byref(settings), ctypes.byref(self._backend), ctypes.byref(error)), error)
        else:
            expected = "'litert', or 'executorch' with executorch_library"
            raise ShimError("argument", f"backend {backend!r}: expected {expected}")
        self._input_count = int(np.prod(bundle.input_shape))
        self._classes = len(bundle.labels)
        policy = _policy(backend, headroom_mb, hysteresis, override, preload_neighbours)
        status = _lib().rs_runner_open(
            bundle.handle,
            ctypes.byref(policy),
            ctypes.byref(self._backend),
            str(memory_root).encode(),
            ctypes.byref(self._handle),
            ctypes.byref(error),
        )
        if status != 0:
            self._close_backend()
        _check(status, error)

    @property
    def current(self) -> Variant | None:
        """The variant that runs now; ``None`` after a failed switch and restore, until a refresh loads one."""
        with self._lock:
            loaded = _lib().rs_runner_current(self._open())
            return _variant(loaded.contents) if loaded else None

    def run(self, image: np.ndarray) -> np.ndarray:
        """Logits (one float per label) for one normalised float32 image of the bundle's input shape."""
        values = np.ascontiguousarray(image, dtype=np.float32)
        if values.size != self._input_count:
            raise ShimError("argument", f"expected {self._input_count} input values, got {values.size}")
        logits, error = np.empty(self._classes, dtype=np.float32), Error()
        as_floats = ctypes.POINTER(ctypes.c_float)
        with self._lock:
            status = _lib().rs_runner_run(
                self._open(),
                values.ctypes.data_as(as_floats),
                values.size,
                logits.ctypes.data_as(as_floats),
                logits.size,
                ctypes.byref(error),
            )
        _check(status, error)
        return logits

    def refresh(self, available: int | None = None) -> bool:
        """Re-probe memory (or take ``available`` bytes) and switch variant if another should run; True if it did."""
        switched, error = ctypes.c_int(0), Error()
        with self._lock:
            if available is None:
                status = _lib().rs_runner_refresh(self._open(), ctypes.byref(switched), ctypes.byref(error))
            else:
                status = _lib().rs_runner_refresh_with(
                    self._open(), available, ctypes.byref(switched), ctypes.byref(error)
                )
        _check(status, error)
        return bool(switched.value)

    def use(self, variant_id: str) -> None:
        """Run variant ``variant_id`` from now until the next refresh, whatever the memory (``rs_runner_use``):
        loaded unless resident, from its open program when it shares one; the variant it replaces stays loaded."""
        self._take(_lib().rs_runner_use, variant_id)

    def preload(self, variant_id: str) -> None:
        """Load variant ``variant_id`` without running it, so a later switch to it loads nothing
        (``rs_runner_preload``)."""
        self._take(_lib().rs_runner_preload, variant_id)

    def resident(self, variant_id: str) -> bool:
        """Whether variant ``variant_id`` is loaded: the one that runs, or one kept beside it after a switch, a
        preload or ``preload_neighbours`` (``rs_runner_resident``; ShimError for an id the backend lacks)."""
        error, loaded = Error(), ctypes.c_int(0)
        with self._lock:
            status = _lib().rs_runner_resident(
                self._open(), variant_id.encode(), ctypes.byref(loaded), ctypes.byref(error)
            )
        _check(status, error)
        return bool(loaded.value)

    def _take(self, call: Any, variant_id: str) -> None:
        error = Error()
        with self._lock:
            status = call(self._open(), variant_id.encode(), ctypes.byref(error))
        _check(status, error)

    def _open(self) -> ctypes.c_void_p:
        if not self._handle:
            raise ShimError("argument", "the runner is closed")
        return self._handle

    def _close_backend(self) -> None:
        """Releases the backend through its own ``release`` (the plugin that holds it is still loaded)."""
        _lib().rs_backend_close(ctypes.byref(self._backend))

    def close(self) -> None:
        with self._lock:
            if self._handle:
                _lib().rs_runner_close(self._handle)
                self._handle = ctypes.c_void_p()
            self._close_backend()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
