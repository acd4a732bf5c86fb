"""The target's cost table: read from a file (device source) or profiled on this machine, for measured budgets."""

from __future__ import annotations

from pathlib import Path

from restnetc.budget.cost_table import CostTable, load_table, parts_dir, save_table
from restnetc.budget.profiling import Settings, profile
from restnetc.cache import Cache
from restnetc.config.project import ProjectConfig
from restnetc.config.target import TargetConfig
from restnetc.data import ImageSet, load_split
from restnetc.data.check import check_data
from restnetc.errors import ConfigError
from restnetc.pipeline.parents import load_parents
from restnetc.results import Parent
from restnetc.workers import LOCAL, Executor

PROFILE_IMAGES = 32
"""Real images that calibrate and feed each part when a cost table is profiled."""


def _settings(target: TargetConfig) -> Settings:
    threads = target.runtime.host_threads()
    return Settings(target.name, target.cost_backend, target.runtime.quantization, threads)


def cost_table(
    project: ProjectConfig,
    target: TargetConfig,
    parents: tuple[Parent, Parent],
    train: ImageSet,
    cache: Cache,
    executor: Executor = LOCAL,
) -> CostTable:
    """The target's cost table: read from ``costs.table`` (device source) or profiled here (cached; ``executor``
    lowers the parts, they are timed here)."""
    names = [parent.name for parent in parents]
    if target.costs.table is not None:
        table = load_table(target.costs.table)
        expected = {
            "backend": target.cost_backend.value,
            "quantization": target.runtime.quantization.value,
            "input_size": project.data.input_size,
        }
        for field_name, value in expected.items():
            if getattr(table, field_name) != value:
                got = getattr(table, field_name)
                raise ConfigError(f"{target.costs.table}: {field_name}: the target needs {value!r}, got {got!r}")
        for name in names:
            table.model_latency_ms(name)  # names the missing model if the table lacks one
        return table
    models = {parent.name: parent.model for parent in parents}
    return profile(models, train.head(PROFILE_IMAGES).images, _settings(target), cache, executor=executor)


def profile_target(
    project: ProjectConfig, target: TargetConfig, cache: Cache, out: Path, executor: Executor = LOCAL
) -> CostTable:
    """Profile ``target``'s cost table here and write it to ``out``, with its part artifacts in ``NAME.parts/``;
    ``executor`` lowers the parts.

    The parts are what ``restnetc bench plan --table`` pushes to a device to take the device's own table.
    """
    check_data(project)
    train = load_split(project.data, "train", project.seed)
    front, back = load_parents(project, train, cache)
    models = {parent.name: parent.model for parent in (front, back)}
    table = profile(models, train.head(PROFILE_IMAGES).images, _settings(target), cache, parts_dir(out), executor)
    save_table(table, out)
    return table
