#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: Debian packages, the .venv with the pinned toolchain, restnetc itself.
# Re-running is cheap: each step is skipped when its result is already in place.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  # Installs the given Debian packages if any of them is missing.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q "${missing[@]}" >/dev/null
  }
}

# Fashion-MNIST (the demo data); cmake and C compilers build the runtime shim (runtime_shim/): gcc, clang for
# libFuzzer, the aarch64 cross toolchain and qemu-user to run its tests as on a Cortex-A53 board, a JDK for JNI.
apt_install dataset-fashion-mnist cmake make gcc libc6-dev clang gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
  qemu-user-static openjdk-17-jdk-headless ${RESTNETC_EXTRA_APT:-}

pip_quiet() {
  # pip warns about every name missing from the machine's extra local indexes; those lines are noise.
  "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v "is neither a file nor a directory" || true; }
}

stamp="$venv/.restnetc-stamp"
want="$(cat "$root/requirements.lock" "$root/pyproject.toml" "$root/setup.py" "$root"/runtime_shim/src/*.[ch] "$root"/runtime_shim/include/*.h | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing the pinned toolchain into $venv (a few minutes on a cold cache)"
  pip_quiet install -q -r "$root/requirements.lock"
  pip_quiet install -q --no-deps -e "$root"
  pip_quiet check
  echo "$want" > "$stamp"
fi
