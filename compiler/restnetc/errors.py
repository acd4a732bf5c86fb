"""User-facing errors: the CLI prints their message on one line and exits non-zero, no traceback."""

from __future__ import annotations


class RestnetcError(Exception):
    """An error caused by the user's input or environment, with a message that says how to fix it."""


class ConfigError(RestnetcError):
    """A project or target file is missing, unreadable or invalid."""


class BudgetError(RestnetcError):
    """No stitched variant satisfies a budget."""


class DataError(RestnetcError):
    """A dataset is missing or malformed."""
