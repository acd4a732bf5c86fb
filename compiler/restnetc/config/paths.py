"""The one rule for names that become paths: bundle files, cost-table parts, target names.

Such names reach file systems on the host and devices, and shell scripts (``bench plan``), so they are limited
to ``[A-Za-z0-9._/-]``, relative, with no empty, ``.`` or ``..`` component; a file name is one such component.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]*")


def path_problem(value: str) -> str | None:
    """Why ``value`` is not a plain relative path (None when it is one)."""
    if not _PATH_CHARACTERS.fullmatch(value):
        return "it has characters outside [A-Za-z0-9._/-]"
    if value.startswith("/"):
        return "it is absolute"
    if any(part in ("", ".", "..") for part in value.split("/")):
        return "it has an empty, '.' or '..' component"
    return None


def check_relative_path(value: str) -> str:
    """``value`` if it is a plain relative path; otherwise ValueError saying why."""
    if problem := path_problem(value):
        raise ValueError(f"{value!r} is not a relative path inside the bundle: {problem}")
    return value


def check_file_name(value: str) -> str:
    """``value`` if it is one plain path component (a file or directory name); otherwise ValueError saying why."""
    problem = "it has a '/'" if "/" in value else path_problem(value)
    if problem:
        raise ValueError(f"{value!r} is not a plain file name: {problem}")
    return value


RelativePath = Annotated[str, AfterValidator(check_relative_path)]
FileName = Annotated[str, AfterValidator(check_file_name)]
