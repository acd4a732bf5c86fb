"""Atomic writes: a bundle directory is exchanged with the previous one in one step, durably, and any failure
leaves the previous bundle as it was; single files (manifest, cost table, size baseline) are replaced whole."""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from restnetc import atomic
from restnetc.atomic import staged_directory, staged_files, write_bytes_atomic, write_text_atomic
from restnetc.budget.cost_table import CostTable, PartFigures, load_table, save_table
from restnetc.bundle.size_check import read_baseline, write_baseline


def _fill(root: Path, tag: str, files: int = 3) -> None:
    """A tree under ``root`` whose every file holds ``tag``, plus a ``manifest.json``."""
    for i in range(files):
        (root / f"d{i % 7}" / f"f{i}.bin").parent.mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 7}" / f"f{i}.bin").write_text(tag)
    (root / "manifest.json").write_text(tag)


def _tags(root: Path) -> set[str]:
    """The tags of every file under ``root`` (empty if it is missing)."""
    return {p.read_text() for p in root.rglob("*") if p.is_file()}


def _then(function: Callable[..., object], hook: Callable[[], object]) -> Callable[..., object]:
    """``function``, calling ``hook()`` after each call."""

    def wrapped(*args: object) -> object:
        result = function(*args)
        hook()
        return result

    return wrapped


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A previous bundle at ``tmp_path/bundle``."""
    _fill(tmp_path / "bundle", "old", files=20)
    return tmp_path / "bundle"


def test_the_new_bundle_replaces_the_old_and_the_old_tree_is_removed(old: Path) -> None:
    with staged_directory(old) as staging:
        _fill(staging, "new")
    assert _tags(old) == {"new"} and sorted(p.name for p in old.iterdir()) == ["d0", "d1", "d2", "manifest.json"]
    assert [p.name for p in old.parent.iterdir()] == ["bundle"], "neither staging nor the old tree is left"
    assert old.stat().st_mode & 0o777 == 0o755


def test_a_first_bundle_is_renamed_into_place(tmp_path: Path) -> None:
    with staged_directory(tmp_path / "out" / "bundle") as staging:
        _fill(staging, "new")
    assert _tags(tmp_path / "out" / "bundle") == {"new"} and len(list((tmp_path / "out").iterdir())) == 1


def test_the_destination_always_holds_a_complete_bundle(old: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked after every rename or exchange (deterministic), and by a thread polling during the swap of a
    large tree. Two renames (old aside, new in) would leave a moment with no bundle at all."""
    after_each_step: list[set[str]] = []
    for module, name in ((os, "rename"), (os, "replace"), (atomic, "_exchange")):
        monkeypatch.setattr(module, name, _then(getattr(module, name), lambda: after_each_step.append(_tags(old))))
    missing = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not (old / "manifest.json").is_file():
                missing.set()

    watcher = threading.Thread(target=watch)
    with staged_directory(old) as staging:
        _fill(staging, "new", files=2000)
        watcher.start()
    done.set()
    watcher.join()
    assert after_each_step == [{"new"}], "one exchange, and the destination was complete after it"
    assert not missing.is_set(), "the watcher saw no bundle at the destination"
    assert _tags(old) == {"new"}


def test_everything_staged_is_fsynced_before_the_swap_and_the_parent_after(
    old: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    monkeypatch.setattr(atomic, "_exchange", _then(atomic._exchange, lambda: events.append("swap")))
    with staged_directory(old) as staging:
        _fill(staging, "new")
        staged = {str(staging), *(str(p) for p in staging.rglob("*"))}
    swap = events.index("swap")
    assert set(events[:swap]) == staged and events[swap + 1 :] == [str(old.parent)]


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EINVAL])
def test_without_the_exchange_two_renames_still_swap(old: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def unsupported(a: Path, b: Path) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic, "_exchange", unsupported)
    with staged_directory(old) as staging:
        _fill(staging, "new")
    assert _tags(old) == {"new"} and [p.name for p in old.parent.iterdir()] == ["bundle"]


def test_without_renameat2_in_the_c_library_two_renames_still_swap(old: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "_renameat2", lambda: None)
    with staged_directory(old) as staging:
        _fill(staging, "new")
    assert _tags(old) == {"new"} and [p.name for p in old.parent.iterdir()] == ["bundle"]


def _fail(*args: object) -> None:
    raise OSError(errno.EIO, "injected failure")


@pytest.mark.parametrize("where", ["build", "fsync", "exchange", "second rename of the fallback"])
def test_a_failure_at_any_step_leaves_the_old_bundle_intact(
    old: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "fsync":
        monkeypatch.setattr(os, "fsync", _fail)
    elif where == "exchange":
        monkeypatch.setattr(atomic, "_exchange", _fail)
    elif where == "second rename of the fallback":
        monkeypatch.setattr(atomic, "_renameat2", lambda: None)
        real_rename, renames = os.rename, [0]

        def second_fails(a: Path, b: Path) -> None:
            renames[0] += 1
            (_fail if renames[0] == 2 else real_rename)(a, b)

        monkeypatch.setattr(os, "rename", second_fails)
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    with pytest.raises(OSError, match="injected failure"), staged_directory(old) as staging:
        _fill(staging, "new")
        if where == "build":
            _fail()
    assert {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    assert [p.name for p in old.parent.iterdir()] == ["bundle"], "no staging or previous tree is left"


def test_write_text_atomic_replaces_whole_files_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.json"
    write_text_atomic(target, "first\n")
    assert target.read_text() == "first\n" and target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    monkeypatch.setattr(os, "fsync", _fail)
    with pytest.raises(OSError, match="injected failure"):
        write_text_atomic(target, "second\n")
    assert target.read_text() == "first\n" and [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_a_non_durable_write_is_still_whole_and_skips_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "entry.pt"
    write_bytes_atomic(target, b"old")
    monkeypatch.setattr(os, "fsync", _fail)  # a durable write would fail here
    write_bytes_atomic(target, b"new", durable=False)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["entry.pt"]
    monkeypatch.setattr(os, "replace", _fail)
    with pytest.raises(OSError, match="injected failure"):
        write_bytes_atomic(target, b"torn", durable=False)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["entry.pt"]


def test_staged_files_publish_each_file_whole_and_only_when_the_block_completes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.json", "b.png", "other.txt"):
        (out / name).write_text("old")
    with staged_files(out) as staging:
        (staging / "a.json").write_text("new")
        (staging / "b.png").write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.json": "new", "b.png": "new", "other.txt": "old"}
    with pytest.raises(RuntimeError, match="plot failed"), staged_files(out) as staging:
        (staging / "a.json").write_text("newer")
        raise RuntimeError("plot failed")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.json": "new", "b.png": "new", "other.txt": "old"}


def test_a_temporary_name_held_by_another_writer_is_neither_used_nor_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = iter(["taken", "free"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda _: next(names))
    other = tmp_path / ".entry.taken.tmp"
    other.write_bytes(b"another writer's")
    write_bytes_atomic(tmp_path / "entry", b"a", b"b", mode=0o600)
    assert (tmp_path / "entry").read_bytes() == b"ab" and other.read_bytes() == b"another writer's"
    assert (tmp_path / "entry").stat().st_mode & 0o777 == 0o600


def test_staged_files_refuses_anything_but_regular_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="regular files only, not nested"), staged_files(tmp_path) as staging:
        (staging / "a.json").write_text("new")
        (staging / "nested").mkdir()
    assert [p.name for p in tmp_path.iterdir()] == [], "nothing published, staging removed"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_size_baseline_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ci" / "sizes.json"
    write_baseline(path, "t", {"litert/b.tflite": 2, "litert/a.tflite": 1})
    assert read_baseline(path) == {"litert/a.tflite": 1, "litert/b.tflite": 2}
    monkeypatch.setattr(os, "fsync", _fail)
    with pytest.raises(OSError, match="injected failure"):
        write_baseline(path, "t", {"litert/a.tflite": 5})
    assert read_baseline(path) == {"litert/a.tflite": 1, "litert/b.tflite": 2}
    assert [p.name for p in path.parent.iterdir()] == ["sizes.json"]


def _part(file: str) -> PartFigures:
    return PartFigures(ms=1.0, bytes=100, peak_bytes=1000, macs=10, input_shape=(1, 3, 8, 8), file=file)


def test_the_cost_table_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = {"stem": _part("s"), "blocks": [_part("b0")], "head": _part("h"), "whole": _part("w")}
    table = CostTable.model_validate(
        {
            "schema_version": 1,
            "target": "t",
            "backend": "litert",
            "quantization": "int8",
            "threads": 1,
            "input_size": 8,
            "source": "host",
            "machine": "test",
            "overhead": _part("o"),
            "models": {"m": parts},
            "profiling_seconds": 1.0,
        }
    )
    path = tmp_path / "tables" / "t.json"
    save_table(table, path)
    assert load_table(path) == table
    monkeypatch.setattr(os, "fsync", _fail)
    with pytest.raises(OSError, match="injected failure"):
        save_table(table.model_copy(update={"threads": 2}), path)
    assert json.loads(path.read_text())["threads"] == 1 and [p.name for p in path.parent.iterdir()] == ["t.json"]
