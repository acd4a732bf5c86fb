"""Every extension point is a registry that rejects duplicates and unknown names, and holds exactly what the
config schemas accept: model sources (``models.factory``), data sources (``data.sources``) and stitch-point
selectors (``pipeline.search``) here, and executors (``workers``, tested each in ``test_executors.py``); backends
(``test_backends.py``) and accuracy policies (``test_accuracy_policy.py``) beside their own code."""

from __future__ import annotations

import typing
from collections.abc import Callable

import pytest

from restnetc.config.project import DataSource, ModelSpec, SearchConfig
from restnetc.data.sources import get_data_source, list_data_sources, register_data_source
from restnetc.models.factory import get_model_source, list_model_sources, register_model_source
from restnetc.pipeline.search import get_selector, list_selectors, register_selector
from restnetc.workers import EXECUTORS


def _discriminator_values(union: object, field: str) -> list[str]:
    """The values a discriminated union's members accept for ``field``."""
    members = typing.get_args(typing.get_args(union)[0])
    return sorted(value for member in members for value in typing.get_args(member.model_fields[field].annotation))


def test_model_sources_are_exactly_the_ones_a_project_names() -> None:
    assert sorted(list_model_sources()) == _discriminator_values(ModelSpec, "source")


def test_data_sources_are_exactly_the_ones_a_project_names() -> None:
    assert sorted(list_data_sources()) == _discriminator_values(DataSource, "kind")


def test_selectors_are_exactly_the_ones_a_project_names() -> None:
    assert sorted(list_selectors()) == sorted(typing.get_args(SearchConfig.model_fields["selector"].annotation))


@pytest.mark.parametrize(
    ("register", "get", "name", "what"),
    [
        (register_model_source, get_model_source, "timm", "model source"),
        (register_data_source, get_data_source, "image-folder", "data source"),
        (register_selector, get_selector, "measured", "selector"),
        (EXECUTORS.register, EXECUTORS.get, "ray", "executor"),
    ],
)
def test_a_registry_rejects_duplicates_and_unknown_names(
    register: Callable[[str, typing.Any], None], get: Callable[[str], object], name: str, what: str
) -> None:
    with pytest.raises(ValueError, match=f"{what} '{name}' is already registered"):
        register(name, get(name))
    with pytest.raises(ValueError, match=f"unknown {what} 'hub'; registered: .*{name}"):
        get("hub")
