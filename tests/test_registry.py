"""The one registry type every extension point uses: duplicates and unknown names refused, order kept."""

from __future__ import annotations

import pytest

from restnetc.registry import Registry


def test_a_registry_keeps_order_and_refuses_duplicates_and_unknown_names() -> None:
    registry = Registry[int]("widget")
    registry.register("b", 2)
    registry.register("a", 1)
    assert registry.names() == ("b", "a") and registry.values() == (2, 1) and registry.get("a") == 1
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        registry.register("a", 3)
    assert registry.get("a") == 1, "a refused registration leaves the first entry"
    with pytest.raises(ValueError, match="unknown widget 'c'; registered: b, a"):
        registry.get("c")
