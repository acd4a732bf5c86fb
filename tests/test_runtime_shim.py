"""The runtime shim's C core: its own suite (plain and under ASan/UBSan), and the CLI on a real bundle.

The bundle is the one ``restnetc build`` produced in this session (``built``); ``bundle.index`` is derived
from ``manifest.json``, and the C parser must read back exactly what the manifest says.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import torch

from restnetc.bundle.manifest import Artifact, read_manifest
from restnetc.bundle.runtime_index import backend_ranks, memory_need, seal, ship_ranks, write_index
from restnetc.config.target import LadderPolicy
from restnetc.runners import get_runtime
from restnetc.runtime import Bundle, PackingPolicy, Runner, ShimError, probe_memory
from restnetc.shim_abi import ResizeName
from restnetc.units import MIB
from tests.conftest import REPO, CliResult

SHIM = REPO / "runtime_shim"
FIXTURES = SHIM / "tests" / "fixtures"
HEADROOM_MB = 1


def _cmake_build(build_dir: Path, *options: str, target: str = "all") -> Path:
    subprocess.run(["cmake", "-S", str(SHIM), "-B", str(build_dir), *options], check=True, capture_output=True)
    command = ["cmake", "--build", str(build_dir), "-j2", "--target", target]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build_dir


def _with_executorch(platform: str = "x86_64") -> tuple[str, ...]:
    """CMake options that build the ExecuTorch backend against the pinned wheel's package: the installed one, or
    the aarch64 one that bootstrap.sh unpacked."""
    import executorch

    root = AARCH64 if platform == "aarch64" else Path(next(iter(executorch.__path__))).parent
    package = root / "executorch" / "share" / "cmake"
    assert package.is_dir(), f"{package} is missing: run scripts/bootstrap.sh"
    return "-DRS_WITH_EXECUTORCH=ON", f"-Dexecutorch_DIR={package}"


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release build of the shim with both backends (warnings are errors)."""
    options = ("-DCMAKE_BUILD_TYPE=Release", *_with_executorch())
    refusing = f"-DRS_TEST_LITERT_LIBRARY={_litert_library()}"  # tests/litert_refusing_options.c in front of it
    return _cmake_build(tmp_path_factory.mktemp("shim"), *options, refusing)


def _run(
    *args: str | Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)


def _libasan(library: Path) -> Path:
    """The libasan an instrumented ``library`` links (checked instrumented): what a host process must preload."""
    assert b"__asan_init" in library.read_bytes(), f"{library} should be instrumented"
    needed = subprocess.run(["ldd", library], check=True, capture_output=True, text=True).stdout
    found = re.search(r"libasan\.so\S* => (\S+)", needed)
    assert found is not None, needed
    return Path(found[1])


def test_core_suite_passes(shim: Path) -> None:
    result = _run(shim / "tests" / "test_core", FIXTURES)
    assert result.returncode == 0, result.stderr
    assert "all core tests passed" in result.stdout


@pytest.fixture(scope="session")
def shim_asan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim (core, both backends, tests) built with AddressSanitizer and UndefinedBehaviorSanitizer (the
    ExecuTorch libraries it links are the wheel's, not instrumented)."""
    options = ("-DRS_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug", *_with_executorch())
    return _cmake_build(tmp_path_factory.mktemp("shim-asan"), *options)


def _assert_sanitizers_quiet(result: subprocess.CompletedProcess[str]) -> None:
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr, result.stderr[-3000:]
    assert "LeakSanitizer" not in result.stderr, result.stderr[-3000:]


def test_core_suite_passes_under_address_and_undefined_behaviour_sanitizers(shim_asan: Path) -> None:
    result = _run(shim_asan / "tests" / "test_core", FIXTURES)
    assert result.returncode == 0, result.stderr
    _assert_sanitizers_quiet(result)


@pytest.fixture(scope="session")
def shim_tsan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The core and its tests built with ThreadSanitizer."""
    options = ("-DRS_SANITIZE_THREAD=ON", "-DRS_WITH_LITERT=OFF", "-DCMAKE_BUILD_TYPE=Debug")
    return _cmake_build(tmp_path_factory.mktemp("shim-tsan"), *options)


@pytest.mark.parametrize("build_name", ["shim", "shim_asan", "shim_tsan"])
def test_runner_contracts_hold_with_two_threads_under_sanitizers(
    build_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Verified bytes, recovery, no flapping, and run/refresh/validate/close from two threads (test_runner.c)."""
    build: Path = request.getfixturevalue(build_name)
    result = _run(build / "tests" / "test_runner", tmp_path)
    assert result.returncode == 0 and "all runner contract tests passed" in result.stdout, result.stderr[-3000:]
    _assert_sanitizers_quiet(result)
    assert "ThreadSanitizer" not in result.stderr, result.stderr[-3000:]


PROMPT_SECONDS = 5.0
"""How soon the shim must refuse a special file. It takes milliseconds; the bound is loose because the suite runs
on a shared 2-core machine, and a blocking read would never return (``_timed``'s 10 s timeout ends it)."""


def _timed(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = _run(*args, timeout=10)
    return result, time.monotonic() - start


def test_special_files_are_refused_promptly_with_exit_1(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """A FIFO or a directory in place of an artifact, bundle.index or a memory file is refused, never read."""
    artifact = next(a for a in read_manifest(built[0]).artifacts if a.backend == "litert")
    cases: dict[str, tuple[str, str]] = {}  # name: (path in the copy to replace, kind)
    for kind in ("fifo", "directory"):
        cases[f"artifact-{kind}"] = (artifact.file, kind)
        cases[f"index-{kind}"] = ("bundle.index", kind)
    for name, (relative, kind) in cases.items():
        bundle = tmp_path / name
        shutil.copytree(built[0], bundle)
        (bundle / relative).unlink()
        os.mkfifo(bundle / relative) if kind == "fifo" else (bundle / relative).mkdir()
        result, seconds = _timed(shim / "restnet-shim", "verify", bundle)
        assert result.returncode == 1 and seconds < PROMPT_SECONDS, (name, seconds, result.stdout, result.stderr)
        assert "not a regular file" in result.stdout + result.stderr, name
    for kind in ("fifo", "directory"):
        root = tmp_path / f"memory-{kind}"
        _write(root, "proc/self/cgroup", "0::/app\n")
        (root / "proc" / "meminfo").mkdir() if kind == "directory" else os.mkfifo(root / "proc" / "meminfo")
        result, seconds = _timed(shim / "restnet-shim", "select", built[0], "--memory-root", root)
        assert result.returncode == 1 and seconds < PROMPT_SECONDS, (kind, seconds)
        assert "meminfo: not a regular file" in result.stderr, kind


def _replaced(bundle: Path, file: str, how: str, other: Path) -> None:
    """Replace ``bundle/file`` as an update or a tamper would: another valid model, a symlink out, a truncation."""
    target = bundle / file
    staged = target.with_suffix(".new")
    if how == "another-model":
        shutil.copyfile(other, staged)
        staged.replace(target)
    elif how == "symlink-out":
        outside = bundle.parent / f"{bundle.name}-outside.tflite"
        shutil.copyfile(other, outside)
        target.unlink()
        target.symlink_to(outside)
    else:
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("how", ["another-model", "symlink-out", "truncated"])
def test_python_runner_never_runs_a_replaced_file(
    how: str, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """Through ``restnetc.runtime``: the top variant keeps running the bytes it verified after its file is
    replaced, and once released, coming back to it is refused with the reason (the issue's OTA/tamper case)."""
    bundle = _litert_only_bundle(built[0], tmp_path / "bundle")
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    image = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with Bundle(bundle) as opened, Runner(opened, memory_root=tmp_path / "plenty", headroom_mb=1) as runner:
        top = runner.current
        assert top is not None
        before = runner.run(image)
        smallest = min(opened.variants, key=lambda v: v.memory_bytes)
        _replaced(bundle, top.file, how, bundle / smallest.file)
        np.testing.assert_array_equal(runner.run(image), before)
        assert runner.refresh(available=0) and runner.current != top
        with pytest.raises(ShimError, match=top.id) as caught:
            runner.refresh(available=8000 * MIB)
        assert caught.value.status in {"sha256 mismatch", "unsafe path", "size mismatch"}, caught.value
        assert runner.current is not None and runner.current.id != top.id
        runner.refresh(available=8000 * MIB)  # the refusal is remembered: no retry (no error), never back on top
        assert runner.current is not None and runner.current.id != top.id


def test_python_runner_is_safe_from_two_threads(built: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    """run from one thread, refresh from another, then close while the bundle is already closed."""
    bundle = _litert_only_bundle(built[0], tmp_path / "bundle")
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    opened = Bundle(bundle)
    runner = Runner(opened, memory_root=tmp_path / "plenty", headroom_mb=1)
    image = np.zeros(opened.input_shape, dtype=np.float32)
    errors: list[BaseException] = []

    def runs() -> None:
        try:
            for _ in range(200):
                assert runner.run(image).shape == (len(opened.labels),)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=runs)
    thread.start()
    for step in range(100):
        runner.refresh(available=0 if step % 2 else 8000 * MIB)
    thread.join()
    assert not errors, errors
    classes = len(opened.labels)
    opened.close()  # the runner keeps the C bundle alive
    assert runner.run(image).shape == (classes,)
    runner.close()


def test_python_binding_reads_nested_cgroup_limits_and_fails_closed() -> None:
    memory = probe_memory(FIXTURES / "memory" / "cgroup-v2-nested")
    assert (memory.available, memory.source, memory.cgroup_limit) == (100 * MIB, "cgroup v2", 200 * MIB)
    with pytest.raises(ShimError, match=r"app/memory\.max: expected a byte count") as caught:
        probe_memory(FIXTURES / "memory" / "cgroup-v2-malformed")
    assert caught.value.status == "format error"


def _select(shim: Path, bundle: Path, backend: str, *memory: str) -> tuple[int, dict[str, object]]:
    args = ["select", bundle, "--backend", backend, "--headroom-mb", str(HEADROOM_MB), "--json", *memory]
    result = _run(shim / "restnet-shim", *args)
    return result.returncode, json.loads(result.stdout)


def test_index_read_by_the_c_core_agrees_with_the_manifest(shim: Path, built: tuple[Path, Path, Path, Path]) -> None:
    bundle = built[0]
    manifest = read_manifest(bundle)
    for backend in ("executorch", "litert"):
        code, selection = _select(shim, bundle, backend, "--available-mb", "100000")
        assert code == 0, selection
        listed = {(a["id"], a["backend"]): a for a in selection["artifacts"]}  # type: ignore[attr-defined]
        assert len(listed) == len(manifest.artifacts)
        for artifact in manifest.artifacts:
            seen = listed[(artifact.id, artifact.backend)]
            assert (seen["file"], seen["bytes"], seen["sha256"]) == (artifact.file, artifact.bytes, artifact.sha256)
            assert seen["memory_bytes"] == memory_need(artifact) and seen["params"] == artifact.params
            assert seen["accuracy"] == pytest.approx(artifact.accuracy.artifact, abs=1e-3)
            assert seen["entry_point"] == artifact.entry_point
            assert seen["rank"] == ship_ranks(manifest)[(artifact.id, artifact.backend)]
        ours = [a for a in manifest.artifacts if a.backend == backend]
        assert selection["chosen"] == _expected(ours, 100000 * MIB)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _expected(artifacts: list[Artifact], available: int) -> str | None:
    """What the core chooses among ``artifacts`` (one backend's, built under the default ladder policy) with
    ``available`` bytes and the default headroom: among those that fit, the highest ship rank, then the most
    accurate, then the least memory (``rs_select``'s order)."""
    ranks = backend_ranks(artifacts, LadderPolicy())
    fitting = [a for a in artifacts if memory_need(a) + HEADROOM_MB * MIB <= available]
    best = max(fitting, key=lambda a: (ranks[a.id], round(a.accuracy.artifact, 3), -memory_need(a)), default=None)
    return None if best is None else best.id


def test_select_chooses_what_the_ship_rule_ships_in_four_memory_situations(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    bundle = built[0]
    litert = [a for a in read_manifest(bundle).artifacts if a.backend == "litert"]
    needs = sorted({memory_need(a) + HEADROOM_MB * MIB for a in litert})
    plenty, smallest = needs[-1] + 64 * MIB, needs[0]
    middle = needs[len(needs) // 2]
    situations = {  # name: (files under the root, available bytes)
        "meminfo": ({"proc/meminfo": f"MemTotal: 999999999 kB\nMemAvailable: {plenty // 1024} kB\n"}, plenty),
        "cgroup-v2": (
            {
                "proc/meminfo": f"MemAvailable: {plenty // 1024} kB\n",
                "proc/self/cgroup": "0::/apps/camera\n",
                "sys/fs/cgroup/apps/camera/memory.max": f"{middle + 5 * MIB}\n",
                "sys/fs/cgroup/apps/camera/memory.current": f"{5 * MIB}\n",
            },
            middle,
        ),
        "cgroup-v1": (
            {
                "proc/meminfo": f"MemAvailable: {plenty // 1024} kB\n",
                "proc/self/cgroup": "7:memory:/docker/abc\n",
                "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{smallest + MIB}\n",
                "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": f"{MIB}\n",
            },
            smallest,
        ),
        "nothing-fits": ({"proc/meminfo": f"MemAvailable: {(smallest - MIB) // 1024} kB\n"}, smallest - MIB),
    }
    for name, (files, available) in situations.items():
        root = tmp_path / name
        for relative, text in files.items():
            _write(root, relative, text)
        code, selection = _select(shim, bundle, "litert", "--memory-root", str(root))
        assert selection["available_bytes"] == available, name
        expected = _expected(litert, available)
        assert selection["chosen"] == expected, (name, selection)
        assert code == (0 if expected else 1), name
        if expected is None:
            assert selection["status"] == "nothing fits"


def test_a_flipped_byte_is_reported_and_skipped(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(built[0], bundle)
    manifest = read_manifest(bundle)
    litert = [a for a in manifest.artifacts if a.backend == "litert"]
    best = next(a for a in litert if a.id == _expected(litert, 1 << 50))  # what the core chooses with plenty
    data = bytearray((bundle / best.file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / best.file).write_bytes(bytes(data))
    result = _run(shim / "restnet-shim", "verify", bundle)
    assert result.returncode == 1 and f"BAD  litert/{best.id}: " in result.stdout and "sha256" in result.stdout
    code, selection = _select(shim, bundle, "litert", "--available-mb", "100000")
    verdicts = {a["id"]: a for a in selection["artifacts"] if a["backend"] == "litert"}  # type: ignore[attr-defined]
    assert code == 0 and selection["chosen"] != best.id
    assert verdicts[best.id]["verdict"] == "invalid" and "sha256" in verdicts[best.id]["reason"]


def test_bad_usage_exits_2_with_a_message(shim: Path, tmp_path: Path) -> None:
    result = _run(shim / "restnet-shim", "select", tmp_path, "--backend", "onnx")
    assert result.returncode == 2 and "--backend must be litert or executorch" in result.stderr
    result = _run(shim / "restnet-shim", "select", tmp_path)
    assert result.returncode == 1 and "bundle.index: cannot open" in result.stderr
    for repeat in ("0", "1.5", "x", "100001"):
        result = _run(shim / "restnet-shim", "run", tmp_path, "--input", tmp_path / "i.f32", "--repeat", repeat)
        assert result.returncode == 2 and "--repeat expects a whole number of runs from 1 to 100000" in result.stderr
    result = _run(shim / "restnet-shim", "select", tmp_path, "--repeat", "3")
    assert result.returncode == 2 and "unknown option" in result.stderr, "only run times its runs"
    for threads in ("-1", "2.5", "x", "257"):
        result = _run(shim / "restnet-shim", "run", tmp_path, "--input", tmp_path / "i.f32", "--threads", threads)
        assert result.returncode == 2 and "--threads expects a whole number from 0" in result.stderr


def test_python_binding_runs_the_same_core_as_the_cli(shim: Path, built: tuple[Path, Path, Path, Path]) -> None:
    bundle = built[0]
    manifest = read_manifest(bundle)
    with Bundle(bundle) as opened:
        by_key = {(v.id, v.backend): v for v in opened.variants}
        for artifact in manifest.artifacts:
            variant = by_key[(artifact.id, artifact.backend)]
            assert (variant.file, variant.sha256, variant.memory_bytes) == (
                artifact.file,
                artifact.sha256,
                memory_need(artifact),
            )
        needs = sorted(memory_need(a) for a in manifest.artifacts if a.backend == "executorch")
        available = needs[len(needs) // 2] + HEADROOM_MB * MIB
        selection = opened.select("executorch", available, headroom_mb=HEADROOM_MB)
    _, from_cli = _select(shim, bundle, "executorch", "--available-mb", str(available / MIB))
    assert selection.chosen is not None and selection.chosen.id == from_cli["chosen"]
    cli_verdicts = {(a["id"], a["backend"]): a["verdict"] for a in from_cli["artifacts"]}  # type: ignore[attr-defined]
    assert {(v.variant.id, v.variant.backend): v.verdict for v in selection.verdicts} == cli_verdicts


def test_restnetc_select_prints_what_the_c_tool_prints(
    shim: Path, built: tuple[Path, Path, Path, Path], cli: Callable[..., CliResult]
) -> None:
    """``restnetc select --json`` (through ``restnetc.runtime``) prints ``restnet-shim select --json``'s document
    and exit status, for each backend with room for every rung and with none (exit 1, the core's reason)."""
    bundle = built[0]
    for backend in ("executorch", "litert"):
        for available in ("100000", "0"):
            code, expected = _select(shim, bundle, backend, "--available-mb", available)
            memory = ("--available-mb", available, "--headroom-mb", str(HEADROOM_MB))
            result = cli("select", str(bundle), "--backend", backend, *memory, "--json")
            assert (result.code, json.loads(result.stdout)) == (code, expected), result.stderr
            assert (code == 0) == (available != "0") and (expected["chosen"] is None) == (available == "0")
    text = cli("select", str(bundle), "--available-mb", "100000")
    chosen = _select(shim, bundle, "litert", "--available-mb", "100000")[1]["chosen"]
    assert text.code == 0 and f"chosen: {chosen} " in text.stdout


def test_python_runner_runs_both_backends_through_the_c_core_like_the_python_runtimes(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """``restnetc.runtime.Runner``: the core's runner with the packaged LiteRT backend, and the CMake-built
    ExecuTorch backend library plugged in; every variant gives the Python runtimes' logits. Every artifact takes
    float32 now (an int8 LiteRT program quantizes inside); were one to take an integer input, the core would
    quantize as ``TensorQuantization.quantize`` does, halves included, and the third image would lie on the
    rounding ties of its input scale. A ``packing`` that is no ``rs_packing`` is an argument error for both."""
    bundle = built[0]
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    noise = np.random.default_rng(4).standard_normal((2, 1, 3, 32, 32)).astype(np.float32)
    libraries = {"executorch_library": shim / "librestnet_shim_executorch.so"}
    with Bundle(bundle) as opened:
        for artifact in read_manifest(bundle).artifacts:
            options = libraries if artifact.backend == "executorch" else {}
            plenty = tmp_path / "plenty"
            q = artifact.input.quantization
            steps = np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32) % 200 - 100.5
            ties = (steps * np.float32(q.scale) if q else steps / 100).astype(np.float32)
            with Runner(opened, artifact.backend, memory_root=plenty, override=artifact.id, **options) as runner:
                assert (runner.current.id, runner.current.backend) == (artifact.id, artifact.backend)
                for image in [*noise, ties]:
                    expected = _python_logits(bundle, artifact, image)[0]
                    np.testing.assert_allclose(runner.run(image), expected, atol=1e-5, err_msg=artifact.id)
        with pytest.raises(ShimError, match="expected 3072 input values, got 3"):
            Runner(opened, memory_root=tmp_path / "plenty").run(np.zeros(3, dtype=np.float32))
        with pytest.raises(ShimError, match=r"no-libLiteRt\.so") as caught:
            Runner(opened, litert_library=tmp_path / "no-libLiteRt.so")
        assert caught.value.status == "backend error"
        for backend, options in (("litert", {}), ("executorch", libraries)):
            for bad in (3, -1):
                with pytest.raises(ShimError, match=f"packing {bad} is not an rs_packing") as caught:
                    Runner(opened, backend, packing=bad, **options)  # type: ignore[arg-type]
                assert caught.value.status == "invalid argument", backend


def test_python_runner_switches_across_every_entry_point_of_a_ladder_program_without_reading_it_again(
    shim: Path, built_ladder: Path, tmp_path: Path
) -> None:
    """Issue 16: in a ``bundle.layout: ladder`` bundle every artifact of a backend names the same file and its own
    entry point. One runner per backend opens that file once; ``use`` then moves across every rung, each running
    its own method or signature like the Python runtimes, while the file on disk is spoiled (nothing reads it
    again), and back to the first, still loaded. With the rungs sharing packed weights and without, as the
    index says (the compiler checked both files and found them safe to share) and against it: a weight shared
    by mistake would give some rung another rung's logits."""
    bundle = tmp_path / "bundle"
    shutil.copytree(built_ladder, bundle)
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    images = np.random.default_rng(5).standard_normal((2, 1, 3, 32, 32)).astype(np.float32)
    library = shim / "librestnet_shim_executorch.so"
    manifest = read_manifest(built_ladder)
    assert len({a.file for a in manifest.artifacts}) == 2 < len(manifest.artifacts)
    packing = {b: {a.packing for a in manifest.artifacts if a.backend == b} for b in ("executorch", "litert")}
    assert packing == {"executorch": {"shared"}, "litert": {"shared"}}
    with Bundle(built_ladder) as indexed:
        assert {v.backend: v.shared_packing for v in indexed.variants} == {"executorch": 1, "litert": 1}
    runs: list[tuple[str, dict[str, object]]] = [
        ("executorch", {"executorch_library": library, "packing": PackingPolicy.OWN}),
        ("executorch", {"executorch_library": library}),
        ("litert", {"packing": PackingPolicy.OWN}),
        ("litert", {}),
    ]
    with Bundle(bundle) as opened:
        for backend, options in runs:
            artifacts = [a for a in manifest.artifacts if a.backend == backend]
            shutil.copyfile(built_ladder / artifacts[0].file, bundle / artifacts[0].file)
            with Runner(opened, backend, memory_root=tmp_path / "plenty", **options) as runner:  # type: ignore[arg-type]
                (bundle / artifacts[0].file).write_bytes(b"spoiled")
                for artifact in [*artifacts, artifacts[0]]:
                    runner.use(artifact.id)
                    assert runner.current is not None and runner.current.entry_point == artifact.entry_point
                    for image in images:
                        expected = _python_logits(built_ladder, artifact, image)[0]
                        np.testing.assert_allclose(runner.run(image), expected, atol=1e-5, err_msg=artifact.id)
                with pytest.raises(ShimError, match="no variant 'nope'"):
                    runner.use("nope")


def test_litert_compiles_a_ladder_program_again_without_the_weight_cache_when_the_runtime_refuses_it(
    shim: Path, built_ladder: Path, tmp_path: Path
) -> None:
    """Issue 16: a LiteRT that refuses XNNPACK's options (``liblitert_refusing_options.so``: the real
    libLiteRt.so behind a LiteRtAddOpaqueOptions that fails) cannot share packed weights. As the index says
    (``packing=shared``), the backend compiles the program again packing per signature, and every rung runs
    with the Python runtime's logits; forced shared, opening is a backend error naming the weight cache. Fails
    when the retry is dropped (the first case errors) or when it hides a refusal the caller forced."""
    refusing = shim / "tests" / "liblitert_refusing_options.so"
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    artifacts = [a for a in read_manifest(built_ladder).artifacts if a.backend == "litert"]
    assert {a.packing for a in artifacts} == {"shared"}
    image = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with (
        Bundle(built_ladder) as opened,
        Runner(opened, "litert", litert_library=refusing, memory_root=tmp_path / "plenty") as runner,
    ):
        for artifact in artifacts:
            runner.use(artifact.id)
            expected = _python_logits(built_ladder, artifact, image)[0]
            np.testing.assert_allclose(runner.run(image), expected, atol=1e-5, err_msg=artifact.id)
    with Bundle(built_ladder) as opened, pytest.raises(ShimError, match="XNNPACK's weight cache failed"):
        Runner(opened, "litert", litert_library=refusing, memory_root=tmp_path / "plenty", packing=PackingPolicy.SHARED)


def test_python_runner_preloads_the_rung_below_the_chosen_one_of_its_program(
    shim: Path, built_ladder: Path, tmp_path: Path
) -> None:
    """``preload_neighbours``: opened on the top rung of a ladder program with memory to spare, the runner also
    loads the rung just below it (``resident``), and no other; without the policy only the chosen rung is
    loaded. An id the backend lacks is an argument error."""
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    libraries = {"executorch_library": shim / "librestnet_shim_executorch.so"}
    for backend in ("executorch", "litert"):
        bundle = _ranked_bundle(built_ladder, tmp_path / backend, (backend,))
        ranked = [a.id for a in _ranked(read_manifest(built_ladder).artifacts, backend)]
        options = libraries if backend == "executorch" else {}
        for preload in (False, True):
            with (
                Bundle(bundle) as opened,
                Runner(opened, backend, memory_root=tmp_path / "plenty", preload_neighbours=preload, **options) as r,
            ):
                assert r.current is not None and r.current.id == ranked[-1]
                assert [r.resident(i) for i in ranked] == [False] * (len(ranked) - 2) + [preload, True], backend
                with pytest.raises(ShimError, match="no variant 'nope'"):
                    r.resident("nope")


def test_python_runner_switches_to_a_smaller_variant_when_memory_shrinks(
    built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    bundle = _litert_only_bundle(built[0], tmp_path / "bundle")
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    with Bundle(bundle) as opened, Runner(opened, memory_root=tmp_path / "plenty", headroom_mb=1) as runner:
        largest = runner.current
        assert largest.memory_bytes == max(v.memory_bytes for v in opened.variants)
        assert not runner.refresh()
        # ``available`` is what is left beside the running variant: with nothing left, each refresh steps
        # down to the largest variant that fits in the memory the current one gives back.
        assert runner.refresh(available=0) and runner.current.memory_bytes == largest.memory_bytes - 100 * MIB
        assert runner.refresh(available=0) and runner.current.memory_bytes == largest.memory_bytes - 200 * MIB
        image = np.zeros(opened.input_shape, dtype=np.float32)
        assert runner.run(image).shape == (len(opened.labels),)
        assert runner.refresh(available=8000 * MIB) and runner.current == largest


def test_python_binding_probes_fixture_memory_and_reports_errors(tmp_path: Path) -> None:
    memory = probe_memory(FIXTURES / "memory" / "cgroup-v2-limit")
    assert (memory.available, memory.source, memory.cgroup_limit) == (384 * MIB, "cgroup v2", 512 * MIB)
    with pytest.raises(ShimError, match=r"bundle\.index: cannot open") as caught:
        Bundle(tmp_path)
    assert caught.value.status == "i/o error"


FUZZ_BUDGETS = {  # the index parser: 10^6 inputs (capped at 5 minutes); the others: 20 s each
    "index": ["-runs=1000000", "-max_total_time=300"],
    "memory": ["-max_total_time=20"],
    "image": ["-max_total_time=20"],
}


@pytest.mark.parametrize("target", sorted(FUZZ_BUDGETS))
def test_parsers_survive_bounded_fuzzing(target: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """libFuzzer (clang) with ASan/UBSan on each parser of untrusted bytes, seeded with its corpus (which keeps
    every crash found as a regression case); crash files go to the build directory, never the checkout."""
    build = tmp_path_factory.getbasetemp() / "shim-fuzz"
    if not (build / "tests" / f"fuzz_{target}").exists():
        _cmake_build(build, "-DRS_FUZZ=ON", "-DCMAKE_C_COMPILER=clang", "-DCMAKE_BUILD_TYPE=Debug")
    corpus, crashes = build / f"corpus-{target}", build / f"crashes-{target}"
    shutil.copytree(SHIM / "tests" / "fuzz_corpus" / target, corpus)
    crashes.mkdir()
    # libFuzzer's RSS limit reads ru_maxrss, which Linux carries over from this (large) pytest process through
    # fork and exec: it would report this process's size as the fuzzer's. Single allocations stay capped.
    limits = ["-rss_limit_mb=0", "-malloc_limit_mb=2048"]
    args = [*FUZZ_BUDGETS[target], "-max_len=4096", *limits, f"-artifact_prefix={crashes}/", corpus]
    result = _run(build / "tests" / f"fuzz_{target}", *args, timeout=400)
    assert result.returncode == 0 and not any(crashes.iterdir()), result.stderr[-3000:]
    runs = [line for line in result.stderr.splitlines() if line.startswith("Done ")]
    assert runs, result.stderr[-2000:]
    if target == "index":
        assert int(runs[0].split()[1]) >= 1_000_000, runs[0]


AARCH64 = REPO / ".venv" / "aarch64"  # the pinned wheels' aarch64 runtimes, unpacked by scripts/bootstrap.sh
DEBIAN_AARCH64 = REPO / ".venv" / "aarch64-debian"  # Debian's arm64 CPython and Java runtime, unpacked too


def _debian_aarch64(program: str) -> Path:
    """``program`` (relative) of the unpacked Debian arm64 root: run it under ``_emulated(..., DEBIAN_AARCH64)``."""
    path = DEBIAN_AARCH64 / program
    assert path.is_file(), f"{path} is missing: run scripts/bootstrap.sh"
    return path


@pytest.fixture(scope="session")
def shim_aarch64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim cross-built for aarch64 with ``-mcpu=cortex-a53``: core, both backends, CLI, tests."""
    toolchain = SHIM / "cmake" / "aarch64-linux-gnu.cmake"
    build = tmp_path_factory.mktemp("shim-aarch64")
    options = (f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", *_with_executorch("aarch64"))
    _cmake_build(build, *options, "-DCMAKE_BUILD_TYPE=Release")
    assert (build / "restnet-shim").read_bytes()[18:20] == b"\xb7\x00", "ELF e_machine should be EM_AARCH64 (183)"
    return build


def _emulated(build: Path, root: Path = Path("/usr/aarch64-linux-gnu")) -> list[str | Path]:
    """qemu-user as a Cortex-A53 with its libraries under ``root`` (the cross toolchain's, or the aarch64 CPython's
    that bootstrap.sh unpacks), and an Arm /proc/cpuinfo for libLiteRt.so (see cpuinfo_redirect.c)."""
    return [
        "qemu-aarch64-static", "-cpu", "cortex-a53", "-L", root,
        "-E", f"LD_PRELOAD={build / 'tests' / 'cpuinfo_redirect.so'}",
        "-E", f"RS_CPUINFO={FIXTURES / 'cpuinfo' / 'cortex-a53'}",
    ]  # fmt: skip


def test_core_suite_passes_on_aarch64_cortex_a53_under_qemu(shim_aarch64: Path) -> None:
    result = _run(*_emulated(shim_aarch64), shim_aarch64 / "tests" / "test_core", FIXTURES)
    assert result.returncode == 0, result.stderr
    assert "all core tests passed" in result.stdout


def _litert_library(platform: str = "x86_64") -> Path:
    """libLiteRt.so of the pinned wheel: the installed one, or the aarch64 one that bootstrap.sh fetched."""
    import ai_edge_litert

    if platform == "aarch64":
        library = AARCH64 / "ai_edge_litert" / "libLiteRt.so"
        assert library.is_file(), f"{library} is missing: run scripts/bootstrap.sh"
        return library
    return Path(ai_edge_litert.__file__).parent / "libLiteRt.so"


def _python_logits(bundle: Path, artifact: Artifact, batch: np.ndarray) -> np.ndarray:
    return get_runtime(artifact.backend).load(bundle / artifact.file, 1, artifact.entry_point)(batch)


def _shim_run(
    shim: Path,
    bundle: Path,
    artifact: Artifact,
    input_file: Path,
    platform: str = "x86_64",
    *,
    options: Sequence[str] = (),
) -> dict[str, Any]:
    prefix = _emulated(shim) if platform == "aarch64" else []
    result = _run(
        *prefix, shim / "restnet-shim", "run", bundle, "--input", input_file, "--override", artifact.id,
        "--backend", artifact.backend, "--litert-lib", _litert_library(platform), "--json", *options,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout))


def _assert_runs_match_python(
    shim: Path, bundle: Path, artifacts: list[Artifact], tmp_path: Path, platform: str = "x86_64", images: int = 3
) -> None:
    inputs = np.random.default_rng(0).standard_normal((images, 3, 32, 32)).astype(np.float32)
    for index, image in enumerate(inputs):
        image.tofile(tmp_path / f"input-{index}.f32")
    for artifact in artifacts:
        expected = _python_logits(bundle, artifact, inputs)
        for index in range(len(inputs)):
            ran = _shim_run(shim, bundle, artifact, tmp_path / f"input-{index}.f32", platform)
            assert (ran["variant"], ran["backend"]) == (artifact.id, artifact.backend)
            np.testing.assert_allclose(np.asarray(ran["logits"]), expected[index], atol=1e-5)


def test_run_gives_the_python_runtime_logits_for_every_variant_of_both_backends(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    bundle = built[0]
    _assert_runs_match_python(shim, bundle, read_manifest(bundle).artifacts, tmp_path)


def test_a_uint8_input_build_ships_raw_pixel_artifacts_the_c_tool_feeds_as_python_does(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """Issue 19: ``runtime.litert_input: uint8`` ships LiteRT artifacts whose input is raw pixels in uint8, the
    manifest and the shim's index say so (the project's ``(pixel - 127) / 128`` as scale 1/(255 std) and zero
    point 127), and the C tool quantizes a normalised image to those pixels and computes the Python runtime's
    logits. Fails if the index still says float32 (the core would feed 4 bytes a pixel), if the zero point or
    scale differ between the C core and Python, or if the build lowers a float32 input after all."""
    _, project, target, cache = built
    uint8 = tmp_path / "t.yaml"
    text = target.read_text().replace("name: tiny-build", "name: tiny-uint8")
    uint8.write_text(text.replace("backends: [executorch, litert],", "backends: [litert], litert_input: uint8,"))
    out = tmp_path / "bundle"
    result = cli("build", "-t", str(uint8), "-p", str(project), "--out", str(out), "--cache-dir", str(cache))
    assert result.code == 0, result.stderr
    artifacts = read_manifest(out).artifacts
    assert artifacts and {a.backend for a in artifacts} == {"litert"}
    for artifact in artifacts:
        q = artifact.input.quantization
        assert q is not None and (artifact.input.dtype, q.dtype, q.zero_point) == ("uint8", "uint8", 127), q
        assert q.scale == pytest.approx(1 / (255 * 0.502))
    assert "uint8:" in (out / "bundle.index").read_text()
    _assert_runs_match_python(shim, out, artifacts, tmp_path)


def test_run_repeat_times_each_run_of_the_chosen_rung_and_computes_what_one_run_does(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """``run --repeat N`` (how the int8 / fp32 latency ratio is measured on an emulated Cortex-A53) times N runs
    after an untimed first one and reports their median and fastest, with the logits one run gives; in text
    mode too. Fails if the timing is missing, miscounted or not a duration, if one run's median is not that run,
    if a median lies below the fastest run, or if repeating changes what the rung computes."""
    bundle = built[0]
    np.random.default_rng(2).standard_normal((3, 32, 32)).astype(np.float32).tofile(tmp_path / "input.f32")
    artifacts = read_manifest(bundle).artifacts
    for artifact in [next(a for a in artifacts if a.backend == b) for b in ("executorch", "litert")]:
        once = _shim_run(shim, bundle, artifact, tmp_path / "input.f32")
        assert "timing" not in once
        for repeat in (1, 4):
            timed = _shim_run(shim, bundle, artifact, tmp_path / "input.f32", options=("--repeat", str(repeat)))
            assert timed["logits"] == once["logits"] and timed["variant"] == artifact.id
            timing = timed["timing"]
            assert timing["runs"] == repeat and 0 < timing["min_ms"] <= timing["median_ms"] < 10_000, timing
            assert repeat > 1 or timing["median_ms"] == timing["min_ms"], timing
    text = _run(
        shim / "restnet-shim", "run", bundle, "--input", tmp_path / "input.f32", "--override", artifact.id,
        "--backend", artifact.backend, "--litert-lib", _litert_library(), "--repeat", "3",
    )  # fmt: skip
    assert text.returncode == 0 and re.search(
        r"^timing: 3 runs, median [0-9.]+ ms, fastest [0-9.]+ ms$", text.stdout, re.M
    )


def _process_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one usable CPU: thread counts cannot differ")
@pytest.mark.parametrize("build_name", ["shim", "shim_asan"])
def test_each_backend_runs_on_the_threads_it_is_given_and_the_bundle_gives_its_targets(
    build_name: str, request: pytest.FixtureRequest, built: tuple[Path, Path, Path, Path]
) -> None:
    """``test_threads`` (``runtime_shim/tests/test_threads.c``) on a real bundle: each backend's runtime runs one
    more thread for one more asked, never more than the usable CPUs, and ExecuTorch's process-wide pool keeps
    its size while a method is loaded. Then the Python binding: a LiteRT runner runs on the bundle's threads
    (the target's 2) unless told otherwise. The C program natively and under ASan/UBSan; the Python part once, on
    the installed core. Fails if a backend drops its thread
    count (LiteRT's own default is one thread), exceeds the usable CPUs, resizes the pool under a loaded method,
    or if the index loses the target's threads on the way."""
    bundle, build = built[0], request.getfixturevalue(build_name)
    result = _run(build / "tests" / "test_threads", bundle, _litert_library())
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "all thread tests passed" in result.stdout
    _assert_sanitizers_quiet(result)
    if build_name != "shim":
        return
    added: dict[int | None, int] = {}
    with Bundle(bundle) as opened:
        assert opened.threads == 2
        for threads in (1, 1, None):  # the first run takes whatever LiteRT starts once per process
            before = _process_threads()
            with Runner(opened, "litert", threads=threads) as runner:
                runner.run(np.zeros(opened.input_shape, np.float32))
                added[threads] = _process_threads() - before
        for odd in (257, -1, 2.5):
            with pytest.raises(ShimError, match=f"threads {odd}: expected 0"):
                Runner(opened, "litert", threads=odd)  # type: ignore[arg-type]
    assert added[None] == added[1] + 1, added


def test_run_on_aarch64_under_qemu_gives_the_x86_python_logits_for_both_backends(
    shim_aarch64: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """The aarch64 runtimes on an emulated Cortex-A53 compute the same int8 logits as x86_64."""
    bundle = built[0]
    _assert_runs_match_python(shim_aarch64, bundle, read_manifest(bundle).artifacts, tmp_path, "aarch64")


def test_run_on_aarch64_under_qemu_gives_the_x86_python_logits_for_every_entry_point_of_ladder_programs(
    shim_aarch64: Path, built_ladder: Path, tmp_path: Path
) -> None:
    """Issue 16: each method of the ladder .pte and each signature of the ladder .tflite, loaded from its shared
    file by the aarch64 runtimes on an emulated Cortex-A53, computes the x86_64 Python runtimes' logits."""
    artifacts = read_manifest(built_ladder).artifacts
    _assert_runs_match_python(shim_aarch64, built_ladder, artifacts, tmp_path, "aarch64", images=1)


def test_run_reads_a_pgm_image_like_the_python_preprocessing(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    bundle = built[0]
    manifest = read_manifest(bundle)
    artifact = next(a for a in manifest.artifacts if a.backend == "litert")
    pixels = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    path = tmp_path / "image.pgm"
    path.write_bytes(b"P5\n# a comment\n28 28\n255\n" + pixels.tobytes())
    grey = torch.from_numpy(pixels.astype(np.float32) / 255.0)[None, None].expand(1, 3, 28, 28)
    resized = torch.nn.functional.interpolate(grey, size=(32, 32), mode="bilinear", align_corners=False)
    norm = artifact.input.normalization
    mean, std = torch.tensor(norm["mean"])[:, None, None], torch.tensor(norm["std"])[:, None, None]
    expected = _python_logits(bundle, artifact, ((resized - mean) / std).numpy())[0]
    ran = _shim_run(shim, bundle, artifact, path)
    logits = np.asarray(ran["logits"])
    assert logits.argmax() == expected.argmax() and np.abs(logits - expected).max() < 0.5


@pytest.mark.parametrize("resize", get_args(ResizeName))
@pytest.mark.parametrize(("height", "width", "channels"), [(45, 70, 1), (20, 50, 3), (97, 33, 3)])
def test_the_c_tool_resizes_a_non_square_image_as_python_does(
    height: int,
    width: int,
    channels: int,
    resize: ResizeName,
    shim: Path,
    built: tuple[Path, Path, Path, Path],
    tmp_path: Path,
) -> None:
    """``restnet-shim input`` writes the tensor ``run`` feeds: a PGM/PPM stretched to the input size as the
    bundle's ``resize`` says, like torch's antialiased filters (``to_model_input``, what the compiler verified
    with), shrinking one side and growing or shrinking the other, within 1e-3 (plain bilinear is off by about 0.1
    when shrinking; the bilinear taps for a bicubic bundle by more)."""
    from restnetc.config.project import Normalization
    from restnetc.data.images import to_model_input

    bundle = tmp_path / "bundle"
    shutil.copytree(built[0], bundle)
    manifest = read_manifest(bundle)
    resized = [
        a.model_copy(update={"input": a.input.model_copy(update={"resize": resize})}) for a in manifest.artifacts
    ]
    write_index(bundle, manifest.model_copy(update={"artifacts": resized}))
    norm = manifest.artifacts[0].input.normalization
    pixels = np.random.default_rng(height).integers(0, 256, (height, width, channels), dtype=np.uint8)
    image, tensor = tmp_path / "image.pnm", tmp_path / "tensor.f32"
    image.write_bytes(f"P{5 if channels == 1 else 6}\n{width} {height}\n255\n".encode() + pixels.tobytes())
    result = _run(shim / "restnet-shim", "input", bundle, "--input", image, "--out", tensor)
    assert result.returncode == 0, result.stderr
    ours = np.fromfile(tensor, dtype=np.float32).reshape(1, 3, 32, 32)
    nchw = torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    expected = to_model_input(nchw, 32, Normalization(mean=norm["mean"], std=norm["std"], resize=resize)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-3, rtol=0)
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("build_name", ["shim", "shim_asan", "shim_aarch64"])
def test_runner_switches_variants_in_the_documented_order_with_litert(
    build_name: str, request: pytest.FixtureRequest, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """The built bundle's artifacts, with memory needs rewritten so that the more accurate needs more; on x86_64,
    under ASan/UBSan (real inference in libLiteRt.so included) and on an emulated Cortex-A53."""
    build: Path = request.getfixturevalue(build_name)
    platform = "aarch64" if build_name == "shim_aarch64" else "x86_64"
    bundle = _litert_only_bundle(built[0], tmp_path / "bundle")
    _write(tmp_path / "plenty", "proc/meminfo", "MemAvailable: 8000000 kB\n")
    prefix = _emulated(build) if platform == "aarch64" else []
    result = _run(*prefix, build / "tests" / "test_litert", bundle, _litert_library(platform), tmp_path / "plenty")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all runner tests passed" in result.stdout
    _assert_sanitizers_quiet(result)


def _litert_only_bundle(built: Path, bundle: Path) -> Path:
    """The LiteRT artifacts of ``built``, with memory needs of 100, 200, ... MiB in order of accuracy."""
    return _ranked_bundle(built, bundle, ("litert",))


def _ranked(artifacts: list[Artifact], backend: str) -> list[Artifact]:
    """``backend``'s artifacts from least to most accurate, as ``_ranked_bundle`` ranks them."""
    own = [a for a in artifacts if a.backend == backend]
    return sorted(own, key=lambda a: (a.accuracy.artifact, -own.index(a)))


def _ranked_bundle(built: Path, bundle: Path, backends: tuple[str, ...]) -> Path:
    """The artifacts of ``backends`` in ``built``, each backend's with memory needs of 100, 200, ... MiB in order of
    accuracy (a copy: its index resealed). Equal accuracies are told apart in the index (+0.001 per rank), the
    one listed first in the manifest ranking higher, as ``max`` over the manifest picks it: each rung is then
    strictly more accurate than the one below, as the ladder walks assume. Ship ranks are dropped (read as 0),
    so accuracy alone orders the rungs here."""
    manifest = read_manifest(built)
    rewrite: dict[tuple[str, str], tuple[int, float]] = {}
    for backend in backends:
        shutil.copytree(built / backend, bundle / backend)
        rewrite |= {
            (a.id, backend): (100 * MIB * (rank + 1), a.accuracy.artifact + 1e-3 * rank)
            for rank, a in enumerate(_ranked(manifest.artifacts, backend))
        }

    def key(line: str) -> tuple[str, str]:
        fields = dict(field.split("=", 1) for field in line.split()[1:])
        return fields["id"], fields["backend"]

    def ranked_line(line: str) -> str:
        memory, accuracy = rewrite[key(line)]
        line = re.sub(r"memory=\d+", f"memory={memory}", line)
        line = re.sub(r" rank=\d+", "", line)
        return re.sub(r"accuracy=[0-9.]+", f"accuracy={accuracy:.3f}", line)

    lines = [
        line if not line.startswith("artifact ") else ranked_line(line)
        for line in (built / "bundle.index").read_text().splitlines()[2:]  # after the version and identity
        if not line.startswith("artifact ") or key(line)[1] in backends
    ]
    (bundle / "bundle.index").write_text(seal("\n".join(lines) + "\n"))
    return bundle


@pytest.mark.parametrize("build_name", ["shim", "shim_asan", "shim_aarch64"])
def test_c_runner_walks_a_ladder_program_down_and_up_under_changing_memory(
    build_name: str, request: pytest.FixtureRequest, built_ladder: Path, tmp_path: Path
) -> None:
    """Issue 16: the C runner on a ladder bundle (the tiny project's, needs rewritten 100 MiB apart) steps down
    through every rung as a fixture tree's memory shrinks and up again as it grows, serving every switch from the
    program it opened (the file is spoiled on disk after opening), each rung giving the Python runtimes' logits:
    both backends natively, under ASan/UBSan and on an emulated Cortex-A53."""
    build: Path = request.getfixturevalue(build_name)
    platform = "aarch64" if build_name == "shim_aarch64" else "x86_64"
    bundle = _ranked_bundle(built_ladder, tmp_path / "bundle", ("executorch", "litert"))
    image = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    image.tofile(tmp_path / "input.f32")
    expected = [
        " ".join([a.backend, a.id, *(repr(float(v)) for v in _python_logits(built_ladder, a, image)[0])])
        for a in read_manifest(built_ladder).artifacts
    ]
    (tmp_path / "expected.txt").write_text("\n".join(expected) + "\n")
    (tmp_path / "memory").mkdir()
    prefix = _emulated(build) if platform == "aarch64" else []
    result = _run(
        *prefix, build / "tests" / "test_ladder", bundle, _litert_library(platform), tmp_path / "memory",
        tmp_path / "expected.txt", tmp_path / "input.f32", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "all ladder tests passed" in result.stdout
    _assert_sanitizers_quiet(result)


@pytest.fixture(scope="session")
def python_asan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the ``restnetc`` package whose ``_shim.so`` (core and LiteRT backend, the target scikit-build-core
    builds) is compiled with ASan/UBSan, and the libasan that core needs: the directory to put first on a
    ``python -S`` path, and the library to preload."""
    build = _cmake_build(
        tmp_path_factory.mktemp("shim-python-asan"), "-DRS_PYTHON_PACKAGE=ON", "-DRS_SANITIZE=ON",
        "-DRS_BUILD_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Debug", target="restnetc_shim",
    )  # fmt: skip
    core = build / "_shim.so"
    path = tmp_path_factory.mktemp("python-asan")
    shutil.copytree(
        REPO / "compiler" / "restnetc", path / "restnetc", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    shutil.copy(core, path / "restnetc" / "_shim.so")
    return path, _libasan(core)


@pytest.fixture(scope="session")
def python_aarch64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the ``restnetc`` package whose ``_shim.so`` (core and LiteRT backend) is cross-built for aarch64,
    the directory to put first on the path of bootstrap.sh's aarch64 CPython (numpy comes from ``AARCH64``)."""
    toolchain = SHIM / "cmake" / "aarch64-linux-gnu.cmake"
    build = _cmake_build(
        tmp_path_factory.mktemp("shim-python-aarch64"), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DRS_PYTHON_PACKAGE=ON",
        "-DRS_BUILD_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Release", target="restnetc_shim",
    )  # fmt: skip
    assert (build / "_shim.so").read_bytes()[18:20] == b"\xb7\x00", "ELF e_machine should be EM_AARCH64 (183)"
    path = tmp_path_factory.mktemp("python-aarch64")
    shutil.copytree(
        REPO / "compiler" / "restnetc", path / "restnetc", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    shutil.copy(build / "_shim.so", path / "restnetc" / "_shim.so")
    return path


@pytest.mark.parametrize("core", ["installed", "asan", "aarch64"])
def test_python_runner_walks_a_ladder_program_down_and_up_under_changing_memory(
    core: str, request: pytest.FixtureRequest, shim: Path, built_ladder: Path, tmp_path: Path
) -> None:
    """Issue 16, the C runner's ladder walk above through ``restnetc.runtime.Runner`` (``python_ladder_walk.py``, in
    a process of its own): on a fixture tree whose memory shrinks, each ``refresh`` steps one rung down (needs
    100 MiB apart), and as it grows one rung up, every rung served from the program opened once (the file is
    spoiled on disk after opening) with the Python runtimes' logits. Both backends in each setup:
    - ``installed``: the installed core;
    - ``asan``: the core rebuilt under ASan/UBSan (ExecuTorch through the instrumented ``shim_asan`` plugin),
      imported by a ``python -S`` whose path puts the rebuilt package before site-packages (so the editable
      install's finder never runs), libasan preloaded; errors abort the walk (``-fno-sanitize-recover``), leaks
      are not checked (CPython keeps objects until exit);
    - ``aarch64``: Debian's aarch64 CPython under qemu as a Cortex-A53, with the package's core cross-built, the
      aarch64 numpy, libLiteRt.so and ExecuTorch backend, against the x86 Python runtimes' logits."""
    manifest = read_manifest(built_ladder)
    image = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "input.npy", image)
    command: list[str | Path] = [sys.executable]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONOPTIMIZE"}  # keep the asserts
    backends: tuple[str, ...] = ("executorch", "litert")
    plugin = shim / "librestnet_shim_executorch.so"
    installed = importlib.util.find_spec("restnetc._shim")
    assert installed is not None
    loaded = installed.origin
    if core == "asan":
        package, libasan = request.getfixturevalue("python_asan")
        loaded = str(package / "restnetc" / "_shim.so")
        command.append("-S")
        env |= {
            "PYTHONPATH": os.pathsep.join([str(package), sysconfig.get_paths()["purelib"]]),
            "LD_PRELOAD": str(libasan),  # first in the process, as ASan requires
            "ASAN_OPTIONS": "detect_leaks=0",
        }
        plugin = request.getfixturevalue("shim_asan") / "librestnet_shim_executorch.so"
    elif core == "aarch64":
        package, cross = request.getfixturevalue("python_aarch64"), request.getfixturevalue("shim_aarch64")
        loaded, plugin = str(package / "restnetc" / "_shim.so"), cross / "librestnet_shim_executorch.so"
        command = [
            *_emulated(cross, DEBIAN_AARCH64), "-E", f"PYTHONPATH={package}{os.pathsep}{AARCH64}",
            "-E", f"RESTNET_SHIM_LITERT={_litert_library('aarch64')}", _debian_aarch64("usr/bin/python3.11"), "-S",
        ]  # fmt: skip
    for backend in backends:
        bundle = _ranked_bundle(built_ladder, tmp_path / backend, (backend,))
        ladder = _ranked(manifest.artifacts, backend)
        assert len(ladder) >= 3 and len({a.file for a in ladder}) == 1
        np.savez(tmp_path / "expected.npz", **{a.id: _python_logits(built_ladder, a, image)[0] for a in ladder})
        arguments = [bundle, backend, tmp_path / f"memory-{backend}", tmp_path / "expected.npz", tmp_path / "input.npy"]
        arguments += [str(HEADROOM_MB)] + ([plugin] if backend == "executorch" else [])
        result = subprocess.run(
            [str(a) for a in [*command, Path(__file__).parent / "python_ladder_walk.py", *arguments]],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert f"core: {loaded}\npython ladder walk passed" in result.stdout, "ran on another core"
        _assert_sanitizers_quiet(result)


def _jni_build(build: Path, *options: str) -> Path:
    """A shim build with the JNI bridge, the Java wrapper and the Java tests compiled into ``classes`` (not the C
    tests: the JNI tests run none)."""
    _cmake_build(build, "-DRS_WITH_JNI=ON", "-DRS_BUILD_TESTS=OFF", *options)
    sources = [SHIM / "jni" / "java" / "ai" / "restnet" / "shim" / "RestnetShim.java"]
    tests = sorted((SHIM / "jni" / "test").glob("*.java"))
    subprocess.run(["javac", "-d", build / "classes", *sources, *tests], check=True)
    return build


@pytest.fixture(scope="module")
def jni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JNI build with both backends."""
    return _jni_build(tmp_path_factory.mktemp("shim-jni"), *_with_executorch())


@pytest.fixture(scope="module")
def jni_asan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JNI build with ASan/UBSan: core, both backends and bridge instrumented."""
    options = ("-DRS_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug", *_with_executorch())
    return _jni_build(tmp_path_factory.mktemp("shim-jni-asan"), *options)


def test_jni_bridge_selects_and_runs_on_the_desktop_jdk(jni: Path, built: tuple[Path, Path, Path, Path]) -> None:
    build, classes = jni, jni / "classes"
    root = build / "root"
    _write(root, "proc/meminfo", "MemAvailable: 8000000 kB\n")
    litert = [a for a in read_manifest(built[0]).artifacts if a.backend == "litert"]
    expected = _expected(litert, 8000000 * 1024)
    chosen = next(a for a in litert if a.id == expected)
    image = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    image.tofile(build / "input.f32")
    logits = ",".join(f"{v:.9g}" for v in _python_logits(built[0], chosen, image)[0])
    library = build / "librestnet_shim_jni.so"
    copy = _litert_only_bundle(built[0], build / "copy")
    top = next(a for a in litert if a.id == _expected(litert, 1 << 50))  # what the runner chooses with plenty
    other = next(a for a in litert if a is not top)
    args = [library, built[0], root, str(expected), _litert_library(), build / "input.f32", logits]
    args += [copy, top.file, other.file, top.id]
    result = _run("java", "-cp", classes, "RestnetShimTest", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all JNI tests passed" in result.stdout


@pytest.fixture(scope="module")
def jni_aarch64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JNI build cross-built for aarch64 (bridge, core, both backends; the Java classes are the host's)."""
    toolchain = SHIM / "cmake" / "aarch64-linux-gnu.cmake"
    options = (f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DCMAKE_BUILD_TYPE=Release", *_with_executorch("aarch64"))
    build = _jni_build(tmp_path_factory.mktemp("shim-jni-aarch64"), *options)
    assert (build / "librestnet_shim_jni.so").read_bytes()[18:20] == b"\xb7\x00", "should be EM_AARCH64"
    return build


@pytest.mark.parametrize("build_name", ["jni", "jni_asan", "jni_aarch64"])
def test_jni_runner_switches_across_every_entry_point_of_a_ladder_program(
    build_name: str, request: pytest.FixtureRequest, built_ladder: Path, tmp_path: Path
) -> None:
    """Issue 16: the Java runner on each backend's ladder program moves to every rung with ``use`` (loaded, then
    resident) after the file was spoiled on disk, each rung giving its own signature's logits, and ``refresh``
    comes back to the rung it chose when opened; a second runner walks down through every rung as the fixture
    tree's memory shrinks and up again as it grows (needs rewritten 100 MiB apart), from its open program. On
    the desktop JDK, with the native side under ASan/UBSan (libasan preloaded into the JVM, whose own
    SIGSEGV handling ASan leaves alone; errors abort, ``-fno-sanitize-recover``; leaks are not checked there), and
    on Debian's aarch64 Java 17 under qemu as a Cortex-A53 with the bridge cross-built."""
    jni: Path = request.getfixturevalue(build_name)
    env, java, platform = None, ["java"], "x86_64"
    if build_name == "jni_aarch64":
        cross, platform = request.getfixturevalue("shim_aarch64"), "aarch64"
        java = [*_emulated(cross, DEBIAN_AARCH64), _debian_aarch64("usr/lib/jvm/java-17-openjdk-arm64/bin/java")]
    if build_name == "jni_asan":
        libasan = _libasan(jni / "librestnet_shim_jni.so")
        options = "detect_leaks=0:handle_segv=0:allow_user_segv_handler=1"
        env = {**os.environ, "LD_PRELOAD": str(libasan), "ASAN_OPTIONS": options}
    image = np.random.default_rng(4).standard_normal((1, 3, 32, 32)).astype(np.float32)
    image.tofile(tmp_path / "input.f32")
    for backend in ("executorch", "litert"):
        bundle = _ranked_bundle(built_ladder, tmp_path / backend, (backend,))
        rungs = _ranked(read_manifest(built_ladder).artifacts, backend)
        assert len({a.file for a in rungs}) == 1 < len(rungs)
        lines = [f"{a.id} " + ",".join(f"{v:.9g}" for v in _python_logits(built_ladder, a, image)[0]) for a in rungs]
        (tmp_path / f"expected-{backend}.txt").write_text("\n".join(lines) + "\n")
        _write(tmp_path / f"root-{backend}", "proc/meminfo", "MemAvailable: 80000000 kB\n")
        args = [jni / "librestnet_shim_jni.so", bundle, tmp_path / f"root-{backend}", _litert_library(platform)]
        args += [tmp_path / "input.f32", tmp_path / f"expected-{backend}.txt", rungs[0].file, backend]
        timeout = 120 if build_name == "jni" else 600  # a Debug build under ASan, or a JVM under qemu, shared cores
        result = _run(*java, "-cp", jni / "classes", "RestnetShimLadderTest", *args, env=env, timeout=timeout)
        assert result.returncode == 0, f"{backend}: {result.stderr[-3000:]}"
        assert "all JNI ladder tests passed" in result.stdout
        _assert_sanitizers_quiet(result)


def test_example_app_classifies_an_image_like_the_cli(
    shim: Path, built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    image = tmp_path / "image.pgm"
    pixels = np.random.default_rng(2).integers(0, 256, (28, 28), dtype=np.uint8)
    image.write_bytes(b"P5\n28 28\n255\n" + pixels.tobytes())
    example = _run(shim / "classify", built[0], image, _litert_library())
    assert example.returncode == 0, example.stderr[-2000:]
    cli = _run(shim / "restnet-shim", "run", built[0], "--input", image, "--litert-lib", _litert_library(), "--json")
    ran = json.loads(cli.stdout)
    assert example.stdout.splitlines()[0] == f"{ran['top5'][0]['label']} (variant {ran['variant']})"
