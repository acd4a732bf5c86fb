"""``restnetc bench plan``: a self-contained shell script that benchmarks .tflite files on a device.

The files are a bundle's LiteRT artifacts, or the part artifacts of a cost table (``restnetc profile``).
The script pushes each to the device (``adb`` or ``ssh``), runs TFLite's ``benchmark_model`` on it
with the flags that matter, and saves one log per model next to itself, ready for ``restnetc bench ingest``
(``--bundle`` or ``--table``). The source directory, benchmark binary and remote directory can be overridden
with environment variables when the script runs.

Every value is quoted for each shell it crosses, file names included (a hostile bundle must not run commands
here or on the device): ``shlex.quote`` for the host shell that runs the script, then ``remote`` quotes each
of its arguments again, at run time, for the device's shell (``adb shell`` and ``ssh`` pass one command line
to it). ``adb push`` involves no device shell; over ssh a file is pushed with ``cat``, not ``scp``, whose
remote paths a shell parses or not depending on the protocol version.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from restnetc.bundle.manifest import Manifest
from restnetc.errors import RestnetcError

_QUOTED = r"""quoted() {  # the arguments, each single-quoted for the device's shell
  for arg in "$@"; do printf "'%s' " "$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")"; done
}"""


@dataclass(frozen=True)
class Device:
    """Where to run: ``adb`` (optionally one serial) or ``ssh`` to a host."""

    kind: str
    address: str | None

    @staticmethod
    def parse(text: str) -> Device:
        """``adb``, ``adb:SERIAL`` or ``ssh:[USER@]HOST``."""
        kind, _, address = text.partition(":")
        if kind == "adb":
            return Device("adb", address or None)
        if kind == "ssh" and address:
            return Device("ssh", address)
        raise RestnetcError(f"--device: expected adb, adb:SERIAL or ssh:HOST, got {text!r}")

    @property
    def default_remote_dir(self) -> str:
        return "/data/local/tmp/restnetc" if self.kind == "adb" else "/tmp/restnetc"

    @property
    def default_binary(self) -> str:
        return "/data/local/tmp/benchmark_model" if self.kind == "adb" else "benchmark_model"

    def prelude(self) -> list[str]:
        """Shell functions ``remote CMD ARG...`` (run one command on the device) and ``push LOCAL REMOTE``."""
        if self.kind == "adb":
            adb = f"adb -s {shlex.quote(self.address)}" if self.address else "adb"
            return [
                _QUOTED,
                f'remote() {{ {adb} shell -n "$(quoted "$@")"; }}',
                f'push() {{ {adb} push "$1" "$2" >/dev/null; }}',
            ]
        return [
            _QUOTED,
            f"HOST={shlex.quote(self.address or '')}",
            'remote() { ssh -n "$HOST" "$(quoted "$@")"; }',
            'push() { ssh "$HOST" "cat > $(quoted "$2")" < "$1"; }',
        ]


@dataclass(frozen=True)
class BenchSettings:
    """benchmark_model flags."""

    threads: int
    runs: int
    warmup: int
    cpu_mask: str | None


@dataclass(frozen=True)
class Run:
    """One ``benchmark_model`` run: a file (relative to the script's source) and, for a file holding several
    entry points (a ladder program), the signature to run (``--signature_to_run_for``)."""

    file: str
    signature: str | None = None

    @property
    def log_name(self) -> str:
        """The run's log file name: ``<file stem>.log``, or ``<file stem>.<signature>.log``."""
        stem = PurePosixPath(self.file).stem
        return f"{stem}.{self.signature}.log" if self.signature else f"{stem}.log"


def bundle_runs(bundle: Path, manifest: Manifest) -> list[Run]:
    """A run per LiteRT artifact of a bundle: its file, and its signature when the file holds several."""
    litert = [a for a in manifest.artifacts if a.backend == "litert"]
    if not litert:
        raise RestnetcError(f"{bundle}: the bundle has no LiteRT (.tflite) artifacts to benchmark")
    shared = {a.file for a in litert if sum(b.file == a.file for b in litert) > 1}
    return sorted({Run(a.file, a.entry_point if a.file in shared else None) for a in litert}, key=_order)


def _order(run: Run) -> tuple[str, str]:
    return run.file, run.signature or ""


def plan_script(
    source: Path, runs: list[Run], target: str, device: Device, settings: BenchSettings, ingest: str
) -> str:
    """The shell script text that makes ``runs`` (files relative to ``source``) and says to run ``ingest`` next."""
    taskset = f"taskset {shlex.quote(settings.cpu_mask)} " if settings.cpu_mask else ""
    flags = (
        f"--num_threads={settings.threads} --num_runs={settings.runs} --warmup_runs={settings.warmup} "
        "--use_xnnpack=true --report_peak_memory_footprint=true"
    )
    address = f":{device.address}" if device.address else ""
    lines = [
        "#!/bin/sh",
        _comment(f"Generated by restnetc bench plan: benchmark_model on {device.kind}{address}"),
        _comment(f"for {source.resolve()} (target {target})."),
        _comment(f"Then: {ingest}"),
        "set -eu",
        'HERE=$(cd "$(dirname "$0")" && pwd)',
        f"SOURCE=${{SOURCE:-{shlex.quote(str(source.resolve()))}}}",
        'LOGS=${LOGS:-"$HERE/logs"}',
        f"BENCHMARK_MODEL=${{BENCHMARK_MODEL:-{shlex.quote(device.default_binary)}}}",
        f"REMOTE_DIR=${{REMOTE_DIR:-{shlex.quote(f'{device.default_remote_dir}/{target}')}}}",
        *device.prelude(),
        'mkdir -p "$LOGS"',
        'remote mkdir -p "$REMOTE_DIR"',
    ]
    pushed: set[str] = set()
    for run in runs:
        name = PurePosixPath(run.file).name
        remote = f'"$REMOTE_DIR"/{shlex.quote(name)}'
        log = f'"$LOGS"/{shlex.quote(run.log_name)}'
        what = name if run.signature is None else f"{name} signature {run.signature}"
        signature = "" if run.signature is None else " " + shlex.quote(f"--signature_to_run_for={run.signature}")
        if run.file not in pushed:
            lines.append(f'push "$SOURCE"/{shlex.quote(run.file)} {remote}')
            pushed.add(run.file)
        lines += [
            f"echo {shlex.quote('benchmarking ' + what)}",
            f'remote {taskset}"$BENCHMARK_MODEL" --graph={remote}{signature} {flags} > {log} 2>&1 '
            f"|| echo {shlex.quote(f'benchmark_model failed on {what}; see')} {log} >&2",
        ]
    lines.append(f"echo {shlex.quote(f'logs in $LOGS; next: {ingest}')}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """A shell comment line showing ``text`` (a newline in it would end the comment and start a command)."""
    return "# " + text.replace("\n", "\\n")
