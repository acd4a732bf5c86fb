"""Stand-ins for tests that need neither a real build nor a phone: a tiny bundle on disk with a valid manifest,
and a device (``adb``, ``ssh``, ``benchmark_model``, ``taskset``) that runs commands here, through ``sh -c``
as a device's shell would."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from restnetc.budget.measure import HostLatency, HostMemory
from restnetc.bundle.manifest import (
    Accuracy,
    Artifact,
    Delegation,
    InputSpec,
    Latency,
    Manifest,
    Memory,
    Pareto,
    SplitRecord,
    Splits,
    write_manifest,
)
from tests.conftest import REPO

SPLIT = SplitRecord(images=64, indices_sha256="0" * 64)


def fake_artifact(index: int, file: str, data: bytes) -> Artifact:
    """Artifact ``a<index>`` stored at ``file`` with content ``data`` (ExecuTorch for ``.pte``, else LiteRT);
    every figure made up."""
    return Artifact(
        id=f"a{index}",
        role="parent",
        backend="executorch" if file.endswith(".pte") else "litert",
        quantization="int8",
        float_modules=[],
        file=file,
        entry_point="serving_default",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        params=1000,
        macs=2000,
        budget=None,
        stitch=None,
        accuracy=Accuracy(
            eager_fp32=90.0,
            artifact=89.5,
            images=64,
            interval=(80.0, 94.7),
            validation=87.5,
            validation_images=64,
            validation_correct="1" * 56 + "0" * 8,
        ),
        agreement=99.0,
        max_logit_diff=0.1,
        latency_ms=Latency(
            host=HostLatency(median=1.0, p10=0.9, p90=1.1, threads=1, runs=5, warmup=1, load_average=(0.0, 0.0, 0.0))
        ),
        memory_bytes=Memory(host=HostMemory(peak_delta=1 << 20, peak_total=1 << 26, program=1 << 19)),
        input=InputSpec(
            shape=(1, 3, 32, 32), dtype="float32", normalization={"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
        ),
        delegation=Delegation(delegate="xnnpack", partitions=1, delegated_ops=10, fallback_ops={}),
        policy="kept int8",
        pareto=Pareto(front=True),
    )


def write_fake_bundle(bundle: Path, files: dict[str, bytes]) -> Manifest:
    """Write ``files`` (relative path: content) and a manifest with one artifact per file into ``bundle``."""
    for file, data in files.items():
        (bundle / file).parent.mkdir(parents=True, exist_ok=True)
        (bundle / file).write_bytes(data)
    manifest = Manifest(
        target={"name": "fake-target", "runtime": {"threads": 2}},
        project={"name": "fake-project"},
        splits=Splits(train=SPLIT, validation=SPLIT, test=SPLIT),
        labels=["a", "b"],
        tools={"restnetc": "test"},
        created="2025-01-01T00:00:00Z",
        accuracy_tolerance_points=1.0,
        artifacts=[fake_artifact(i, file, data) for i, (file, data) in enumerate(files.items())],
    )
    write_manifest(bundle, manifest)
    return manifest


FAKE_ADB = """#!/bin/sh
# adb: 'push' copies the file; 'shell [-n]' joins its words into one command line for sh -c, as adbd does.
echo "$*" >> "$FAKE_DEVICE/calls"
[ "$1" = "-s" ] && shift 2
case "$1" in
  push) cp "$2" "$3" ;;
  shell) shift; [ "$1" = "-n" ] && { shift; exec </dev/null; }; exec sh -c "$*" ;;
  *) exit 2 ;;
esac
"""

FAKE_SSH = """#!/bin/sh
# ssh [-n] HOST WORDS...: joins the words into one command line for sh -c, as the remote login shell does.
echo "$*" >> "$FAKE_DEVICE/calls"
[ "$1" = "-n" ] && { shift; exec </dev/null; }
shift
exec sh -c "$*"
"""

FAKE_BENCHMARK_MODEL = """#!/bin/sh
# benchmark_model: the fixture log for the graph (and signature) it was given, and how many arguments it got.
signature=
for arg in "$@"; do
  case "$arg" in --graph=*) graph=${arg#--graph=} ;; --signature_to_run_for=*) signature=${arg#*=} ;; esac
done
[ -f "$graph" ] || { echo "no such graph: $graph"; exit 1; }
printf 'Graph: [%s]\\nSignature to run: [%s]\\nArguments: [%s]\\n' "$graph" "$signature" "$#"
grep -v '^Graph: ' "$FAKE_DEVICE/template.log"
"""

FAKE_TASKSET = """#!/bin/sh
# taskset MASK COMMAND...: records the mask, runs the command unpinned.
echo "$1" >> "$FAKE_DEVICE/taskset"
shift
exec "$@"
"""


def fake_device(root: Path) -> dict[str, str]:
    """Install the stand-ins under ``root``; the environment to run a ``bench plan`` script against them.

    ``root/device`` receives the calls made (``calls``, ``taskset``); ``benchmark_model`` is found on PATH.
    """
    device, bin_dir = root / "device", root / "bin"
    device.mkdir()
    bin_dir.mkdir()
    (device / "template.log").write_text((REPO / "tests" / "fixtures" / "benchmark_logs" / "modern.log").read_text())
    tools = {"adb": FAKE_ADB, "ssh": FAKE_SSH, "benchmark_model": FAKE_BENCHMARK_MODEL, "taskset": FAKE_TASKSET}
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DEVICE": str(device),
        "BENCHMARK_MODEL": "benchmark_model",
    }
