"""Child process that measures the memory to load one artifact and run one inference.

Run as ``python -m restnetc.budget.memory_probe BACKEND FILE SHAPE THREADS [ENTRY_POINT]`` (SHAPE like
``1x3x64x64``; ENTRY_POINT as ``Runtime.load`` takes it); prints one JSON line. The process imports the
backend's runtime alone (``restnetc.runners``), as a device's would, not the compiler's toolchain: a LiteRT
probe starts in about 0.2 s (4 s through ``restnetc.backends``). After the runtime is imported, the kernel's
peak-RSS counter is reset (``/proc/self/clear_refs``), so the reported peak delta covers only opening the file,
loading the entry point and running it; ``program`` is the resident growth once the file is open, before the
entry point loads.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main(argv: list[str]) -> None:
    backend_name, file, threads = argv[0], Path(argv[1]), int(argv[3])
    entry_point = argv[4] if len(argv) > 4 else None
    shape = tuple(int(n) for n in argv[2].split("x"))
    from restnetc.runners import get_runtime  # the runtime alone: no compiler toolchain in this process

    runtime = get_runtime(backend_name)
    runtime.claim_threads(threads)  # a fresh process: the runtime runs on the threads it is measured for
    example = np.zeros(shape, dtype=np.float32)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = _status_kib("VmRSS")
    program = runtime.open(file, threads)
    opened = _status_kib("VmRSS")
    program.load(entry_point)(example)
    peak = _status_kib("VmHWM")
    figures = {"peak_delta": (peak - baseline) * 1024, "peak_total": peak * 1024, "program": (opened - baseline) * 1024}
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
