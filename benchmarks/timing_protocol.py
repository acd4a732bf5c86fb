"""Does timing several programs side by side time each one as it runs alone? The host protocol, two ways.

One zoo model (``--model``, 32 px) is lowered with each of ``--backends`` in int8 (the backend's quantizer, 128
real training images) and the same file is timed as ``--copies`` entries side by side (``--threads`` threads,
``--runs`` timed calls each, ``restnetc.budget.measure``'s interleaved blocks), in ``--processes`` fresh processes,
two ways: ``alone`` (the shipped protocol, ``measure.time_interleaved``: each block opens its program and closes
it before the next opens) and ``kept_open`` (every program opened once and held for the whole run, as before).
The copies are one file, so any spread between their medians is the protocol's. Reports, per process, each
copy's median and the slowest copy's median over the fastest's.

Usage: ``.venv/bin/python benchmarks/timing_protocol.py [--model zoo_resnet18] [--backends executorch litert]``.
Writes ``benchmarks/results/timing_protocol.json``, keeping the stored rows of backends not run again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.backends import get_backend
from restnetc.backends.pt2e import export_batched
from restnetc.budget import measure
from restnetc.config.project import Normalization, TimmModel
from restnetc.config.target import Backend
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.images import pick
from restnetc.models import decompose
from restnetc.models.factory import build_model
from restnetc.models.zoo import IMAGE_SIZE
from restnetc.native_output import captured
from restnetc.runners import get_runtime
from simulation_gap import FASHION_MNIST

WAYS = ("alone", "kept_open")


def _kept(call: Callable[[], object]) -> measure.Opener:
    """An opener that hands back ``call``, opened once and held."""
    return lambda: call


def _time(way: str, backend: str, path: Path, copies: int, threads: int, runs: int) -> dict[str, float]:
    """Median milliseconds of each copy, timed ``way`` in this process (a fresh one: its runtime is sized to
    ``threads`` first, as the latency probe does)."""
    get_runtime(backend).claim_threads(threads)
    example = np.random.default_rng(0).standard_normal((1, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    openers = {f"copy{i}": measure.opener(measure.TimedEntry(backend, path, example), threads) for i in range(copies)}
    if way == "kept_open":
        openers = {key: _kept(open_program()) for key, open_program in openers.items()}
    samples = measure.time_interleaved(openers, warmup=3, runs=runs)
    return {key: round(statistics.median(values), 4) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo_resnet18")
    parser.add_argument("--backends", nargs="+", type=Backend, default=[Backend.EXECUTORCH, Backend.LITERT])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("WAY", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--child-backend", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, path = args.child
        print(json.dumps(_time(way, args.child_backend, Path(path), args.copies, args.threads, args.runs)))
        return
    norm = Normalization.model_validate(common.zoo()["normalization"])
    calibration = load_fashion_mnist(FASHION_MNIST, "train", pick(128, 60000, 1), IMAGE_SIZE, norm).images
    model = decompose(build_model(TimmModel.model_validate(common.zoo_model(args.model)), IMAGE_SIZE)).eval()
    rows = []
    with tempfile.TemporaryDirectory(prefix="timing-protocol-") as work:
        for name in args.backends:
            backend = get_backend(name)
            path = Path(work) / f"{args.model}-int8{backend.suffix}"
            with captured():
                graph, quantizer = backend.quantize(export_batched(model, calibration), calibration)
                path.write_bytes(backend.compile(graph, calibration[:1], quantizer).data)
            for process in range(args.processes):
                for way in WAYS:  # the two ways alternate, so drift between processes hits both
                    command = [sys.executable, __file__, "--child", way, str(path), "--child-backend", name.value]
                    command += ["--copies", str(args.copies), "--threads", str(args.threads), "--runs", str(args.runs)]
                    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
                    medians = json.loads(done.stdout.strip().splitlines()[-1])
                    row = {"backend": name.value, "process": process, "way": way, "median_ms": medians}
                    row["slowest_over_fastest"] = round(max(medians.values()) / min(medians.values()), 3)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    settings = {key: getattr(args, key) for key in ("model", "copies", "threads", "runs", "processes")}
    common.store_rows("timing_protocol", settings, rows, key="backend")


if __name__ == "__main__":
    main()
