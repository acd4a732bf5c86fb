"""``inspect`` and ``size-check`` measure every artifact file on disk and never trust the manifest's figures."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from restnetc.bundle.manifest import read_manifest, write_manifest
from tests.conftest import CliResult
from tests.fakes import write_fake_bundle

FILES = {"litert/a0.tflite": b"x" * 1000, "executorch/a1.pte": b"y" * 2000}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write_fake_bundle(tmp_path / "bundle", FILES)
    return tmp_path / "bundle"


def test_inspect_passes_a_bundle_that_matches(bundle: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("inspect", str(bundle))
    assert result.code == 0 and "all 2 artifact files match the manifest" in result.stdout


def test_inspect_reports_a_size_change_with_both_figures(bundle: Path, cli: Callable[..., CliResult]) -> None:
    (bundle / "litert/a0.tflite").write_bytes(b"x" * 1500)
    result = cli("inspect", str(bundle))
    assert (
        result.code == 1 and f"{bundle / 'litert/a0.tflite'}: 1500 bytes on disk, manifest says 1000" in result.stderr
    )


def test_inspect_reports_an_edit_of_the_same_size_with_both_digests(
    bundle: Path, cli: Callable[..., CliResult]
) -> None:
    (bundle / "executorch/a1.pte").write_bytes(b"y" * 1999 + b"z")
    result = cli("inspect", str(bundle))
    on_disk = hashlib.sha256(b"y" * 1999 + b"z").hexdigest()
    recorded = hashlib.sha256(FILES["executorch/a1.pte"]).hexdigest()
    expected = f"sha256 does not match the manifest ({on_disk} on disk, manifest says {recorded})"
    assert result.code == 1 and f"{bundle / 'executorch/a1.pte'}: {expected}" in result.stderr


def test_inspect_reports_missing_and_non_regular_files_without_blocking(
    bundle: Path, cli: Callable[..., CliResult]
) -> None:
    """A FIFO in place of an artifact is reported, never opened for a read that would wait for a writer."""
    (bundle / "litert/a0.tflite").unlink()
    os.mkfifo(bundle / "litert/a0.tflite")
    (bundle / "executorch/a1.pte").unlink()
    result = cli("inspect", str(bundle))
    assert result.code == 1
    assert f"{bundle / 'litert/a0.tflite'}: not a regular file" in result.stderr
    assert f"{bundle / 'executorch/a1.pte'}: missing (manifest says 2000 bytes)" in result.stderr


def test_size_check_measures_on_disk_and_refuses_a_manifest_that_lies(
    bundle: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    baseline = tmp_path / "sizes.json"
    assert cli("size-check", str(bundle), "--baseline", str(baseline), "--update").code == 0
    assert json.loads(baseline.read_text())["artifacts"] == {"executorch/a1.pte": 2000, "litert/a0.tflite": 1000}
    (bundle / "litert/a0.tflite").write_bytes(b"x" * 90_000)  # grew; the manifest still says 1000 bytes
    for extra in ([], ["--update"]):
        result = cli("size-check", str(bundle), "--baseline", str(baseline), *extra)
        assert result.code == 1
        assert f"{bundle / 'litert/a0.tflite'}: 90000 bytes on disk, manifest says 1000" in result.stderr
    assert json.loads(baseline.read_text())["artifacts"]["litert/a0.tflite"] == 1000, "baseline not rewritten"


def test_size_check_fails_growth_measured_on_disk(bundle: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    baseline = tmp_path / "sizes.json"
    assert cli("size-check", str(bundle), "--baseline", str(baseline), "--update").code == 0
    data = b"x" * 1100
    (bundle / "litert/a0.tflite").write_bytes(data)
    manifest = read_manifest(bundle)
    grown = manifest.artifacts[0].model_copy(update={"bytes": 1100, "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(bundle, manifest.model_copy(update={"artifacts": [grown, *manifest.artifacts[1:]]}))
    result = cli("size-check", str(bundle), "--baseline", str(baseline), "--tolerance", "5")
    assert result.code == 1 and "| litert/a0.tflite | 1000 | 1100 | +100 (+10.00%) | FAIL: grew past tolerance |" in (
        result.stdout
    )
    assert cli("size-check", str(bundle), "--baseline", str(baseline), "--tolerance", "10").code == 0
