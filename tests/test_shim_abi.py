"""The artifact record and the shim's constants are defined once (``restnetc.shim_abi``) and every other form of
them agrees: the C parser's key table, the C header's structs (sizes and offsets, from a compiled probe), the
manifest's quantization model, the binding's ``Variant``, and a manifest's values read back through the C core."""

from __future__ import annotations

import ctypes
import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from restnetc import shim_abi
from restnetc.bundle.manifest import BundleError, InputSpec, Quantization, write_manifest
from restnetc.bundle.runtime_index import memory_need, write_index
from restnetc.runtime import Bundle, Variant
from tests.conftest import REPO
from tests.fakes import write_fake_bundle

SHIM = REPO / "runtime_shim"
CONSTANTS = {
    "RS_INDEX_VERSION": shim_abi.INDEX_VERSION,
    "RS_MAX_ARTIFACTS": shim_abi.MAX_ARTIFACTS,
    "RS_MAX_THREADS": shim_abi.MAX_THREADS,
    "RS_DEFAULT_HEADROOM_BYTES": shim_abi.DEFAULT_HEADROOM_BYTES,
    "RS_DEFAULT_HYSTERESIS": shim_abi.DEFAULT_HYSTERESIS,
    **{f"RS_PACKING_{policy.name}": policy.value for policy in shim_abi.PackingPolicy},
    **{f"RS_RESIZE_{resize.name}": resize.value for resize in shim_abi.Resize},
}


def _c_parser_keys() -> tuple[str, ...]:
    """The artifact keys of ``src/bundle.c`` in field order: the ``artifact_key`` enum, named by ``ARTIFACT_KEYS``."""
    source = (SHIM / "src" / "bundle.c").read_text()
    enum = re.search(r"typedef enum \{([^}]*)\} artifact_key;", source)
    table = re.search(r"ARTIFACT_KEYS\[ARTIFACT_KEY_COUNT\] = \{([^}]*)\};", source)
    assert enum and table, "bundle.c no longer declares the artifact_key enum and ARTIFACT_KEYS table"
    order = [name.strip() for name in enum.group(1).split(",") if name.strip() != "ARTIFACT_KEY_COUNT"]
    names = dict(re.findall(r"\[(\w+)\]\s*=\s*\"([^\"]+)\"", table.group(1)))
    assert set(names) == set(order), f"enum {order} and table {sorted(names)} name different fields"
    return tuple(names[member] for member in order)


def test_the_c_parser_reads_the_record_keys_in_order() -> None:
    assert _c_parser_keys() == shim_abi.ARTIFACT_KEYS


def _probe_source() -> str:
    """C that prints, from the header itself, each mirrored struct's size and each member's offset and size."""
    headers = [f'#include "restnet_shim{suffix}.h"' for suffix in ("", "_executorch", "_litert")]
    lines = ["#include <stddef.h>", "#include <stdio.h>", *headers, "int main(void) {"]
    for name, mirror in shim_abi.MIRRORS.items():
        lines.append(f'    printf("{name} %zu\\n", sizeof({name}));')
        for member, _ in mirror._fields_:
            where = f"offsetof({name}, {member}), sizeof((({name} *)0)->{member})"
            lines.append(f'    printf("{name}.{member} %zu %zu\\n", {where});')
    lines += [f'    printf("{name} %.17g\\n", (double)({name}));' for name in CONSTANTS]
    return "\n".join([*lines, "    return 0;", "}", ""])


@pytest.fixture(scope="module")
def header_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """What the probe printed: ``name -> figures``, compiled with the shim's warnings-as-errors flags."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "no C compiler (the test command installs build-essential)"
    work = tmp_path_factory.mktemp("abi-probe")
    (work / "probe.c").write_text(_probe_source())
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(SHIM / "include")]
    build = subprocess.run(
        [compiler, *flags, str(work / "probe.c"), "-o", str(work / "probe")], capture_output=True, text=True
    )
    assert build.returncode == 0, f"the header lacks a mirrored struct or member:\n{build.stderr[-3000:]}"
    output = subprocess.run([str(work / "probe")], capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: line.split()[1:] for line in output.splitlines()}


@pytest.mark.parametrize("name", list(shim_abi.MIRRORS))
def test_each_ctypes_mirror_has_the_header_layout(name: str, header_layout: dict[str, list[str]]) -> None:
    mirror = shim_abi.MIRRORS[name]
    assert int(header_layout[name][0]) == ctypes.sizeof(mirror), f"{name}: sizeof differs (a member added?)"
    for member, _ in mirror._fields_:
        described = getattr(mirror, member)
        offset, size = (int(v) for v in header_layout[f"{name}.{member}"])
        assert (offset, size) == (described.offset, described.size), f"{name}.{member}: offset or size differs"


@pytest.mark.parametrize("name", list(CONSTANTS))
def test_each_constant_is_the_header_value(name: str, header_layout: dict[str, list[str]]) -> None:
    assert float(header_layout[name][0]) == CONSTANTS[name]


def test_the_quantization_record_is_one_record() -> None:
    names = [f.name for f in dataclasses.fields(shim_abi.TensorQuantization)]
    assert names == [member for member, _ in shim_abi.Quantization._fields_]
    assert names == list(Quantization.model_fields)


def test_input_quantization_follows_tflite_quantize_ties_away_from_zero_then_clamps() -> None:
    """The convention the C core shares (``quantize`` in ``src/runner.c``): rounding half to even, or adding the zero
    point before rounding, or dividing in double, each changes at least one of these values."""
    q = shim_abi.TensorQuantization("int8", 0.5, 1)
    values = np.array([0.25, -0.25, 0.75, -0.75, 1.25, 0.2499999, 100.0, -100.0], dtype=np.float32)
    assert q.quantize(values).tolist() == [2, 0, 3, -1, 4, 1, 127, -128]
    assert q.quantize(values).dtype == np.int8
    odd = shim_abi.TensorQuantization("uint8", 0.1, 3)  # 0.35 / 0.1 is 3.5 in float32, below it in double
    assert odd.quantize(np.array([0.3, 0.35], dtype=np.float32)).tolist() == [6, 7]
    assert odd.dequantize(np.array([3, 13], dtype=np.uint8)).tolist() == pytest.approx([0.0, 1.0])
    # the float32 scale, in double: -188 * 0.1f is -18.800001 in float32, where -188 * 0.1 would give -18.8
    assert (
        shim_abi.TensorQuantization("int8", 0.1, 60).dequantize(np.array([-128], dtype=np.int8))[0]
        == np.float32(-188 * float(np.float32(0.1)))
        != np.float32(-18.8)
    )
    assert shim_abi.FLOAT32.quantize(values) is values


def test_each_resize_name_is_a_c_resize() -> None:
    """Named alike, and the default is C's zero (what an index before version 4 reads as)."""
    assert [r.name.lower() for r in shim_abi.Resize] == list(get_args(shim_abi.ResizeName))
    assert shim_abi.Resize[shim_abi.DEFAULT_RESIZE.upper()] == 0


def test_the_binding_variant_has_one_attribute_per_record_member() -> None:
    assert [f.name for f in dataclasses.fields(Variant)] == [f.member for f in shim_abi.ARTIFACT_RECORD]


def test_a_manifest_reads_back_through_the_c_core_unchanged(tmp_path: Path) -> None:
    """manifest -> bundle.index -> C parser -> ctypes -> Variant: every member arrives as the manifest says, and
    the target's threads too."""
    quantized = InputSpec(
        shape=(1, 3, 32, 32),
        layout="NHWC",
        dtype="int8",
        normalization={"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        quantization=Quantization(dtype="int8", scale=0.0173, zero_point=-3),
        output_quantization=Quantization(dtype="uint8", scale=0.25, zero_point=128),
    )
    manifest = write_fake_bundle(tmp_path, {"ladder/a.tflite": b"tflite bytes", "ladder/b.pte": b"pte bytes"})
    manifest = manifest.model_copy(
        update={
            "artifacts": [
                manifest.artifacts[0].model_copy(update={"input": quantized, "packing": "shared"}),
                manifest.artifacts[1],
            ]
        }
    )
    write_manifest(tmp_path, manifest)
    write_index(tmp_path, manifest)
    with Bundle(tmp_path) as opened:
        read_back, threads = opened.variants, opened.threads
    assert threads == manifest.target["runtime"]["threads"] == 2  # type: ignore[index]
    float32 = dataclasses.asdict(shim_abi.FLOAT32)
    for variant, artifact in zip(read_back, manifest.artifacts, strict=True):
        q_in, q_out = artifact.input.quantization, artifact.input.output_quantization
        assert variant == Variant(
            id=artifact.id,
            backend=artifact.backend,
            file=artifact.file,
            bytes=artifact.bytes,
            sha256=artifact.sha256,
            memory_bytes=memory_need(artifact),
            program_memory_bytes=artifact.memory_bytes.host.program,
            accuracy=round(artifact.accuracy.artifact, 3),
            params=artifact.params,
            entry_point=artifact.entry_point,
            input_quantization=shim_abi.TensorQuantization(**(q_in.model_dump() if q_in else float32)),
            output_quantization=shim_abi.TensorQuantization(**(q_out.model_dump() if q_out else float32)),
            input_layout=artifact.input.layout,
            shared_packing=int(artifact.packing == "shared"),
            rank=1,  # each alone on its backend: the ship rule ships it from its own memory up
        )


@pytest.mark.parametrize("threads", [0, shim_abi.MAX_THREADS + 1, 2.5, "4", True])
def test_an_index_refuses_target_threads_the_shim_would_refuse(tmp_path: Path, threads: object) -> None:
    """The ``runtime`` record carries the target's threads as the C parser takes them (1 to ``MAX_THREADS``, a
    whole number): anything else in the manifest's copy of the target is a ``BundleError`` naming the field, not an
    index the shim refuses later. Fails if the writer passes such a value through."""
    manifest = write_fake_bundle(tmp_path, {"a.tflite": b"tflite bytes"})
    odd = manifest.model_copy(update={"target": {**manifest.target, "runtime": {"threads": threads}}})
    with pytest.raises(BundleError, match="target: runtime: threads: expected 1 to 256"):
        write_index(tmp_path, odd)
