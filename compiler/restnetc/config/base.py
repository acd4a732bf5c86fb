"""Shared base for versioned config classes: strict keys, a schema version, a JSON round trip."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionedConfig(StrictModel):
    """A top-level config file. ``schema_version`` changes whenever a field changes meaning."""

    schema_version: Literal[1] = 1
