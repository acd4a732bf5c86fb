"""Bundles: lowered variants of the ladder, a manifest with every measured figure, verification tools."""
