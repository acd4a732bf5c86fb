"""What this host lends the compiler: the CPUs this process may run on (its affinity, not the machine's count)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on: how many local jobs run at once, and the most threads a runtime gets."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
