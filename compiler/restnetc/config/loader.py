"""Reading config files: safe YAML, validation, and one-line errors naming the file and the field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from restnetc.config.project import ProjectConfig
from restnetc.config.target import TargetConfig
from restnetc.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=BaseModel)

PROJECT_FILE_NAME = "restnetc.yaml"
"""A project file with this name in the working directory is used when ``--project`` is not given."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


# Tagged-union members appear in pydantic's error locations; they are not keys the user wrote.
_UNION_TAGS = {"timm", "efficientnet-lite", "fashion-mnist", "image-folder"}


def _describe(error: dict[str, object]) -> str:
    raw: tuple[int | str, ...] = tuple(error["loc"])  # type: ignore[arg-type]
    loc = tuple(p for p in raw if isinstance(p, int) or ("[" not in p and p not in _UNION_TAGS))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"{_field_path(loc)}: unknown key (check its spelling and indentation)"
    if kind == "missing":
        return f"{_field_path(loc)}: required field is missing"
    value = error.get("input")
    is_key = raw[-1:] == ("[key]",)  # a mapping key's error: the path already ends with the key
    shown = "" if kind == "model_attributes_type" or isinstance(value, dict) or is_key else f" (got {value!r})"
    return f"{_field_path(loc)}: {message}{shown}"


def load_config(path: Path, model: type[ConfigT]) -> ConfigT:
    """Read ``path`` as YAML (safe loader) and validate it as ``model``; raise ConfigError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    if data.get("schema_version", 1) != 1:
        raise ConfigError(f"{path}: schema_version: this restnetc reads version 1, got {data['schema_version']!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{path}: {_describe(dict(errors[0]))}{more}") from None


def builtin_targets() -> dict[str, Path]:
    """The target files shipped inside the package, by name (``cortex-a53`` for ``targets/cortex-a53.yaml``)."""
    root = resources.files("restnetc") / "targets"
    return {
        entry.name.removesuffix(".yaml"): Path(str(entry)) for entry in root.iterdir() if entry.name.endswith(".yaml")
    }


def target_file(path: Path) -> Path:
    """``path`` itself if it names a file or a directory part, else the built-in target of that name if any.

    So ``--target cortex-a53`` works from any directory once the package is installed, while a file of that
    name in the working directory still wins.
    """
    if path.exists() or path.name != str(path) or path.suffix:
        return path
    builtin = builtin_targets()
    if str(path) in builtin:
        return builtin[str(path)]
    raise ConfigError(f"{path}: file not found, and not a built-in target (built-in: {', '.join(sorted(builtin))})")


def load_target(path: Path) -> TargetConfig:
    """Load and validate a target file (or a built-in target by name, see ``target_file``); a relative cost
    table path is resolved against the file's directory."""
    path = target_file(path)
    target = load_config(path, TargetConfig)
    table = target.costs.table
    if table is None or table.is_absolute():
        return target
    costs = target.costs.model_copy(update={"table": (path.parent / table).resolve()})
    return target.model_copy(update={"costs": costs})


def demo_project_path() -> Path:
    """The built-in demo project shipped inside the package."""
    return Path(str(resources.files("restnetc") / "demo" / "project.yaml"))


def load_project(path: Path | None, cwd: Path | None = None) -> tuple[ProjectConfig, Path]:
    """Load the project: ``path`` if given, else ``restnetc.yaml`` in ``cwd``, else the built-in demo.

    Relative paths inside the file are resolved against the file's directory. Returns the config and the
    file it came from.
    """
    if path is None:
        local = (cwd or Path.cwd()) / PROJECT_FILE_NAME
        path = local if local.is_file() else demo_project_path()
    project = load_config(path, ProjectConfig)
    for key, spec in project.models.items():
        checkpoint = getattr(spec, "checkpoint", None)
        if checkpoint is not None and not (path.parent / checkpoint).is_file():
            raise ConfigError(f"{path}: models.{key}.checkpoint: file not found: {checkpoint}")
    return project.resolve_paths(path.parent.resolve()), path
