"""What the compiler tells people while it works, kept off stdout so stdout stays machine-readable.

Status lines and warnings go to the ``restnetc`` logger (``logging``): a library caller sees them only if it
configures logging, and the CLI shows them on stderr. Progress bars and spinners are drawn only on a console
handed over with ``show_on`` (the CLI's); by default there is none and they cost nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")

log = logging.getLogger("restnetc")

_bars: Console | None = None


def show_on(console: Console | None) -> None:
    """Draw progress bars and spinners on ``console`` from now on (None: draw none). Not thread-safe."""
    global _bars
    _bars = console


def warnings_to_stderr() -> None:
    """In a worker process: its warnings go straight to stderr (its status lines travel back as ``Note``s)."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("! %(message)s"))
    log.addHandler(handler)
    log.propagate = False  # a toolchain's logging.basicConfig in the worker must not print it twice


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items``, with a progress bar named ``description`` if bars are shown."""
    if _bars is None:
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_bars, transient=True) as progress:
        yield from progress.track(items, total=total, description=description)


@contextmanager
def status(message: str) -> Iterator[None]:
    """A debug line saying ``message``, and a spinner saying it while the block runs if bars are shown."""
    log.debug(message)
    if _bars is None:
        yield
        return
    with _bars.status(message):
        yield


def step(message: str) -> None:
    """One status line for a finished or cached stage."""
    log.info(message)


def warn(message: str) -> None:
    """A warning: the job goes on, but the user should know (``message`` starts with what it concerns)."""
    log.warning(message)


@dataclasses.dataclass(frozen=True)
class Note:
    """A status line or warning made where it cannot be logged in order (a worker process); ``emit`` logs it."""

    level: int
    text: str

    def emit(self) -> None:
        """Log this note on the ``restnetc`` logger."""
        log.log(self.level, self.text)
