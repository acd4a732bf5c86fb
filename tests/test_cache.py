"""The stage cache: keys cover restnetc's own source; a damaged entry is a warned miss, recomputed, never used."""

from __future__ import annotations

import copy
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import timm
import torch

import restnetc.models.zoo  # noqa: F401  (registers the zoo_* architectures with timm)
from restnetc.backends import Lowered, get_backend
from restnetc.backends.executorch import ExecuTorchBackend
from restnetc.budget import measure
from restnetc.budget.measure import HostMemory
from restnetc.bundle.ladder import Rung, eager_logits
from restnetc.bundle.lowering import Lowerer
from restnetc.bundle.verification import EagerLogits, HeldOut, Verified, Verifier
from restnetc.cache import PACKAGE, Cache, source_digest
from restnetc.config.project import ProjectConfig
from restnetc.config.target import AccuracyPolicy, Backend, Quantization
from restnetc.data import ImageSet
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from restnetc.pipeline import parents
from tests import zoo
from tests.conftest import logged


def test_an_edited_compiler_source_changes_the_source_digest(tmp_path: Path) -> None:
    copy = tmp_path / "restnetc"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy) == source_digest(PACKAGE)
    lowering = copy / "bundle" / "lowering.py"
    lowering.write_text(lowering.read_text() + "\n# an edit\n")
    assert source_digest(copy) != source_digest(PACKAGE)


# Every kind of entry the cache stores: (file suffix, save, load, a clean value).
TENSORS = {"logits": torch.arange(64, dtype=torch.float32).reshape(4, 16), "steps": torch.tensor(3)}
ARTIFACT = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4  # what a lowered .tflite/.pte is stored as
RECORD = {"accuracy": 91.25, "agreement": 99.5, "max_logit_diff": 0.0123}
KINDS: dict[str, tuple[str, Callable[[Cache, str, Any], None], Callable[[Cache, str], Any], Any]] = {
    "tensors": (".pt", Cache.save, Cache.load, TENSORS),
    "artifact bytes": (".bin", Cache.save_bytes, Cache.load_bytes, ARTIFACT),
    "json": (".json", Cache.save_json, Cache.load_json, RECORD),
}


def _same(kind: str, value: Any, clean: Any) -> bool:
    if kind == "tensors":
        return value.keys() == clean.keys() and all(torch.equal(value[k], clean[k]) for k in clean)
    return bool(value == clean)


def _legacy(kind: str, path: Path) -> None:
    """The entry as restnetc wrote it before entries carried a sha256: the bare payload."""
    if kind == "tensors":
        torch.save(TENSORS, path)
    else:
        path.write_bytes(ARTIFACT if kind == "artifact bytes" else json.dumps(RECORD).encode())


def _flip(path: Path, marker: bytes) -> None:
    """Flip one bit of the byte in the middle of ``marker`` (tensor data, artifact bytes, JSON text) in ``path``."""
    data = bytearray(path.read_bytes())
    index = data.index(marker) + len(marker) // 2
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


MARKERS = {"tensors": TENSORS["logits"].numpy().tobytes(), "artifact bytes": ARTIFACT, "json": b"91.25"}
DAMAGES: dict[str, Callable[[str, Path], None]] = {
    "flipped payload byte": lambda kind, path: _flip(path, MARKERS[kind]),
    "flipped digest byte": lambda kind, path: _flip(path, path.read_bytes()[:80].split(b":")[1][:8]),
    "truncated": lambda kind, path: path.write_bytes(path.read_bytes()[:-7]),
    "empty": lambda kind, path: path.write_bytes(b""),
    "written before entries had a digest": _legacy,
    "unreadable": lambda kind, path: (path.unlink(), path.symlink_to(path.name)),  # a symlink loop: ELOOP
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_damaged_entry_is_a_warned_miss_and_its_recomputation_replaces_it(
    kind: str, damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suffix, save, load, clean = KINDS[kind]
    cache = Cache(tmp_path)
    save(cache, "stage-0123", clean)
    assert _same(kind, load(cache, "stage-0123"), clean)
    path = tmp_path / f"stage-0123{suffix}"
    DAMAGES[damage](kind, path)
    caplog.clear()

    assert load(cache, "stage-0123") is None
    warning = logged(caplog)
    assert warning.startswith(f"CACHE WARNING {path}: ") and warning.rstrip().endswith("recomputing it"), warning
    caplog.clear()
    save(cache, "stage-0123", clean)  # what every caller does on a miss
    assert _same(kind, load(cache, "stage-0123"), clean)
    assert logged(caplog) == ""


def test_the_first_writer_of_an_entry_wins_and_a_damaged_one_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``save_first``: a second writer of a key gets the first one's tensors back (and the entry keeps them);
    a damaged entry is warned of and replaced; a cache that keeps nothing hands each writer its own. Fails
    when a later writer overwrites the first, or a damaged entry is handed out or kept."""
    cache, first, second = Cache(tmp_path), {"x": torch.zeros(2)}, {"x": torch.ones(2)}
    assert cache.save_first("stage-0123", first) is first
    assert torch.equal(cache.save_first("stage-0123", second)["x"], first["x"])
    assert torch.equal(cache.load("stage-0123")["x"], first["x"])  # type: ignore[index]
    DAMAGES["truncated"]("tensors", tmp_path / "stage-0123.pt")
    assert cache.save_first("stage-0123", second) is second and "CACHE WARNING" in logged(caplog)
    assert torch.equal(cache.load("stage-0123")["x"], second["x"])  # type: ignore[index]
    assert Cache(None).save_first("stage-0123", first) is first
    assert list(tmp_path.glob(".*.tmp")) == [], "no temporary file is left behind"


class _Opaque:
    """Records its unpickling: a tensor entry must never unpickle anything but tensors."""

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return UNPICKLED.append, ("unpickled",)


UNPICKLED: list[str] = []


def test_a_tensor_entry_is_loaded_with_weights_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A well-formed entry (its sha256 matches) that holds more than tensors is a miss, and is not unpickled."""
    buffer = io.BytesIO()
    torch.save({"x": torch.ones(2), "y": _Opaque()}, buffer)
    cache = Cache(tmp_path)
    cache.save_bytes("stage-0123", buffer.getvalue())  # the same file format as a tensor entry
    (tmp_path / "stage-0123.bin").rename(tmp_path / "stage-0123.pt")
    assert cache.load("stage-0123") is None and UNPICKLED == []
    assert "does not decode (UnpicklingError)" in logged(caplog)


def test_probe_memory_recomputes_after_a_damaged_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A JSON stage through its real caller: the measurement runs again and gives the clean figures."""
    calls: list[Path] = []

    def measure_memory(
        backend: str, path: Path, shape: tuple[int, ...], threads: int, entry_point: str | None
    ) -> HostMemory:
        calls.append(path)
        return HostMemory(peak_delta=1000, peak_total=5000)

    monkeypatch.setattr(measure, "measure_memory", measure_memory)
    artifact, cache = tmp_path / "a.tflite", Cache(tmp_path / "cache")
    artifact.write_bytes(ARTIFACT)
    clean = measure.probe_memory("litert", artifact, (1, 3, 32, 32), 1, cache)
    assert measure.probe_memory("litert", artifact, (1, 3, 32, 32), 1, cache) == clean and len(calls) == 1
    (record,) = (tmp_path / "cache").glob("host-memory-*.json")
    _flip(record, b"1000")
    caplog.clear()
    assert measure.probe_memory("litert", artifact, (1, 3, 32, 32), 1, cache) == clean and len(calls) == 2
    assert f"CACHE WARNING {record}: content does not match its sha256" in logged(caplog)


def test_a_damaged_linear_probe_is_refitted_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A tensor stage through its real caller (``load_parents``' linear probes)."""
    torch.manual_seed(0)
    models = {}
    for key, arch in (("a", "zoo_resnet18"), ("b", "zoo_vgg11")):
        torch.save(timm.create_model(arch).state_dict(), tmp_path / f"{arch}.pth")
        models[key] = {"source": "timm", "arch": arch, "checkpoint": str(tmp_path / f"{arch}.pth")}
    normalization = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    data = {"source": {"kind": "fashion-mnist"}, "input_size": zoo.SIZE, "normalization": normalization}
    task_head = {"mode": "linear-probe", "epochs": 3}
    project = ProjectConfig.model_validate({"name": "p", "models": models, "data": data, "task_head": task_head})
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(20, 3, zoo.SIZE, zoo.SIZE, generator=generator)
    labels = torch.arange(20) % zoo.CLASSES
    train = ImageSet(images, labels, tuple(f"c{i}" for i in range(zoo.CLASSES)), torch.arange(20))
    fits: list[int] = []
    fit = parents.fit_linear_probe

    def counted_fit(*args: Any) -> torch.nn.Linear:
        fits.append(1)
        return fit(*args)

    monkeypatch.setattr(parents, "fit_linear_probe", counted_fit)
    cache = Cache(tmp_path / "cache")

    def probes() -> list[torch.Tensor]:
        front, back = parents.load_parents(project, train, cache)
        return [tensor for parent in (front, back) for tensor in parent.model.head.state_dict().values()]

    clean = probes()
    assert len(fits) == 2 and len(list((tmp_path / "cache").glob("probe-*.pt"))) == 2
    stored = sorted((tmp_path / "cache").glob("probe-*.pt"))[0]
    middle = len(stored.read_bytes()) // 2
    _flip(stored, stored.read_bytes()[middle : middle + 16])  # inside the probe's weights
    caplog.clear()
    again = probes()
    assert len(fits) == 3, "only the damaged probe is fitted again"
    assert all(torch.equal(a, b) for a, b in zip(again, clean, strict=True))
    assert f"CACHE WARNING {stored}: content does not match its sha256" in logged(caplog)


@pytest.fixture(scope="module")
def pair() -> tuple[Rung, Rung, HeldOut, dict[str, torch.Tensor]]:
    """Two tiny stitched CNNs that differ only in a classifier bias, and held-out images labelled by the first."""
    model = build_stitched(decompose(zoo.make("resnet")), 1, decompose(zoo.make("vgg", 1)), 2, zoo.SIZE)
    other = copy.deepcopy(model)
    with torch.no_grad():
        [linear for linear in other.modules() if isinstance(linear, torch.nn.Linear)][-1].bias[0] += 100.0
    images = torch.randn(24, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(3))
    eager = {"a": eager_logits(model, images), "b": eager_logits(other, images)}
    rungs = Rung("a", "variant", model, 0, 0, None, None), Rung("b", "variant", other, 0, 0, None, None)
    return *rungs, HeldOut.of(images, eager["a"].argmax(1)), eager


def _build(pair: tuple[Rung, Rung, HeldOut, dict[str, torch.Tensor]], ids: str, tmp_path: Path) -> dict[str, Verified]:
    """The rungs named in ``ids`` lowered to ExecuTorch fp32 and verified, in this process, cache in tmp_path."""
    *rungs, held_out, eager = pair
    chosen = [rung for rung in rungs if rung.id in ids]
    cache = Cache(tmp_path / "cache")
    # the same images serve as validation and test: this is about the cache, not about honest figures
    verifier = Verifier(held_out, held_out, 1, cache, tmp_path)
    lowerer = Lowerer(Quantization.FP32, held_out.images[:4], verifier, AccuracyPolicy(), cache, 1)
    both = {rung_id: EagerLogits(logits, logits) for rung_id, logits in eager.items()}
    built = lowerer.build_all(chosen, [get_backend(Backend.EXECUTORCH)], both)
    return {rung_id: verified for (rung_id, _), verified in built.items()}


def _artifact_entry(cache_dir: Path, data: bytes) -> Path:
    (path,) = [path for path in cache_dir.glob("artifact-*.bin") if Cache(cache_dir).load_bytes(path.stem) == data]
    return path


def test_a_damaged_artifact_is_lowered_and_verified_again(
    pair: tuple[Rung, Rung, HeldOut, dict[str, torch.Tensor]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An artifact entry (a .pte) through the real lowering stage: a flipped byte is never shipped."""
    lowerings: list[int] = []
    lower = ExecuTorchBackend.lower

    def counted_lower(self: ExecuTorchBackend, *args: Any, **kwargs: Any) -> Lowered:
        lowerings.append(1)
        return lower(self, *args, **kwargs)

    monkeypatch.setattr(ExecuTorchBackend, "lower", counted_lower)
    clean = _build(pair, "a", tmp_path)["a"]
    entry = _artifact_entry(tmp_path / "cache", clean.lowered.data)
    _flip(entry, clean.lowered.data[len(clean.lowered.data) // 2 :][:16])
    caplog.clear()
    again = _build(pair, "a", tmp_path)["a"]
    assert len(lowerings) == 2, "lowered again"
    assert again.lowered.data == clean.lowered.data and again.evaluation == clean.evaluation
    assert f"CACHE WARNING {entry}: content does not match its sha256" in logged(caplog)


def test_a_verified_record_is_never_applied_to_other_bytes(
    pair: tuple[Rung, Rung, HeldOut, dict[str, torch.Tensor]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rung a's artifact entry replaced by b's bytes (a sound entry): a's record must not vouch for them."""
    first = _build(pair, "ab", tmp_path)
    assert first["a"].evaluation != first["b"].evaluation
    entry = _artifact_entry(tmp_path / "cache", first["a"].lowered.data)
    Cache(tmp_path / "cache").save_bytes(entry.stem, first["b"].lowered.data)
    caplog.clear()
    again = _build(pair, "a", tmp_path)["a"]
    assert again.lowered.data == first["b"].lowered.data
    assert again.evaluation == first["b"].evaluation, "the figures verified for these bytes, not a's record"
    assert "its artifact's bytes are not the ones verified; recomputing it" in logged(caplog)


def test_cache_at_reads_the_default_directory_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``--cache-dir`` / ``--no-cache`` and the API's ``cache_dir`` / ``use_cache`` mean, in one place."""
    monkeypatch.setenv("RESTNETC_CACHE", str(tmp_path / "env"))
    assert Cache.at(None).root == tmp_path / "env" and Cache.at(None).writable
    assert Cache.at(str(tmp_path / "given")).root == tmp_path / "given"
    off = Cache.at(tmp_path / "given", enabled=False, writable=False)
    assert off.root is None and not off.writable
