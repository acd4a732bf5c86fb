"""``restnetc.runtime.Runner`` walking one backend's ladder program down and up as a fixture tree's memory changes.

Run as a script by ``tests/test_runtime_shim.py``, in a process of its own so that the core under it can be a
sanitised build (it imports nothing but the runtime and numpy, never torch). The bundle's rungs need 100 MiB
apart, least accurate first (``_ranked_bundle``); on each ``refresh`` with nothing free beside the rung in use,
the runner must step one rung down, and with 100 MiB more one rung up, every rung served from the program it
opened (the file is spoiled on disk after opening) and giving EXPECTED's logits (within 1e-5).

Usage: ``python python_ladder_walk.py BUNDLE BACKEND MEMORY_ROOT EXPECTED.npz INPUT.npy HEADROOM_MB
[EXECUTORCH_LIBRARY]``: EXPECTED holds each rung's logits for INPUT under its id, least accurate rung first.
Prints the core it ran on (``core: PATH``) and ``python ladder walk passed``; any failure exits non-zero.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from restnetc.runtime import Bundle, Runner


def _available(root: Path, mib: int) -> None:
    path = root / "proc" / "meminfo"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"MemAvailable: {mib * 1024} kB\n")


def main(bundle: Path, backend: str, root: Path, expected_file: Path, input_file: Path, headroom_mb: int,
         executorch_library: str | None) -> None:  # fmt: skip
    with np.load(expected_file) as stored:  # in the order saved: least accurate rung first
        expected = {rung: stored[rung] for rung in stored.files}
    ladder, image = list(expected), np.load(input_file)
    assert len(ladder) >= 2, f"a walk needs two rungs or more: {ladder}"
    _available(root, 1 << 20)
    with (
        Bundle(bundle) as opened,
        Runner(
            opened, backend, memory_root=root, headroom_mb=headroom_mb, hysteresis=0.0,
            executorch_library=executorch_library,
        ) as runner,
    ):  # fmt: skip
        file = next(v.file for v in opened.variants if v.id == ladder[0] and v.backend == backend)
        (bundle / file).write_bytes(b"spoiled")
        assert runner.current is not None and runner.current.id == ladder[-1], runner.current
        walk = [(0, list(reversed(range(len(ladder) - 1)))), (100 + headroom_mb, list(range(1, len(ladder))))]
        for free, rungs in walk:  # nothing free beside the rung in use: down; 100 MiB more: up
            _available(root, free)
            for k in rungs:
                assert runner.refresh(), (backend, free, ladder[k])
                assert runner.current is not None and runner.current.id == ladder[k], (runner.current, ladder[k])
                np.testing.assert_allclose(runner.run(image), expected[ladder[k]], atol=1e-5, err_msg=ladder[k])
    core = importlib.util.find_spec("restnetc._shim")
    print(f"core: {core.origin if core else None}\npython ladder walk passed")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    library = arguments[6] if len(arguments) > 6 else None
    main(Path(arguments[0]), arguments[1], Path(arguments[2]), Path(arguments[3]), Path(arguments[4]),
         int(arguments[5]), library)  # fmt: skip
