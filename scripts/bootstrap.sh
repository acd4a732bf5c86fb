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
# libFuzzer, the aarch64 cross toolchain (C++ too, for the ExecuTorch backend) and qemu-user to run its tests as
# on a Cortex-A53 board, a JDK for JNI; Chromium renders report.html headless in the suite.
apt_install dataset-fashion-mnist cmake make gcc libc6-dev clang gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
  libc6-dev-arm64-cross libstdc++6-arm64-cross qemu-user-static openjdk-17-jdk-headless chromium ${RESTNETC_EXTRA_APT:-}

pip_quiet() {
  # pip warns about every name missing from the machine's extra local indexes; those lines are noise.
  "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v "is neither a file nor a directory" || true; }
}

stamp="$venv/.restnetc-stamp"
want="$(cat "$root/requirements.lock" "$root/pyproject.toml" "$root/runtime_shim/CMakeLists.txt" "$root"/runtime_shim/src/*.[ch] "$root"/runtime_shim/src/backends/*.c "$root"/runtime_shim/include/*.h | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing the pinned toolchain into $venv (a few minutes on a cold cache)"
  pip_quiet install -q -r "$root/requirements.lock"  # every file checked against the lock's sha256 hashes
  pip_quiet install -q --no-deps -e "$root"
  pip_quiet check
  echo "$want" > "$stamp"
fi

# The aarch64 runtimes of the pinned wheels, for the shim's cross build and its tests under qemu-aarch64 (a
# board uses the same files): libLiteRt.so, ExecuTorch's libraries, headers and CMake package, and numpy for
# restnetc.runtime on the aarch64 CPython below.
cross="$venv/aarch64"
pins="$(grep -oE '^(ai-edge-litert|executorch|numpy)==[^ ]+' "$root/requirements.lock" | tr '\n' ' ')"
if [ "$(cat "$cross/.pins" 2>/dev/null)" != "$pins" ]; then
  log "fetching the aarch64 wheels of $pins"
  rm -rf "$cross" && mkdir -p "$cross"
  # shellcheck disable=SC2086
  pip_quiet download -q --no-deps --only-binary=:all: --platform manylinux_2_27_aarch64 \
    --platform manylinux_2_28_aarch64 --python-version 3.11 -d "$cross/wheels" $pins
  "$venv/bin/python" - "$cross" "$root/requirements.lock" <<'PY'
import hashlib, pathlib, sys, zipfile
cross, lock = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text()
keep = ("ai_edge_litert/libLiteRt.so", "executorch/lib/", "executorch/share/cmake/", "executorch/include/",
        "numpy/", "numpy.libs/")
for wheel in (cross / "wheels").glob("*.whl"):
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if f"--hash=sha256:{digest}" not in lock:  # hash_lock.py lists every platform's files
        sys.exit(f"[bootstrap] {wheel.name}: sha256 {digest} is not one of requirements.lock's hashes")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cross, [name for name in archive.namelist() if name.startswith(keep)])
PY
  rm -rf "$cross/wheels"
  echo "$pins" > "$cross/.pins"
fi

# Debian's aarch64 CPython 3.11 and Java 17 runtime, unpacked (not installed) as a root for qemu-aarch64 -L: the
# suite runs restnetc.runtime's and the JNI runners on them as a Cortex-A53 would. Their C library and libstdc++
# come along, so the root serves libLiteRt.so and ExecuTorch too. It sits beside the wheels' directory, with its own
# stamp, so that a wheel pin bump does not fetch it again.
arm64_debian=(libc6 libgcc-s1 libstdc++6 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libffi8
  libexpat1 zlib1g libbz2-1.0 liblzma5 libssl3 libcrypt1 libuuid1 openjdk-17-jre-headless)
debian_root="$venv/aarch64-debian"
if [ "$(cat "$debian_root/.packages" 2>/dev/null)" != "${arm64_debian[*]}" ]; then
  log "unpacking Debian's arm64 python3.11 and Java 17 runtime into $debian_root"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    as_root dpkg --add-architecture arm64
    as_root apt-get update -q >/dev/null
  fi
  debs="$(mktemp -d)"
  (cd "$debs" && apt-get download -q "${arm64_debian[@]/%/:arm64}" >/dev/null 2>&1) || {
    as_root apt-get update -q >/dev/null
    (cd "$debs" && apt-get download -q "${arm64_debian[@]/%/:arm64}" >/dev/null)
  }
  rm -rf "$debian_root" && mkdir -p "$debian_root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$debian_root"; done
  rm -rf "$debs"
  # Absolute symlinks (the JRE's lib/jvm.cfg -> /etc/java-17-openjdk/jvm-arm64.cfg) would leave the root for the
  # host's files: point them at the root's own.
  find "$debian_root" -type l -lname '/*' | while read -r link; do
    ln -sfn "$debian_root$(readlink "$link")" "$link"
  done
  echo "${arm64_debian[*]}" > "$debian_root/.packages"
fi
