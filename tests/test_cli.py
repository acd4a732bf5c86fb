"""The restnetc command line end to end, on real weights and real Fashion-MNIST images."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from packaging.requirements import Requirement
from typer.core import TyperGroup

from restnetc.config.loader import load_config
from restnetc.config.project import ProjectConfig, StitchOrder
from restnetc.models import count_params, decompose
from restnetc.models.factory import build_model
from tests.conftest import BUILD_TARGET, REPO, CliResult


def _commands(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the CLI (subcommands of groups included) with its path of names, from the app itself."""
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*path, name))


def test_every_command_has_help(cli: Callable[..., CliResult]) -> None:
    from restnetc.cli import app

    commands = dict(_commands(typer.main.get_group(app)))
    assert {("build",), ("search",), ("bench", "plan"), ("bench", "ingest")} <= set(commands)
    for path, command in commands.items():
        summary = (command.help or "").strip().splitlines()
        assert summary and summary[0], f"restnetc {' '.join(path)} has no help text"
        parent = cli(*path[:-1], "--help")
        assert parent.code == 0 and path[-1] in parent.stdout, f"restnetc {' '.join(path[:-1])} --help"
        result = cli(*path, "--help")
        assert result.code == 0 and "Usage" in result.stdout and summary[0][:40] in " ".join(result.stdout.split())


def test_doctor_reports_a_set_up_machine(cli: Callable[..., CliResult]) -> None:
    result = cli("doctor")
    assert result.code == 0, result.stderr
    for component in ("torch", "executorch", "litert-torch", "ai-edge-litert", "timm", "dataset-fashion-mnist"):
        assert component in result.stdout
    assert "2.13.0" in result.stdout


def test_doctor_json_lists_every_check(cli: Callable[..., CliResult]) -> None:
    from restnetc.doctor import run_checks

    result = cli("doctor", "--json")
    assert result.code == 0, result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    assert set(checks) == {check.name for check in run_checks()}
    assert checks["torch"]["found"] and checks["torch"]["version"].startswith("2.13.0")
    assert set(checks["executorch"]) == {"name", "required", "found", "version", "purpose", "hint"}


def test_version_completion_and_module_entry_point(cli: Callable[..., CliResult]) -> None:
    from importlib.metadata import version

    shown = cli("--version")
    assert shown.code == 0 and shown.stdout.strip() == f"restnetc {version('restnetc')}"
    completion = cli("--show-completion", "bash")
    assert completion.code == 0 and "_RESTNETC_COMPLETE=complete_bash" in completion.stdout
    module = subprocess.run([sys.executable, "-m", "restnetc", "--help"], capture_output=True, text=True, timeout=120)
    assert module.returncode == 0 and "Usage:" in module.stdout and "build" in module.stdout, module.stderr


def test_doctor_install_hints_are_the_requirements_pyproject_declares() -> None:
    from restnetc.doctor import run_checks

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {Requirement(d) for d in project["dependencies"]}
    checks = [c for c in run_checks() if c.hint.startswith("pip install '")]
    hints = [c.hint.removeprefix("pip install ").strip("'") for c in checks if c.required]
    assert len(hints) == len(declared) and {Requirement(hint) for hint in hints} == declared
    optional = {(c.name, c.hint) for c in checks if not c.required}
    extras = project["optional-dependencies"]
    assert optional == {
        (Requirement(d).name, f"pip install 'restnetc[{extra}]'") for extra, ds in extras.items() for d in ds
    }


def test_doctor_checks_every_declared_dependency_and_says_what_each_is_for() -> None:
    from restnetc.doctor import PURPOSES, run_checks
    from restnetc.metadata import canonical_name

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = [canonical_name(re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0]) for line in pyproject]
    assert sorted(PURPOSES) == sorted(declared)
    checked = [check.name for check in run_checks()]
    assert checked[: len(declared) + 1] == ["restnetc", *declared]


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


def _block_counts(project: Path) -> tuple[int, int]:
    """(front, back) block counts of the project's parents, from the models (slow-to-fast: the larger in front)."""
    config = load_config(project, ProjectConfig)
    assert config.order is StitchOrder.SLOW_TO_FAST
    models = [decompose(build_model(config.models[k], config.data.input_size)) for k in ("a", "b")]
    front, back = sorted(models, key=count_params, reverse=True)
    return len(front.blocks), len(back.blocks)


def test_search_writes_cka_variants_and_plot_then_reuses_the_cache(
    tiny_files: tuple[Path, Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project, target = tiny_files
    out = tmp_path / "out"
    first = cli("search", "--target", str(target), "--project", str(project), "--out", str(out))
    assert first.code == 0, first.stderr
    cka = np.load(out / "cka.npy")
    assert cka.shape == _block_counts(project) and (cka >= 0).all() and (cka <= 1).all()
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
    assert second.code == 0 and f"CKA matrix {cka.shape}: cached" in second.stderr
    assert json.loads((out / "variants.json").read_text())["variants"] == variants
    quiet = cli("-q", "search", "--target", str(target), "--project", str(project), "--out", str(out))
    assert quiet.code == 0 and "params <= 3.6M" in quiet.stdout
    assert "cached" not in quiet.stderr and "> " not in quiet.stderr, "-q keeps only warnings and errors"


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


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (BUILD_TARGET, "name: 'tiny-build' is also the name of {first}; each bundle is named after its target"),
        ("schema_version: 1\nname: other\nbudgets: 3\n", "device: required field is missing"),
        (
            BUILD_TARGET.replace("name: tiny-build", "name: other").replace("images: 16", "images: 512"),
            "the target's runtime.calibration_images: asks for 512 images, but data.train_images loads 96",
        ),
    ],
    ids=["same name", "invalid", "too many calibration images"],
)
def test_every_target_of_a_build_is_checked_before_any_work(
    second: str, message: str, tiny_files: tuple[Path, Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A second target that repeats the first one's name, is invalid or asks for more images than the project
    loads stops the build before any work on the first."""
    project, target = tiny_files
    target.write_text(BUILD_TARGET)
    other = tmp_path / "second.yaml"
    other.write_text(second)
    out = tmp_path / "bundles"
    result = cli("build", "-t", str(target), "-t", str(other), "-p", str(project), "--out", str(out))
    assert result.code == 1 and "Traceback" not in result.stderr
    last = " ".join(result.stderr.split("error: ", 1)[-1].split())
    assert last.startswith(f"{other}: ") and message.format(first=target) in last, result.stderr
    assert not out.exists() and "data:" not in result.stderr, "no work before every target is checked"


def test_a_status_line_is_printed_once_after_a_toolchain_configured_root_logging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ExecuTorch's XNNPACK partitioner calls ``logging.basicConfig`` on import: the CLI's own handler must
    not let the root's print each line a second time; and when the command ends, the library logs as before."""
    import logging

    from restnetc import cli as command_line

    monkeypatch.setattr(logging.root, "handlers", [logging.StreamHandler()])  # what basicConfig leaves
    command_line._options(version=False, quiet=False, verbose=False)
    try:
        logging.getLogger("restnetc.pipeline").info("a status line")
    finally:
        command_line._library_defaults()
    assert capsys.readouterr().err.count("a status line") == 1
    assert logging.getLogger("restnetc").propagate and not logging.getLogger("restnetc").handlers[1:]
