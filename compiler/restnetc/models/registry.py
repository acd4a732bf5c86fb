"""Registry of model-family adapters: each turns a model of its family into a BlockModel."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from restnetc.errors import ConfigError
from restnetc.models.blocks import BlockModel
from restnetc.registry import Registry

Decomposer = Callable[[nn.Module], BlockModel]


@dataclass(frozen=True)
class Family:
    """An adapter: which models it accepts and how it splits them into blocks."""

    name: str
    matches: Callable[[nn.Module], bool]
    decompose: Decomposer


_FAMILIES = Registry[Family]("model family")


def register_family(name: str, matches: Callable[[nn.Module], bool]) -> Callable[[Decomposer], Decomposer]:
    """Decorator registering ``decompose`` as the adapter for models where ``matches(model)`` holds."""

    def wrap(decompose: Decomposer) -> Decomposer:
        _FAMILIES.register(name, Family(name, matches, decompose))
        return decompose

    return wrap


def list_families(pattern: str = "*") -> list[str]:
    """Registered family names matching a shell-style wildcard, sorted."""
    return sorted(name for name in _FAMILIES.names() if fnmatch.fnmatch(name, pattern))


def _family(model: nn.Module) -> Family:
    """The first registered family that accepts ``model`` (most specific first)."""
    for family in _FAMILIES.values():
        if family.matches(model):
            return family
    raise ConfigError(f"no block adapter for {type(model).__name__}; supported families: {', '.join(list_families())}")


def family_of(model: nn.Module) -> str:
    """The name of the registered family whose adapter ``decompose`` splits ``model`` with (ConfigError if none)."""
    return _family(model).name


def decompose(model: nn.Module) -> BlockModel:
    """Split ``model`` with the first registered adapter that accepts it (most specific first).

    The block model runs ``model``'s own modules, and its attention layers that can (timm's, by their
    ``fused_attn`` switch) now compute attention explicitly: the same arithmetic, but counted (torch's flop counter
    misses fused attention's matmuls on CPU: DeiT-Ti's MACs were 19.4M, are 22.6M) and exported as matmuls and a
    softmax, where fused attention exports as a decomposition with masking ops ExecuTorch's XNNPACK delegate does
    not take (``backends.executorch_edge``)."""
    for module in attention_switches(model):
        module.fused_attn = False  # type: ignore[assignment]  # typed as holding tensors or modules only
    return _family(model).decompose(model)


def attention_switches(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that choose fused or explicit attention by a ``fused_attn`` flag (timm's)."""
    return [module for module in model.modules() if isinstance(getattr(module, "fused_attn", None), bool)]
