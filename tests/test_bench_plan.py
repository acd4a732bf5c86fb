"""``bench plan`` scripts run on the host and, through ``adb shell`` or ``ssh``, in the device's shell: no name,
however hostile, may run a command on either side."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from restnetc.bench.plan import BenchSettings, Device, Run, plan_script
from restnetc.bundle.manifest import read_manifest, write_manifest
from tests.conftest import CliResult
from tests.fakes import fake_device, write_fake_bundle

# Each would create a PWNED* file if a shell on either side parsed it instead of taking it as a name.
HOSTILE = [
    "litert/$(touch PWNED1).tflite",
    "litert/;touch PWNED2;.tflite",
    "litert/`touch PWNED3`.tflite",
    'litert/it\'s "$(touch PWNED4)" & a b.tflite',
    "litert/-n $HOME.tflite",
]


def test_the_manifest_refuses_a_name_with_shell_metacharacters(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    bundle = tmp_path / "bundle"
    write_fake_bundle(bundle, {"litert/a.tflite": b"model"})
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"][0]["file"] = HOSTILE[1]
    (bundle / "manifest.json").write_text(json.dumps(data))
    result = cli("bench", "plan", str(bundle), "--out", str(tmp_path / "plan.sh"))
    assert result.code == 1 and "field file: 'litert/;touch PWNED2;.tflite' is not a relative path" in result.stderr
    assert not (tmp_path / "plan.sh").exists()


@pytest.mark.parametrize("device", ["adb", "adb:emulator 5554", "ssh:pi@board"])
def test_hostile_names_run_nothing_on_the_host_or_the_device(tmp_path: Path, device: str) -> None:
    """The plan is built directly from the names (the manifest would refuse them), then run against stand-ins
    whose device shell really parses each command line."""
    source = tmp_path / "bundle $(touch PWNED5)"
    for file in HOSTILE:
        (source / file).parent.mkdir(parents=True, exist_ok=True)
        (source / file).write_text(file)
    settings = BenchSettings(threads=2, runs=3, warmup=1, cpu_mask="f0")
    ingest = "restnetc bench ingest $LOGS/*.log --bundle 'x $(touch PWNED6)'"
    hostile_signature = Run(HOSTILE[0], "s'$(touch PWNED9)")  # the manifest refuses it; quoting must hold anyway
    runs = [Run(file) for file in HOSTILE] + [hostile_signature]
    text = plan_script(source, runs, "t$(touch PWNED7)", Device.parse(device), settings, ingest)
    script = tmp_path / "plan.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True, check=False).returncode == 0

    env = fake_device(tmp_path)
    remote_dir = tmp_path / "device" / "remote $(touch PWNED8) 'dir'"
    env["REMOTE_DIR"] = str(remote_dir)
    run = subprocess.run(["sh", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert not list(tmp_path.rglob("PWNED*")), "a name was run as a command"
    assert "failed" not in run.stderr
    for file in HOSTILE:
        name = Path(file).name
        assert (remote_dir / name).read_text() == file, "pushed under its exact name"
        log = (tmp_path / "logs" / f"{Path(name).stem}.log").read_text()
        assert log.startswith(f"Graph: [{remote_dir / name}]\nSignature to run: []\nArguments: [6]\n"), name
    name = Path(hostile_signature.file).name
    log = (tmp_path / "logs" / hostile_signature.log_name).read_text()
    expected = f"Graph: [{remote_dir / name}]\nSignature to run: [{hostile_signature.signature}]\nArguments: [7]\n"
    assert log.startswith(expected), "the signature arrives as one word, as written"
    assert (tmp_path / "device" / "taskset").read_text() == "f0\n" * len(runs)
    if device.startswith("adb:"):
        calls = (tmp_path / "device" / "calls").read_text().splitlines()
        assert len(calls) == 1 + len(HOSTILE) + len(runs), "each file pushed once, each run one remote call"
        assert all(call.startswith("-s emulator 5554 ") for call in calls)


def _run_against_the_stand_in_device(script: Path, tmp_path: Path) -> list[Path]:
    """Runs a plan script against ``fakes.fake_device`` (from ``tmp_path``); returns the logs it fetched."""
    env = {**fake_device(tmp_path), "REMOTE_DIR": str(tmp_path / "device" / "remote")}
    run = subprocess.run(["sh", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return sorted((tmp_path / "logs").glob("*.log"))


def test_a_newline_in_a_path_cannot_end_a_comment_and_run_the_next_line(tmp_path: Path) -> None:
    source = tmp_path / "bundle\n$(touch PWNED1)"
    source.mkdir()
    ingest = "restnetc bench ingest $LOGS/*.log --bundle x\n$(touch PWNED2)"
    text = plan_script(source, [], "t", Device.parse("adb"), BenchSettings(1, 1, 1, None), ingest)
    script = tmp_path / "plan.sh"
    script.write_text(text)
    _run_against_the_stand_in_device(script, tmp_path)
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_plan_run_against_the_stand_in_device_yields_logs_that_ingest(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    bundle = tmp_path / "bundle"
    write_fake_bundle(bundle, {"litert/a.tflite": b"first", "litert/b.tflite": b"second", "executorch/c.pte": b"c"})
    script = tmp_path / "bench.sh"
    assert cli("bench", "plan", str(bundle), "--device", "adb:emulator-5554", "--out", str(script)).code == 0
    logs = _run_against_the_stand_in_device(script, tmp_path)
    assert [p.name for p in logs] == ["a.log", "b.log"]
    assert cli("bench", "ingest", *map(str, logs), "--bundle", str(bundle)).code == 0
    measured = [a.file for a in read_manifest(bundle).artifacts if a.latency_ms.device is not None]
    assert measured == ["litert/a.tflite", "litert/b.tflite"]


def test_a_ladder_program_is_benchmarked_once_per_signature_and_each_log_lands_on_its_rung(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A file shared by several artifacts (``bundle.layout: ladder``): one ``benchmark_model`` run per entry point
    with ``--signature_to_run_for``; ingest gives each artifact the log of its own signature, and refuses a log
    of the shared file that names no signature (which one ran would be a guess)."""
    bundle = tmp_path / "bundle"
    manifest = write_fake_bundle(bundle, {"litert/ladder.tflite": b"program"})
    rungs = [manifest.artifacts[0].model_copy(update={"id": f"rung-{i}", "entry_point": f"rung_{i}"}) for i in (0, 1)]
    write_manifest(bundle, manifest.model_copy(update={"artifacts": rungs}))
    script = tmp_path / "bench.sh"
    assert cli("bench", "plan", str(bundle), "--out", str(script)).code == 0
    assert script.read_text().count("--signature_to_run_for=") == 2
    logs = _run_against_the_stand_in_device(script, tmp_path)
    assert [p.name for p in logs] == ["ladder.rung_0.log", "ladder.rung_1.log"]
    assert cli("bench", "ingest", *map(str, logs), "--bundle", str(bundle)).code == 0
    devices = [a.latency_ms.device for a in read_manifest(bundle).artifacts]
    assert [d.log for d in devices if d is not None] == [str(p) for p in logs], "each log on its own signature"
    unnamed = tmp_path / "unnamed.log"
    unnamed.write_text(logs[0].read_text().replace("Signature to run: [rung_0]", "Signature to run: []"))
    result = cli("bench", "ingest", str(unnamed), "--bundle", str(bundle))
    assert result.code == 1 and "holds several signatures (rung_0, rung_1) and the log names none" in result.stderr
