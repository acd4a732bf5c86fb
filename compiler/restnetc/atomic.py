"""Atomic writes, the one way restnetc writes a file it keeps: single files, sets of files in one directory,
and bundle directories built in a staging sibling, then swapped into place.

A file is written to a temporary sibling, fsynced and renamed over its destination: readers see the old or
the new content, never a mix, and a crash leaves one of the two.

Files published together (``staged_files``) are written into a staging directory beside them first; each
then replaces its destination by one rename, so every file appears whole or not at all.

A bundle is built in a staging directory next to its destination; on any failure or Ctrl-C the staging
directory is removed and nothing else changes. When the build completes, every file and directory of the
staging tree is fsynced, then one ``renameat2(RENAME_EXCHANGE)`` exchanges it with the previous bundle (a
plain rename when there is none), so the destination always holds a complete bundle; the parent directory
is fsynced and the previous tree, now at the staging path, is removed.

Fallback where the exchange is unsupported (ENOSYS or EINVAL: not Linux, an old kernel, a filesystem without
it): two renames, the previous bundle aside, then the new one in (the previous one is renamed back if that
fails). The destination is then missing between the two renames, and a crash at that moment leaves the
complete previous bundle beside it as ``.NAME.previous-*``; the destination never holds a partial bundle.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_EXCHANGE_UNSUPPORTED = (errno.ENOSYS, errno.EINVAL)


def write_bytes_atomic(
    path: Path, *chunks: bytes, durable: bool = True, mode: int = 0o666, replace: bool = True
) -> bool:
    """Replace ``path`` (whose directory must exist) with the concatenated ``chunks``, atomically; whether it did.

    ``durable``: the file and its directory are fsynced, so the new content survives a power loss. Without it
    (cache entries, which carry their own digest and are recomputed when torn) a crash may leave the old
    content or none, never a mix. ``mode`` is the new file's permission bits before the umask. Without
    ``replace``, a ``path`` that exists (another writer's, even one that came first by a moment) is left as it
    is and False returned. A failure leaves ``path`` as it was and no temporary file of this call behind.
    """
    while True:  # a fresh random name until one is free (another writer may hold the same)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails when path exists: the first writer's content stays
            except FileExistsError:
                return False
            finally:
                tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_path(path.parent, os.O_DIRECTORY)
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` (whose directory must exist) with ``text`` in UTF-8, atomically and durably."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_files(out_dir: Path) -> Iterator[Path]:
    """Yield an empty staging directory inside ``out_dir`` (created if missing) for regular files only.

    When the block completes, each file is fsynced and replaces its namesake in ``out_dir`` by one rename, so
    every file appears whole; none is published if the block fails. A failure while publishing (say a
    destination that is a directory) can leave the files renamed before it published. The staging
    directory is always removed; files of ``out_dir`` not staged are left alone. ValueError if anything
    but a regular file was staged.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield staging
        entries = sorted(staging.iterdir())
        if others := [p.name for p in entries if not p.is_file() or p.is_symlink()]:
            raise ValueError(f"staged_files publishes regular files only, not {', '.join(others)}")
        for path in entries:
            _fsync_path(path)
        for path in entries:
            os.replace(path, out_dir / path.name)
        _fsync_path(out_dir, os.O_DIRECTORY)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on normal exit it replaces ``final``, otherwise it is deleted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
        os.chmod(staging, 0o755)
        _fsync_tree(staging)
        _swap(staging, final)
        _fsync_path(final.parent, os.O_DIRECTORY)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_path(path: Path | str, flags: int = 0) -> None:
    """fsync the file or (with ``os.O_DIRECTORY``) the directory at ``path``."""
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every regular file and every directory under ``root``, ``root`` included, children first."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                _fsync_path(path)
        _fsync_path(directory, os.O_DIRECTORY)


def _swap(staging: Path, final: Path) -> None:
    """Put ``staging`` at ``final``; afterwards ``staging`` holds the previous ``final``, if there was one."""
    if not os.path.lexists(final):
        os.rename(staging, final)
        return
    try:
        _exchange(staging, final)
    except OSError as exc:
        if exc.errno not in _EXCHANGE_UNSUPPORTED:
            raise
        _swap_by_renames(staging, final)


@functools.cache
def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """The C library's ``renameat2``, or None where it has none."""
    if sys.platform != "linux":
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> None:
    """Exchange the two existing paths ``a`` and ``b`` in one atomic step; OSError (ENOSYS if unsupported)."""
    renameat2 = _renameat2()
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(a))
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap_by_renames(staging: Path, final: Path) -> None:
    """The fallback swap: ``final`` aside, ``staging`` in (else ``final`` back), the previous one to ``staging``."""
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.previous-", dir=final.parent))
    aside.rmdir()
    os.rename(final, aside)
    try:
        os.rename(staging, final)
    except BaseException:
        os.rename(aside, final)
        raise
    os.rename(aside, staging)
