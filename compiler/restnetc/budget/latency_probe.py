"""Child process that times entry points on a thread count its parent's runtimes cannot take any more.

Run as ``python -m restnetc.budget.latency_probe SPEC`` (``SPEC``: the JSON file ``measure.time_entries`` writes:
threads, warm-up and timed runs, and per key a backend, a file, an entry point and an ``.npy`` example). Sizes
every runtime involved for the threads first (``Runtime.claim_threads``, before any program opens), then prints
one JSON line: the milliseconds of each timed run, by key (``measure.time_here``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> None:
    from restnetc.budget.measure import TimedEntry, time_here
    from restnetc.runners import get_runtime

    spec = json.loads(Path(argv[0]).read_text())
    threads = int(spec["threads"])
    entries = {
        key: TimedEntry(e["backend"], Path(e["path"]), np.load(e["example"]), e["entry_point"])
        for key, e in spec["entries"].items()
    }
    for name in sorted({entry.backend for entry in entries.values()}):
        get_runtime(name).claim_threads(threads)
    print(json.dumps(time_here(entries, int(spec["warmup"]), int(spec["runs"]), threads)))


if __name__ == "__main__":
    main(sys.argv[1:])
