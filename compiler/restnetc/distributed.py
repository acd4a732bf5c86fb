"""Data-parallel ranks under ``torchrun``: which share of the work a process takes, and what the ranks combine.

restnetc is one process unless ``torchrun`` started it: then ``WORLD_SIZE`` > 1 and every rank runs the same
command with ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. ``joined`` puts the process in the group
(``gloo``, the CPU backend) for the duration of a command and yields its ``Ranks``. Every rank must make the
same calls on its ``Ranks`` in the same order (they are collectives): stages that call them run on every rank;
rank 0 alone then goes on to the rest, and alone writes outputs and cache entries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from restnetc.errors import RestnetcError
from restnetc.host import usable_cpus

T = TypeVar("T")

WAIT = timedelta(hours=4)
"""How long a rank waits at a collective for the others: rank 0 may prepare the parents (fine-tuning them
end-to-end, for example) while the others wait."""

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``size`` data-parallel ranks, ``local`` of them on this machine (one process:
    rank 0 of 1, and every call is local)."""

    rank: int = 0
    size: int = 1
    local: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that goes on past the shared stages and writes."""
        return self.rank == 0

    @property
    def part(self) -> slice:
        """This rank's positions: every ``size``-th from ``rank``, so the shares are disjoint and cover all."""
        return slice(self.rank, None, self.size)

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items (at the positions ``part`` selects)."""
        return list(items[self.part])

    def sum(self, tensor: torch.Tensor) -> None:
        """Replace ``tensor`` on every rank by its sum over the ranks (in place)."""
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (any picklable value; the others' ``value`` is ignored)."""
        if self.size == 1:
            return value
        box: list[Any] = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        received: T = box[0]
        return received

    def weights_from_main(self, model: nn.Module) -> None:
        """Every parameter and buffer of ``model`` set to rank 0's, so all ranks compute with the same weights."""
        if self.size > 1:
            with torch.no_grad():
                for tensor in model.state_dict().values():
                    dist.broadcast(tensor, src=0)

    def wait_for_main(self) -> None:
        """Block until every rank arrives here: the others wait while rank 0 does what they will then read."""
        if self.size > 1:
            dist.barrier()

    def go_on_alone(self) -> None:
        """On rank 0 once the others have left: an intra-op thread for every CPU this process may run on
        (torchrun gives each of several local ranks one thread unless ``OMP_NUM_THREADS`` says otherwise)."""
        assert self.main, "only rank 0 goes on"
        if self.local > 1:
            torch.set_num_threads(usable_cpus())


ALONE = Ranks()
"""One process, no group."""


def _launch_number(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        message = f"environment variable {name}: expected a whole number set by torchrun, got {value!r}"
        raise RestnetcError(message) from None


def launched_ranks() -> Ranks:
    """The ranks ``torchrun`` launched this process among, from its environment; ``ALONE`` without it."""
    size = _launch_number("WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return ALONE
    missing = [name for name in LAUNCH_VARIABLES if not os.environ.get(name)]
    if missing:
        raise RestnetcError(f"WORLD_SIZE={size} but {', '.join(missing)} unset: launch restnetc with torchrun")
    rank = _launch_number("RANK", os.environ["RANK"])
    if not 0 <= rank < size:
        raise RestnetcError(f"environment variable RANK: expected 0 to {size - 1} (WORLD_SIZE={size}), got {rank}")
    local = _launch_number("LOCAL_WORLD_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return Ranks(rank, size, max(local, 1))


@contextmanager
def joined() -> Iterator[Ranks]:
    """This process's ranks for the duration of a command, in the process group when ``torchrun`` launched it."""
    ranks = launched_ranks()
    if ranks.size == 1:
        yield ranks
        return
    dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.size, timeout=WAIT)
    try:
        yield ranks
    finally:
        dist.destroy_process_group()
