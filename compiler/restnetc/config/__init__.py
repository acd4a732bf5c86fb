"""Versioned, validated configuration: project files, target files, human units."""

from restnetc.config.loader import load_project, load_target
from restnetc.config.project import ProjectConfig
from restnetc.config.target import Budget, Metric, TargetConfig

__all__ = ["Budget", "Metric", "ProjectConfig", "TargetConfig", "load_project", "load_target"]
