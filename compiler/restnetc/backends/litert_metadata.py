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

import importlib
import importlib.util
import sys
import types

from restnetc.backends.base import ModelCard

_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
PARSER_VERSION = "1.0.0"
"""The metadata parser version of every field ``write`` fills."""


def available() -> bool:
    """Whether MediaPipe's metadata writers are installed."""
    return importlib.util.find_spec("mediapipe") is not None


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
    one value when every channel shares it. ModuleNotFoundError without MediaPipe (``available``); MediaPipe's
    ValueError for a program its writers refuse."""
    _parser_version_stand_in()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    def scaled(values: tuple[float, ...]) -> list[float]:
        return [v * 255.0 for v in (values if card.per_channel else values[:1])]

    written, _ = (
        metadata_writer.MetadataWriter.create(bytearray(data))
        .add_general_info(card.name, card.description)
        .add_image_input(norm_mean=scaled(card.mean), norm_std=scaled(card.std))
        .add_classification_output(metadata_writer.Labels().add(list(card.labels)))
        .populate()
    )
    return bytes(written)
