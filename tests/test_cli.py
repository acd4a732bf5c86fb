"""The restnetc command line end to end, on real weights and real Fashion-MNIST images."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CliResult


def test_every_command_has_help(cli: Callable[..., CliResult]) -> None:
    top = cli("--help")
    assert top.code == 0
    for command in ("doctor", "search", "families"):
        assert command in top.stdout
        result = cli(command, "--help")
        assert result.code == 0 and "Usage" in result.stdout


def test_doctor_reports_a_set_up_machine(cli: Callable[..., CliResult]) -> None:
    result = cli("doctor")
    assert result.code == 0, result.stderr
    for component in ("torch", "executorch", "litert-torch", "ai-edge-litert", "timm", "dataset-fashion-mnist"):
        assert component in result.stdout
    assert "2.13.0" in result.stdout


def test_doctor_fails_and_says_how_to_install_a_missing_component(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import restnetc.doctor as doctor

    real_checks = doctor.run_checks
    monkeypatch.setattr(doctor, "run_checks", lambda: real_checks(fashion_mnist_root=tmp_path))
    result = cli("doctor")
    assert result.code == 1
    assert "MISSING" in result.stdout and "apt-get install dataset-fashion-mnist" in result.stdout


def test_families_lists_registered_adapters(cli: Callable[..., CliResult]) -> None:
    result = cli("families", "*t*")
    assert result.code == 0 and result.stdout.split() == ["efficientnet-lite", "resnet", "vit"]


def test_search_writes_cka_variants_and_plot_then_reuses_the_cache(
    tiny_files: tuple[Path, Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project, target = tiny_files
    out = tmp_path / "out"
    first = cli("search", "--target", str(target), "--project", str(project), "--out", str(out))
    assert first.code == 0, first.stderr
    cka = np.load(out / "cka.npy")
    assert cka.shape == (21, 16) and (cka >= 0).all() and (cka <= 1).all()
    assert (out / "cka.png").read_bytes()[:4] == b"\x89PNG"
    document = json.loads((out / "variants.json").read_text())
    variants = document["variants"]
    assert [v["budget"]["limit"] for v in variants] == [3.6e6, 4.2e6]
    assert variants[0]["params"] <= 3.6e6 < variants[1]["params"] <= 4.2e6
    assert len({(v["front"]["block"], v["back"]["block"]) for v in variants}) == 2
    for v in variants:
        assert v["cka"] == pytest.approx(cka[v["front"]["block"], v["back"]["block"]], abs=1e-6)
        assert 0 <= v["accuracy"]["before_finetune"] <= 100 and 0 <= v["accuracy"]["after_finetune"] <= 100
        assert 0 < v["trainable_params"] < 100_000 and v["finetune_steps"] == 3
    parents = document["parents"]
    assert parents["front"]["model"] == "efficientnet-lite2" and parents["back"]["model"] == "efficientnet-lite0"
    assert parents["front"]["accuracy"] > 30, "a linear probe on ImageNet features beats chance on Fashion-MNIST"
    assert "params <= 3.6M" in first.stdout

    second = cli("search", "--target", str(target), "--project", str(project), "--out", str(out))
    assert second.code == 0 and "CKA matrix (21, 16): cached" in second.stderr
    assert json.loads((out / "variants.json").read_text())["variants"] == variants


def test_infeasible_budget_is_a_one_line_error(tiny_files: tuple[Path, Path], cli: Callable[..., CliResult]) -> None:
    project, target = tiny_files
    target.write_text(target.read_text().replace("params: 3.6M", "params: 100K"))
    result = cli("search", "--target", str(target), "--project", str(project), "--out", str(target.parent / "o"))
    assert result.code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: budget params <= 100K is infeasible: stitched variants cost between ")
    assert not (target.parent / "o").exists(), "nothing is written when the search fails"


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("restnetc")
    bad = tmp_path / "t.yaml"
    bad.write_text("schema_version: 1\nname: x\nbudgets: 3\n")
    result = subprocess.run([script, "search", "--target", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {bad}: ") and "Traceback" not in result.stderr
