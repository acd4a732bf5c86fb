#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), lint, format check, type check, tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -m 'not slow' (the quick loop, without session builds)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
bin="$root/.venv/bin"
"$bin/ruff" check compiler tests benchmarks scripts
"$bin/ruff" format --check compiler tests benchmarks scripts README.md   # README: its Python examples
"$bin/mypy"
PYTHONPATH="$root/compiler" "$bin/lint-imports" --no-cache   # the layers in pyproject.toml [tool.importlinter]
"$bin/pytest" -q --durations=15 "$@"
