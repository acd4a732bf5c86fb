"""Units the tool converts between, defined once."""

MIB = 1 << 20
"""Bytes in a mebibyte: the shim's ``--headroom-mb`` and ``benchmark_model``'s "MB" are both MiB."""
