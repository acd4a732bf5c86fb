"""``manifest.json`` refuses any artifact file that is not a plain relative path inside the bundle, when written
and when read, naming the manifest, the artifact and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from restnetc.bundle.manifest import BundleError, read_manifest, write_manifest
from tests.conftest import CliResult
from tests.fakes import write_fake_bundle

REFUSED = {
    "litert/$(touch PWNED).tflite": "characters outside",
    "litert/a;touch PWNED.tflite": "characters outside",
    "litert/a b.tflite": "characters outside",
    "litert/`id`.tflite": "characters outside",
    "litert/a'b.tflite": "characters outside",
    "litert/a\nb.tflite": "characters outside",
    "litert\\a.tflite": "characters outside",
    "litert/é.tflite": "characters outside",
    "/etc/passwd": "absolute",
    "../outside.tflite": "'..' component",
    "litert/../../outside.tflite": "'..' component",
    "./litert/a.tflite": "'.' or",
    "litert//a.tflite": "an empty",
    "litert/a.tflite/": "an empty",
    "": "an empty",
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write_fake_bundle(tmp_path, {"litert/a0.tflite": b"first", "litert/a1.tflite": b"second"})
    return tmp_path


@pytest.mark.parametrize("file", list(REFUSED))
def test_reading_refuses_a_file_outside_the_plain_path_set(bundle: Path, file: str) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"][1]["file"] = file
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as error:
        read_manifest(bundle)
    message = str(error.value)
    assert message.startswith(f"{bundle / 'manifest.json'}: artifact 'a1' (artifacts[1]), field file: {file!r} ")
    assert "is not a relative path inside the bundle" in message and REFUSED[file] in message


@pytest.mark.parametrize("file", list(REFUSED))
def test_writing_refuses_a_file_outside_the_plain_path_set(bundle: Path, file: str) -> None:
    """``model_copy`` skips validation: write_manifest must still refuse, and leave the old manifest as it was."""
    before = (bundle / "manifest.json").read_bytes()
    manifest = read_manifest(bundle)
    bad = manifest.artifacts[0].model_copy(update={"file": file})
    with pytest.raises(BundleError, match=r"manifest.json: artifact 'a0' \(artifacts\[0\]\), field file: "):
        write_manifest(bundle, manifest.model_copy(update={"artifacts": [bad, *manifest.artifacts[1:]]}))
    assert (bundle / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in bundle.iterdir()) == ["litert", "manifest.json"], "no temporary file left"


@pytest.mark.parametrize("file", ["litert/a.tflite", "executorch/parent-x_1.2.pte", ".cache/x", "a"])
def test_plain_relative_paths_are_accepted(bundle: Path, file: str) -> None:
    manifest = read_manifest(bundle)
    moved = manifest.artifacts[0].model_copy(update={"file": file})
    write_manifest(bundle, manifest.model_copy(update={"artifacts": [moved]}))
    assert read_manifest(bundle).artifacts[0].file == file


@pytest.mark.parametrize("name", ["a/b", "..", "x$(touch PWNED)", ""])
def test_the_target_name_must_be_a_plain_file_name(bundle: Path, name: str) -> None:
    """It names the remote directory and script of ``bench plan``."""
    data = json.loads((bundle / "manifest.json").read_text())
    data["target"]["name"] = name
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"manifest.json: target: name: .* is not a plain file name"):
        read_manifest(bundle)


def test_inspect_reports_a_hostile_file_name_on_one_line(bundle: Path, cli: Callable[..., CliResult]) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"][0]["file"] = "litert/$(touch PWNED).tflite"
    (bundle / "manifest.json").write_text(json.dumps(data))
    result = cli("inspect", str(bundle))
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "manifest.json: artifact 'a0' (artifacts[0]), field file: 'litert/$(touch PWNED).tflite'" in result.stderr


def test_artifacts_sharing_a_file_must_agree_on_it_and_name_distinct_entry_points(tmp_path: Path) -> None:
    """A ladder program is one file named by several artifacts: they must describe the same bytes, and each
    must run its own entry point (else the shim would verify or run one rung's bytes for another)."""
    manifest = write_fake_bundle(tmp_path, {"litert/ladder.tflite": b"program"})
    first = manifest.artifacts[0]
    second = first.model_copy(update={"id": "second", "entry_point": "second"})
    write_manifest(tmp_path, manifest.model_copy(update={"artifacts": [first, second]}))
    assert [a.entry_point for a in read_manifest(tmp_path).artifacts] == [first.entry_point, "second"]
    for bad, why in (
        ({"sha256": "0" * 64}, "share litert/ladder.tflite but disagree on its backend, bytes, sha256 or program"),
        ({"bytes": first.bytes + 1}, "share litert/ladder.tflite but disagree"),
        ({"backend": "executorch"}, "share litert/ladder.tflite but disagree"),
        (
            {
                "memory_bytes": first.memory_bytes.model_copy(
                    update={
                        "host": first.memory_bytes.host.model_copy(
                            update={"program": (first.memory_bytes.host.program or 0) + 1}
                        )
                    }
                )
            },
            "share litert/ladder.tflite but disagree",
        ),
        ({"entry_point": first.entry_point}, f"names entry point '{first.entry_point}' of litert/ladder.tflite a"),
    ):
        clash = second.model_copy(update=bad)
        with pytest.raises(BundleError, match=why):
            write_manifest(tmp_path, manifest.model_copy(update={"artifacts": [first, clash]}))


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ({"validation_correct": "1" * 56 + "0" * 7}, "validation_correct: 63 flags for 64 validation images"),
        ({"validation_correct": "1" * 57 + "0" * 7}, "validation: 87.5% but validation_correct says 89.062%"),
        ({"validation_correct": "1" * 56 + "0" * 7 + "x"}, "String should match pattern"),
        ({"validation_correct": None}, "Input should be a valid string"),
    ],
)
def test_validation_flags_must_make_the_validation_figure(bundle: Path, edit: dict[str, object], why: str) -> None:
    """The per-image flags the ship rule compares are the validation figure's own: one per image, same share."""
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"][0]["accuracy"].update(edit)
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"artifact 'a0' \(artifacts\[0\]\), field accuracy") as error:
        read_manifest(bundle)
    assert why in str(error.value)


def test_every_artifact_is_judged_on_the_validation_split(bundle: Path) -> None:
    """Paired comparisons need every artifact's flags on the same images: a count other than the split's is refused."""
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"][1]["accuracy"].update(validation_images=4, validation_correct="1110", validation=75.0)
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"'a1' \(litert\) has 4 validation images, the validation split 64"):
        read_manifest(bundle)


def test_an_older_manifest_is_refused_by_its_version(bundle: Path) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    data["schema_version"] = 3
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"manifest.json: schema_version: Input should be 6 or 7"):
        read_manifest(bundle)


def test_the_all_int8_figures_come_exactly_with_float_units(bundle: Path) -> None:
    """An artifact keeping float units says what the all-int8 artifact it replaced scored; an all-int8 one does
    not (its own figures are that). Either one without the other is refused, in a shipped artifact and in one the
    ladder dropped."""
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"][1]["float_modules"] = ["head"]
    data["artifacts"][1]["accuracy"]["all_int8"] = {"validation": 80.0, "test": 79.5}
    (bundle / "manifest.json").write_text(json.dumps(data))
    assert read_manifest(bundle).artifacts[1].accuracy.all_int8 is not None
    kept = data["artifacts"][1]
    fields = ("id", "role", "backend", "params", "macs", "float_modules", "accuracy")
    dropped = {name: kept[name] for name in fields} | {"latency_ms": 1.0, "memory_bytes": 1, "id": "d1"}
    data["dropped"] = [dropped | {"pareto": {"front": False, "dominated_by": "a0", "reason": "test"}}]
    (bundle / "manifest.json").write_text(json.dumps(data))
    assert read_manifest(bundle).dropped[0].accuracy.all_int8 is not None
    for entries, k, change in (
        ("artifacts", 1, {"float_modules": []}),
        ("artifacts", 0, {"accuracy": kept["accuracy"]}),
        ("dropped", 0, {"float_modules": []}),
    ):
        broken = json.loads(json.dumps(data))
        broken[entries][k].update(change)
        (bundle / "manifest.json").write_text(json.dumps(broken))
        entry = broken[entries][k]
        named = rf"{'dropped ' if entries == 'dropped' else ''}artifact '{entry['id']}' \({entry['backend']}\)"
        with pytest.raises(BundleError, match=rf"{named}: accuracy.all_int8 is expected exactly when float_modules"):
            read_manifest(bundle)
