"""Builds the runtime shim's C core into the package, so ``restnetc.runtime`` runs the same C code as devices.

The core (``runtime_shim/src``) and its LiteRT backend (which dlopens libLiteRt.so) have no Python API: they
become ``restnetc/_shim*.so``, a plain shared library that ``restnetc.runtime`` opens with ctypes. Everything else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup

CORE = ("bundle.c", "memory.c", "runner.c", "select.c", "sha256.c", "status.c", "validate.c")

setup(
    ext_modules=[
        Extension(
            "restnetc._shim",
            sources=[f"runtime_shim/src/{name}" for name in CORE] + ["runtime_shim/src/backends/litert.c"],
            include_dirs=["runtime_shim/include"],
            define_macros=[("_POSIX_C_SOURCE", "200809L"), ("_XOPEN_SOURCE", "700")],
            libraries=["m", "dl"],
            extra_compile_args=["-std=c11", "-pthread", "-Wall", "-Wextra", "-Werror"],
            extra_link_args=["-pthread"],
        )
    ]
)
