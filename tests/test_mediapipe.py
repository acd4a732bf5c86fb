"""Issue 19: a bundle's ``.tflite`` files are standard enough for MediaPipe's ImageClassifier to run them unaided.

MediaPipe reads the TFLite metadata restnetc writes (normalisation, labels) and needs a float32 or uint8 input:
the int8 artifacts carry a float32 interface (``backends.litert_interface``). It stretches an image to the model's
size with a bilinear filter of its own, so the images here are already at the model's size, as uint8 RGB; the
same pixels, normalised as the project says, go through restnetc's own runtime (the C core and its LiteRT
backend).
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import mediapipe as mp
import numpy as np
import torch
from mediapipe.tasks.python import BaseOptions, vision
from torch import nn
from torch.nn import functional as F

from restnetc.backends import ModelCard, get_backend, litert_metadata
from restnetc.bundle.manifest import read_manifest
from restnetc.config.target import Quantization
from restnetc.data.fashion_mnist import read_split
from restnetc.runtime import Bundle, Runner

IMAGES = 400
MIN_AGREEMENT = 0.99


def _pixels(size: int) -> np.ndarray:
    """The first ``IMAGES`` Fashion-MNIST test images as ``[N, size, size, 3]`` uint8 RGB."""
    grey, _ = read_split(Path("/usr/share/datasets/fashion-mnist"), "test")
    scaled = torch.from_numpy(grey[:IMAGES].astype(np.float32) / 255).unsqueeze(1)
    resized = F.interpolate(scaled, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    rgb = (resized.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
    return np.ascontiguousarray(rgb.permute(0, 2, 3, 1).numpy())


def test_mediapipe_image_classifier_runs_each_litert_artifact_like_restnetc_runtime(
    built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """MediaPipe names the manifest's labels and agrees with restnetc on top-1 and on every score for at least
    99% of the images. Fails when an artifact's input or output is int8 (MediaPipe refuses it), when its metadata
    is missing or misstates the normalisation (MediaPipe then refuses the model or feeds other values), or when
    the labels are not the manifest's, in its order."""
    bundle, manifest = built[0], read_manifest(built[0])
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemAvailable: 8000000 kB\n")
    litert = [a for a in manifest.artifacts if a.backend == "litert"]
    assert litert, "the build ships LiteRT artifacts"
    pixels, normalization = _pixels(litert[0].input.shape[-1]), litert[0].input.normalization
    mean, std = np.array(normalization["mean"], np.float32), np.array(normalization["std"], np.float32)
    inputs = ((pixels.astype(np.float32) / 255 - mean) / std).transpose(0, 3, 1, 2)
    with Bundle(bundle) as opened:
        for artifact in litert:
            assert artifact.input.quantization is None and artifact.input.output_quantization is None
            with Runner(opened, "litert", memory_root=tmp_path, override=artifact.id) as runner:
                ours = np.stack([runner.run(np.ascontiguousarray(image[None])) for image in inputs])
            options = vision.ImageClassifierOptions(
                base_options=BaseOptions(model_asset_path=str(bundle / artifact.file)),
                max_results=len(manifest.labels),
            )
            theirs, their_top = np.zeros_like(ours), np.zeros(len(ours), np.int64)
            with vision.ImageClassifier.create_from_options(options) as classifier:
                for index, (row, image) in enumerate(zip(theirs, pixels, strict=True)):
                    found = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
                    categories = found.classifications[0].categories
                    assert sorted(c.category_name for c in categories) == sorted(manifest.labels)
                    classes = [manifest.labels.index(c.category_name) for c in categories]
                    row[classes], their_top[index] = [c.score for c in categories], classes[0]
            # int8 logits tie often (a coarse output scale); which of equal classes is "top" is arbitrary, so
            # agreeing means MediaPipe's top class holds restnetc's top score.
            agreement = float((ours[np.arange(len(ours)), their_top] == ours.max(1)).mean())
            assert agreement >= MIN_AGREEMENT, (artifact.id, agreement)
            same_scores = float((np.abs(theirs - ours).max(1) <= 1e-5).mean())
            assert same_scores >= MIN_AGREEMENT, (artifact.id, same_scores)


def test_mediapipe_feeds_a_uint8_artifact_the_raw_pixels_restnetc_quantizes_to(tmp_path: Path) -> None:
    """An int8 ``.tflite`` whose input takes raw uint8 pixels (``runtime.litert_input: uint8``), described like a
    bundle's: MediaPipe feeds it the image's own bytes and scores exactly as restnetc's runner does from the
    normalised image. Fails if the input's scale or zero point is not the normalisation (the two then see other
    inputs), or if MediaPipe refuses the uint8 input or its metadata."""
    from restnetc.backends import Ends, raw_pixels

    mean, std = (127 / 255,) * 3, (128 / 255,) * 3
    pixels = _pixels(16)[:100]
    inputs = torch.from_numpy(((pixels.astype(np.float32) - 127) / 128).transpose(0, 3, 1, 2).copy())
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    backend = get_backend("litert")
    lowered = backend.lower(
        model.eval(), inputs[:1], Quantization.INT8, inputs, ends=Ends(pixels=raw_pixels(mean, std))
    )
    card = ModelCard("m", "a test model", ("a", "b", "c", "d"), mean, std)
    path = tmp_path / "m.tflite"
    path.write_bytes(backend.describe(lowered.data, card))
    ours = backend.runtime.load(path, 1)(inputs.numpy())
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=4)
    theirs = np.zeros_like(ours)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for row, image in zip(theirs, pixels, strict=True):
            found = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            for category in found.classifications[0].categories:
                row[card.labels.index(category.category_name)] = category.score
    np.testing.assert_array_equal(theirs, ours)


def test_the_metadata_of_the_same_model_is_the_same_bytes_whenever_it_is_written() -> None:
    """MediaPipe stamps the packed labels file with the time of writing (2 s resolution); restnetc fixes the
    stamp, or a rebuild would ship another sha256 (``test_a_flipped_byte_in_every_cache_entry_...``)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    images = torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    data = get_backend("litert").lower(model.eval(), images[:1], Quantization.INT8, images).data
    card = ModelCard("m", "a test model", ("a", "b", "c"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    first = litert_metadata.write(data, card)
    time.sleep(2.1)
    assert litert_metadata.write(data, card) == first
    with zipfile.ZipFile(io.BytesIO(first)) as packed:
        assert packed.read("labels.txt") == b"a\nb\nc"
