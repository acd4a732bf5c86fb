"""The runtime shim's records and constants as Python sees them, defined once and checked against the C header.

``ARTIFACT_RECORD`` is the artifact record: for each field, its key on a ``bundle.index`` artifact line and its
member in the C struct ``rs_artifact``, with the member's ctypes type. Everything else derives from it: the index
writer (``bundle/runtime_index.py``) emits exactly these keys in this order, the ctypes mirror ``Artifact`` is
built from it, and the binding's ``runtime.Variant`` has one attribute per member. ``tests/test_shim_abi.py``
checks the record against the C parser's key table (``ARTIFACT_KEYS`` in ``src/bundle.c``), and every mirror's
size and member offsets, and the constants, against ``include/restnet_shim.h`` with a compiled probe. The JNI
binding is C compiled against the same header, so it needs no mirror.

No torch here: the device-side binding (``restnetc.runtime``) and the compiler both import this module.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass
from typing import Literal

import numpy as np

INDEX_VERSION = 4
"""``RS_INDEX_VERSION``: the version line of ``bundle.index``."""
MAX_ARTIFACTS = 256
"""``RS_MAX_ARTIFACTS``: the most artifacts one index may list (``rs_selection`` has a verdict for each)."""
MAX_THREADS = 256
"""``RS_MAX_THREADS``: the most threads the index's ``runtime`` record may give a runtime (a target's ``threads``)."""
DEFAULT_HEADROOM_BYTES = 16 * 1024 * 1024
"""``RS_DEFAULT_HEADROOM_BYTES``: memory kept free beside a variant."""
DEFAULT_HYSTERESIS = 0.1
"""``RS_DEFAULT_HYSTERESIS``: the extra share of its need a larger variant must fit to move up."""
QuantizationDtype = Literal["float32", "int8", "uint8"]
"""The dtypes ``rs_quantization`` accepts, as the index spells them."""
InputLayout = Literal["NCHW", "NHWC"]
"""How an artifact's input tensor orders the image (``rs_artifact.input_layout``); callers always give NCHW."""
ResizeName = Literal["bilinear", "bicubic"]
"""How an image is resized to the model's input (the index's ``resize``, ``Resize`` in C), antialiased."""
DEFAULT_RESIZE: ResizeName = "bilinear"
"""The resize unless a project or model says otherwise, and what an index before version 4 means."""


@dataclass(frozen=True)
class TensorQuantization:
    """Affine quantization of an input or output tensor: ``real = scale * (q - zero_point)``.

    ``dtype`` is one of ``QuantizationDtype``; a float tensor is ``float32`` with scale 1 and zero point 0.
    """

    dtype: str
    scale: float
    zero_point: int

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """``values`` (float32) in this tensor's type, as the C core's ``rs_runner_run`` converts its input.

        TFLite's own QUANTIZE convention, so a caller and the runtime agree bit for bit: divide in float32, round
        halves away from zero, add the zero point, clamp to the type. A float32 tensor takes the values as they are.
        """
        if self.dtype == "float32":
            return values
        scaled = (np.asarray(values, dtype=np.float32) / np.float32(self.scale)).astype(np.float64)
        rounded = np.trunc(scaled + np.copysign(0.5, scaled))  # exact in float64, unlike in float32
        info = np.iinfo(self.dtype)
        quantized: np.ndarray = np.clip(rounded + self.zero_point, info.min, info.max).astype(self.dtype)
        return quantized

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """``values`` of this tensor as float32 reals, as the C core's output conversion computes them: in double,
        with the scale as the file holds it (float32), then rounded to float32."""
        if self.dtype == "float32":
            return np.asarray(values, dtype=np.float32)
        scale = float(np.float32(self.scale))
        return ((np.asarray(values, dtype=np.float64) - self.zero_point) * scale).astype(np.float32)


FLOAT32 = TensorQuantization("float32", 1.0, 0)
"""How the record describes a tensor that is not quantized."""


class Error(ctypes.Structure):
    """``rs_error``."""

    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 320)]


class Quantization(ctypes.Structure):
    """``rs_quantization``: ``TensorQuantization`` in C (members in the same order)."""

    _fields_ = [("dtype", ctypes.c_char * 8), ("scale", ctypes.c_double), ("zero_point", ctypes.c_int32)]


@dataclass(frozen=True)
class RecordField:
    """One field of the artifact record: its ``bundle.index`` key, its ``rs_artifact`` member and ctypes type."""

    key: str
    member: str
    ctype: type


ARTIFACT_RECORD: tuple[RecordField, ...] = (
    RecordField("id", "id", ctypes.c_char * 64),
    RecordField("backend", "backend", ctypes.c_char * 16),
    RecordField("file", "file", ctypes.c_char * 256),
    RecordField("bytes", "bytes", ctypes.c_uint64),
    RecordField("sha256", "sha256", ctypes.c_char * 65),
    RecordField("memory", "memory_bytes", ctypes.c_uint64),
    RecordField("program", "program_memory_bytes", ctypes.c_uint64),
    RecordField("accuracy", "accuracy", ctypes.c_double),
    RecordField("params", "params", ctypes.c_uint64),
    RecordField("entry", "entry_point", ctypes.c_char * 64),
    RecordField("in", "input_quantization", Quantization),
    RecordField("out", "output_quantization", Quantization),
    RecordField("layout", "input_layout", ctypes.c_char * 8),
    RecordField("packing", "shared_packing", ctypes.c_int),
    RecordField("rank", "rank", ctypes.c_uint32),
)
ARTIFACT_KEYS = tuple(f.key for f in ARTIFACT_RECORD)
"""The keys of an artifact line of ``bundle.index``, in the order the writer emits them."""
ENTRY_POINT_PATTERN = r"[A-Za-z0-9_]{1,63}"
"""An entry point name the shim's index parser accepts: its character set, and what fits ``entry_point``."""


class Artifact(ctypes.Structure):
    """``rs_artifact``, member for member from ``ARTIFACT_RECORD``."""

    _fields_ = [(f.member, f.ctype) for f in ARTIFACT_RECORD]


class MemoryFigures(ctypes.Structure):
    """``rs_memory``."""

    _fields_ = [
        ("available", ctypes.c_uint64),
        ("mem_available", ctypes.c_uint64),
        ("cgroup_limit", ctypes.c_uint64),
        ("cgroup_usage", ctypes.c_uint64),
        ("source", ctypes.c_char_p),
    ]


class Policy(ctypes.Structure):
    """``rs_policy``."""

    _fields_ = [
        ("backend", ctypes.c_char_p),
        ("headroom_bytes", ctypes.c_uint64),
        ("hysteresis", ctypes.c_double),
        ("override_id", ctypes.c_char_p),
        ("preload_neighbours", ctypes.c_int),
    ]


class InputSpec(ctypes.Structure):
    """``rs_input_spec``."""

    _fields_ = [
        ("shape", ctypes.c_uint32 * 4),
        ("mean", ctypes.c_float * 3),
        ("std", ctypes.c_float * 3),
        ("resize", ctypes.c_int),
    ]


class BackendTable(ctypes.Structure):
    """``rs_backend``: the function pointers stay opaque here; only C calls them."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("context", ctypes.c_void_p),
        ("open", ctypes.c_void_p),
        ("load", ctypes.c_void_p),
        ("run", ctypes.c_void_p),
        ("unload", ctypes.c_void_p),
        ("close", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
    ]


class PackingPolicy(enum.IntEnum):
    """``rs_packing``: whether a backend packs the weights of a file's entry points once for all of them."""

    AS_INDEXED = 0
    """Where the index says the compiler checked it (``packing=shared``)."""
    OWN = 1
    """Never: each entry point packs its own."""
    SHARED = 2
    """Always: only for files the caller knows to read each weight under one quantization."""


class Resize(enum.IntEnum):
    """``rs_resize``: one member per ``ResizeName``, named alike. Antialiased (widened when shrinking) as PIL and
    torch's ``interpolate(antialias=True, align_corners=False)`` compute it."""

    BILINEAR = 0
    BICUBIC = 1
    """Keys' cubic with a = -0.5."""


class ExecutorchOptions(ctypes.Structure):
    """``rs_executorch_options`` (``restnet_shim_executorch.h``)."""

    _fields_ = [("packing", ctypes.c_int), ("threads", ctypes.c_int)]


class LitertOptions(ctypes.Structure):
    """``rs_litert_options`` (``restnet_shim_litert.h``)."""

    _fields_ = [("packing", ctypes.c_int), ("threads", ctypes.c_int)]


class Verdict(ctypes.Structure):
    """``rs_verdict``."""

    _fields_ = [("kind", ctypes.c_int), ("reason", ctypes.c_char * 320)]


class SelectionRecord(ctypes.Structure):
    """``rs_selection``."""

    _fields_ = [("chosen", ctypes.c_size_t), ("available", ctypes.c_uint64), ("verdicts", Verdict * MAX_ARTIFACTS)]


MIRRORS: dict[str, type[ctypes.Structure]] = {
    "rs_error": Error,
    "rs_quantization": Quantization,
    "rs_artifact": Artifact,
    "rs_memory": MemoryFigures,
    "rs_policy": Policy,
    "rs_input_spec": InputSpec,
    "rs_backend": BackendTable,
    "rs_executorch_options": ExecutorchOptions,
    "rs_litert_options": LitertOptions,
    "rs_verdict": Verdict,
    "rs_selection": SelectionRecord,
}
"""Every C struct the binding reads or fills, by its name in the headers, with its ctypes mirror."""
