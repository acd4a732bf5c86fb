"""Capture what native toolchain code writes to stdout/stderr (absl logs, converter progress).

The converters print pages of C++ and progress logging straight to file descriptors 1 and 2, bypassing
Python's streams, and the runtimes log as they load. ``captured`` sends both to a temporary file for the
duration of a lowering, a runtime's import or a program's opening, so the CLI's own progress stays readable; the
text is returned for error messages.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


class Captured:
    """Text written to fds 1 and 2 inside the ``captured()`` block (available after it exits)."""

    text = ""

    def tail(self, lines: int = 5) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def captured() -> Iterator[Captured]:
    """Redirect fds 1 and 2 (and Python warnings) into a buffer for the duration of the block."""
    result = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield result
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            result.text = sink.read().decode(errors="replace")
