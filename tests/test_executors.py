"""Executors: every registered one runs jobs as the local pool does, and a Ray build ships the local build's bytes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from restnetc import workers
from restnetc.backends import WHOLE_MODEL, Ends
from restnetc.budget import profiling
from restnetc.budget.profiling import PartJob, Settings
from restnetc.bundle.lowering import Lowerer
from restnetc.bundle.verification import HeldOut, Verifier
from restnetc.cache import Cache
from restnetc.config import load_project
from restnetc.config.target import AccuracyPolicy, Quantization
from restnetc.config.target import Backend as BackendName
from restnetc.errors import RestnetcError
from restnetc.host import usable_cpus
from restnetc.pipeline.search import run_sweep
from restnetc.workers import EXECUTORS, executor_for
from tests.conftest import BUILD_TARGET, REPO, TINY_PROJECT, CliResult, logged

LOWERING_ENTRIES = ("artifact-", "verified-", "verify-", "program-")
"""Cache entries of lowering, verification and packing: removed, a build must redo them with its executor."""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs whose workers can import this test package; the executor uses it as found."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    yield
    ray.shutdown()


def scaled(state: int, job: int) -> int:
    """A job: ``job`` times the shared ``state``; job 13 fails as a job's own error."""
    if job == 13:
        raise RestnetcError("job 13 is refused")
    return state * job


@pytest.mark.parametrize("name", EXECUTORS.names())
def test_every_executor_yields_each_job_s_result_once_and_raises_a_job_s_own_error(
    name: str, request: pytest.FixtureRequest
) -> None:
    if name == "ray":
        request.getfixturevalue("ray_cluster")
    executor = executor_for(name)
    results = dict(executor.run_all(scaled, 3, [1, 2, 5, 7], 2))
    assert results == {0: 3, 1: 6, 2: 15, 3: 21}
    assert executor.slots(100) == (100 if executor.remote else usable_cpus())  # a cluster queues, a pool caps
    with pytest.raises(RestnetcError, match=r"^job 13 is refused$"):
        dict(executor.run_all(scaled, 3, [1, 13, 2], 2))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dask", "--executor 'dask': unknown executor 'dask'; registered: local, ray"),
        ("local://host:1", "--executor 'local://host:1': the local executor takes no address"),
        ("ray://", "--executor 'ray://': expected an address after 'ray://'"),
    ],
)
@pytest.mark.parametrize("command", ["build", "search", "profile"])
def test_an_unknown_executor_is_a_one_line_error(
    command: str, spec: str, message: str, tiny_files: tuple[Path, Path], cli: Callable[..., CliResult]
) -> None:
    project, target = tiny_files
    result = cli(command, "--target", str(target), "--project", str(project), "--executor", spec)
    assert result.code == 1 and message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", EXECUTORS.names())
def test_a_lowerer_gives_workers_one_thread_and_remote_ones_nothing_to_write(name: str, tmp_path: Path) -> None:
    images, labels = torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)
    held_out, cache = HeldOut.of(images, labels), Cache(tmp_path)
    verifier = Verifier(held_out, held_out, 2, cache, tmp_path)
    lowerer = Lowerer(Quantization.FP32, images, verifier, AccuracyPolicy(), cache, executor=executor_for(name))
    remote = lowerer.executor.remote
    assert (lowerer.for_workers(1) is lowerer) is not remote
    worker = lowerer.for_workers(2)
    assert worker is not lowerer and worker.verifier.threads == 1 and lowerer.verifier.threads == 2
    assert worker.cache.writable is not remote and worker.verifier.cache is worker.cache
    assert (worker.verifier.work_dir is None) is remote and lowerer.cache.writable


def test_cost_table_parts_lowered_as_ray_tasks_are_the_local_pool_s_bytes(ray_cluster: None, tmp_path: Path) -> None:
    torch.manual_seed(0)
    images = torch.randn(4, 3, 8, 8)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU6()).eval()
    jobs = [
        PartJob("conv", conv, images, WHOLE_MODEL),
        PartJob("relu", torch.nn.Sequential(torch.nn.ReLU()), images, Ends(False, False)),
    ]
    settings = Settings("parts", BackendName.LITERT, Quantization.FP32, 1)
    lowered = {
        name: profiling._artifacts(jobs, settings, Cache(tmp_path / name), executor_for(name))
        for name in ("local", "ray")
    }
    assert lowered["ray"] == lowered["local"] and set(lowered["ray"]) == {"conv", "relu"}
    assert all(data[4:8] == b"TFL3" for data in lowered["ray"].values())


def _figures(bundle: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Each artifact's manifest record but what is timed or probed per process (latency, memory)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {
        (a["id"], a["backend"]): {k: v for k, v in a.items() if k not in ("latency_ms", "memory_bytes")}
        for a in manifest["artifacts"]
    }


def test_a_ray_build_ships_the_local_build_s_artifacts_and_figures(
    built: tuple[Path, Path, Path, Path], ray_cluster: None, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    bundle, project, target, cache = built
    ray_cache = tmp_path / "cache"
    shutil.copytree(cache, ray_cache)
    for entry in ray_cache.iterdir():
        if entry.name.startswith(LOWERING_ENTRIES):
            entry.unlink()
    out = tmp_path / "bundle"
    job = ("build", "-t", str(target), "-p", str(project), "--cache-dir", str(ray_cache), "--executor", "ray")
    result = cli(*job, "--out", str(out))
    assert result.code == 0, result.stderr
    local = _figures(bundle)
    assert f"{len(local)} artifacts lowered and verified in ray tasks" in " ".join(result.stderr.split())
    assert _figures(out) == local
    recorded = {entry.name.split("-")[0] for entry in ray_cache.iterdir()}
    assert {"artifact", "verified", "verify"} <= recorded, "the driver records what the tasks returned"


def test_a_cluster_that_cannot_be_joined_ends_a_build_before_any_work(tiny_files: tuple[Path, Path]) -> None:
    """``ray://`` with nobody listening: a one-line error naming the address, before the data is even loaded (a
    fresh process, so no Ray session of this one is found instead). Ray's client waits 1 s per attempt here
    instead of its 5, 10 and 15 s (its own environment settings), which changes nothing but the wait."""
    project, target = tiny_files
    target.write_text(BUILD_TARGET)
    script = Path(sys.executable).with_name("restnetc")
    command = [script, "build", "-t", target, "-p", project, "--executor", "ray://127.0.0.1:1"]
    waits = {"RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **waits}
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: executor ray: cannot join ray://127.0.0.1:1: " in result.stderr
    assert "data:" not in result.stderr, "nothing ran before the executor was opened"


@pytest.mark.parametrize("name", EXECUTORS.names())
def test_stitches_trained_by_every_executor_are_bit_for_bit_the_ones_trained_in_this_process(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    """Six stitch points of the tiny project fine-tuned in this process (one CPU, so no worker pool; torch on two
    threads outside training) and as jobs of each executor: every stored tensor equal, so the same accuracies.
    Fails if training in this process, or in a worker, runs on more than one thread (float sums in another
    order). The first run's parents are the second's (copied cache), so only the stitches are computed twice."""
    if name == "ray":
        request.getfixturevalue("ray_cluster")
    path = tmp_path / "project.yaml"
    path.write_text(TINY_PROJECT)
    project, _ = load_project(path)
    threads = torch.get_num_threads()
    with monkeypatch.context() as alone:
        alone.setattr(workers, "usable_cpus", lambda: 1)
        torch.set_num_threads(2)
        try:
            here = run_sweep(project, Cache(tmp_path / "here"), every=8)
            assert torch.get_num_threads() == 2, "training gives the caller its threads back"
        finally:
            torch.set_num_threads(threads)
    shutil.copytree(tmp_path / "here", tmp_path / "jobs")
    for entry in (tmp_path / "jobs").glob("stitch-*"):
        entry.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, "restnetc"):
        jobs = run_sweep(project, Cache(tmp_path / "jobs"), every=8, executor=executor_for(name))
    count = min(usable_cpus(), 6)
    where = " by the ray executor" if name == "ray" else f" in {count} processes" if count > 1 else ""
    assert f"fine-tuned{where} (6/6)" in logged(caplog)
    untimed = [[dataclasses.replace(p, finetune_seconds=0.0) for p in r.points] for r in (here, jobs)]
    assert untimed[0] == untimed[1] and len(here.points) == 6
    keys = sorted(p.stem for p in (tmp_path / "here").glob("stitch-*.pt"))
    assert keys == sorted(p.stem for p in (tmp_path / "jobs").glob("stitch-*.pt")) and len(keys) == 2 * 6  # + test
    for key in keys:
        ours, theirs = (Cache(tmp_path / d).load(key) for d in ("here", "jobs"))
        assert ours is not None and theirs is not None and ours.keys() == theirs.keys()
        for tensor, value in ours.items():
            if tensor != "seconds":
                assert torch.equal(value, theirs[tensor]), (key, tensor)
