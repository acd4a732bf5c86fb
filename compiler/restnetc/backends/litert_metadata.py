"""TFLite metadata for an image classifier, written with MediaPipe's metadata writers (extra ``mediapipe``).

The metadata (name, description, the input's normalisation and colour space, one label per class) is what
MediaPipe's ImageClassifier and Android Studio's model binding read to feed and label a ``.tflite`` without code.
It is stored in the flatbuffer beside the program and changes nothing the interpreter computes.

MediaPipe's wheels for this Python (0.10.30 up to 1.2.3, the pinned one) import a compiled helper that they do
not ship, ``_pywrap_metadata_version``; the writers need one call of it, the minimum metadata parser version
the metadata requires. When it is missing, ``_parser_version_stand_in`` provides that call for the metadata
written here: an image input with normalisation options and an axis-labels file, all of the metadata schema's
first version, ``1.0.0`` (what MediaPipe's own compiled helper answers for it).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import io
import sys
import types
import zipfile

from restnetc.backends.base import ModelCard
from restnetc.backends.litert_compact import compact
from restnetc.errors import RestnetcError

_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
_WRITERS = "mediapipe.tasks.python.metadata.metadata_writers.metadata_writer"
_OUTPUT = "Logits of the labels (raw scores: no softmax; the largest is the predicted label)."
PARSER_VERSION = "1.0.0"
"""The metadata parser version of every field ``write`` fills."""


@functools.cache
def problem() -> str | None:
    """Why MediaPipe's metadata writers cannot be used here (not installed, or failing to import), or None."""
    if importlib.util.find_spec("mediapipe") is None:
        return "MediaPipe's metadata writers are not installed (pip install 'restnetc[mediapipe]')"
    _parser_version_stand_in()
    try:
        importlib.import_module(_WRITERS)
    except Exception as exc:  # a broken install fails in many ways (ImportError, OSError from a native library)
        return f"MediaPipe's metadata writers fail to import ({type(exc).__name__}: {exc})"
    return None


def version() -> str:
    """The installed MediaPipe's version (what writes the metadata)."""
    return importlib.metadata.version("mediapipe")


def _parser_version_stand_in() -> None:
    """Register a ``_pywrap_metadata_version`` answering ``PARSER_VERSION``, if MediaPipe's own is absent."""
    try:
        importlib.import_module(_HELPER)
        return
    except ImportError:
        pass
    helper = types.ModuleType(_HELPER)
    helper.GetMinimumMetadataParserVersion = lambda _metadata: PARSER_VERSION  # type: ignore[attr-defined]
    parts = _HELPER.split(".")
    for depth in range(3, len(parts)):
        sys.modules.setdefault(".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth])))
    sys.modules[_HELPER] = helper


def write(data: bytes, card: ModelCard) -> bytes:
    """``data`` (a ``.tflite`` with one float32 or uint8 image input and one output) with ``card`` as its TFLite
    metadata. MediaPipe's normalisation works on 0-255 pixels, so the mean and std are written scaled by 255,
    one value when every channel shares it. The output is described as the raw logits it is (no softmax).
    RestnetcError when the writers cannot be used (``problem``); MediaPipe's ValueError for a program its writers
    refuse."""
    if (why := problem()) is not None:
        raise RestnetcError(why)
    metadata_writer = importlib.import_module(_WRITERS)

    def scaled(values: tuple[float, ...]) -> list[float]:
        return [v * 255.0 for v in (values if card.per_channel else values[:1])]

    written, _ = (
        metadata_writer.MetadataWriter.create(bytearray(data))
        .add_general_info(card.name, card.description)
        .add_image_input(norm_mean=scaled(card.mean), norm_std=scaled(card.std))
        .add_classification_output(metadata_writer.Labels().add(list(card.labels)), description=_OUTPUT)
        .populate()
    )
    return _reproducible(bytes(written))


ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""The timestamp of every file packed beside the program: the earliest a zip can state."""


def _reproducible(data: bytes) -> bytes:
    """``data`` with the files packed beside the program (a zip appended to the flatbuffer: the labels) stamped
    ``ZIP_TIME``. MediaPipe's populator stamps them with the time of writing (2 s resolution), so the same
    model would otherwise give different bytes, and a rebuild a different sha256. The populator also writes the
    flatbuffer anew, each vector once per use: it is compacted again (``litert_compact``)."""
    with zipfile.ZipFile(io.BytesIO(data)) as packed:
        files = [(info, packed.read(info)) for info in packed.infolist()]
    start = min(info.header_offset for info, _ in files)  # absolute: zipfile accounts for the prepended program
    out = io.BytesIO(compact(data[:start]))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as rebuilt:
        for info, content in files:
            rebuilt.writestr(zipfile.ZipInfo(info.filename, ZIP_TIME), content, compress_type=info.compress_type)
    return out.getvalue()
