"""Shared fixtures: run the CLI in-process as a user would, and small real projects."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from restnetc.cli import main

REPO = Path(__file__).resolve().parents[1]


SESSION_BUILDS = ("built", "profiled")
"""Fixtures that run a real build or profile of the tiny project once per session (minutes on 2 cores)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a session build, so ``-m "not slow"`` is the quick loop."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & set(SESSION_BUILDS):
            item.add_marker(pytest.mark.slow)


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``cli("search", "--target", ...)`` runs ``restnetc`` through its console-script entry point."""

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["restnetc", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """What the library said on its ``restnetc`` logger during the test (since the last ``caplog.clear()``), one
    message per line, without logging's level and location prefix."""
    return "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("restnetc"))


TINY_PROJECT = """\
schema_version: 1
name: tiny-lite
models:
  a: {source: efficientnet-lite, name: efficientnet-lite2}
  b: {source: efficientnet-lite, name: efficientnet-lite0}
data:
  source: {kind: fashion-mnist}
  input_size: 32
  normalization: {mean: [0.498, 0.498, 0.498], std: [0.502, 0.502, 0.502]}
  train_images: 96
  validation_images: 64
  test_images: 64
calibration: {images: 64, batch_size: 32}
task_head: {epochs: 50}
finetune: {init_images: 32, epochs: 1, batch_size: 32, distill: {weight: 0.5}}
"""

TINY_TARGET = """\
schema_version: 1
name: tiny-target
device: {arch: aarch64, cpu: cortex-a53, cores: 4, memory: 1GB}
runtime: {backends: [executorch, litert]}
budgets:
  - params: 3.6M
  - params: 4.2M
ladder: {dominated: keep}
bundle: {layout: per-rung}
"""
"""Keeps dominated rungs, so both budgets get a variant: at 32 px on 96 images the Lite2 probe is far less
accurate than Lite0's, and every candidate of the 4.2M band is dominated by Lite0 on validation."""


@pytest.fixture
def tiny_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A small real project (real weights, real Fashion-MNIST, 32 px) and a two-rung target; own cache."""
    monkeypatch.setenv("RESTNETC_CACHE", str(tmp_path / "cache"))
    project = tmp_path / "project.yaml"
    target = tmp_path / "target.yaml"
    project.write_text(TINY_PROJECT)
    target.write_text(TINY_TARGET)
    return project, target


BUILD_TARGET = """\
schema_version: 1
name: tiny-build
device: {arch: aarch64, cpu: cortex-a53, cores: 4, memory: 1GB}
runtime: {backends: [executorch, litert], threads: 2, calibration_images: 16}
budgets:
  - params: 3.6M
accuracy: {policy: warn}
ladder: {dominated: warn}
measurement: {warmup: 1, runs: 5}
bundle: {layout: per-rung}
"""
"""Ships dominated artifacts (with a warning and their standing in the manifest): at 32 px on 96 images, the
Lite2 parent's probe is far less accurate than Lite0's, and the suite wants every rung in the bundle. The tiny
targets keep a file per rung (packing a ladder lowers every rung again); ``laid_out`` gives them another layout."""

PER_RUNG = "bundle: {layout: per-rung}\n"


def laid_out(target: str, layout: str) -> str:
    """``target`` (a tiny target, or one made from it) with ``bundle.layout`` set to the YAML ``layout``."""
    assert PER_RUNG in target, "not a tiny target"
    return target.replace(PER_RUNG, f"bundle: {{layout: {layout}}}\n")


def _run_once(*args: str) -> None:
    """Run ``restnetc *args`` in-process for a session fixture (no function-scoped ``cli`` there); must succeed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["restnetc", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
    assert exit_info.value.code in (0, None)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(bundle, project file, target file, cache dir) after one real build through the CLI."""
    root = tmp_path_factory.mktemp("build")
    project, target, cache, bundle = root / "p.yaml", root / "t.yaml", root / "cache", root / "bundle"
    project.write_text(TINY_PROJECT)
    target.write_text(BUILD_TARGET)
    _run_once("build", "-t", str(target), "-p", str(project), "--out", str(bundle), "--cache-dir", str(cache))
    return bundle, project, target, cache


@pytest.fixture(scope="session")
def built_ladder(built: tuple[Path, Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``built`` project and target rebuilt with ``bundle: {layout: ladder}`` from ``built``'s cache (every
    stage up to packing is cached): one program per backend."""
    _, project, target, cache = built
    root = tmp_path_factory.mktemp("ladder")
    ladder_target, bundle = root / "t.yaml", root / "bundle"
    ladder_target.write_text(laid_out(target.read_text(), "ladder"))
    _run_once("build", "-t", str(ladder_target), "-p", str(project), "--out", str(bundle), "--cache-dir", str(cache))
    return bundle


COST_TARGET = """\
schema_version: 1
name: tiny-costs
device: {arch: aarch64, cpu: cortex-a53, cores: 4, memory: 1GB}
runtime: {backends: [litert], threads: 2, calibration_images: 16}
budgets:
  - params: 3.6M
accuracy: {policy: warn}
measurement: {warmup: 1, runs: 5}
bundle: {layout: per-rung}
"""


@pytest.fixture(scope="session")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(table, project file, target file, cache dir) after ``restnetc profile`` on the tiny project."""
    root = tmp_path_factory.mktemp("costs")
    project, target, cache, table = root / "p.yaml", root / "t.yaml", root / "cache", root / "tables" / "tiny.json"
    project.write_text(TINY_PROJECT)
    target.write_text(COST_TARGET)
    _run_once("profile", "-t", str(target), "-p", str(project), "--out", str(table), "--cache-dir", str(cache))
    return table, project, target, cache
