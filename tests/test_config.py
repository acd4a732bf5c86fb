"""Config files: units, validation, and one-line errors that name the file and the field."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import yaml
from pydantic import ValidationError
from timm.models import build_model_with_cfg

from restnetc.config import Metric, ProjectConfig, TargetConfig, load_project, load_target
from restnetc.config.loader import demo_project_path
from restnetc.config.project import TIMM_WEIGHT_KWARGS, TimmModel
from restnetc.config.units import parse_bytes, parse_count, parse_milliseconds
from restnetc.errors import ConfigError
from tests.conftest import REPO, TINY_PROJECT, TINY_TARGET, CliResult, laid_out


@pytest.mark.parametrize(
    ("text", "value"), [("3.6M", 3.6e6), ("150K", 150e3), ("2G", 2e9), (2500000, 2.5e6), ("1.5e6", 1.5e6)]
)
def test_counts(text: object, value: float) -> None:
    assert parse_count(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "value"), [("24MB", 24e6), ("1GiB", 2**30), (24, 24e6), ("512 KiB", 512 * 1024)])
def test_bytes(text: object, value: float) -> None:
    assert parse_bytes(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "value"), [("12ms", 12.0), ("0.5s", 500.0), (7, 7.0), ("250us", 0.25)])
def test_milliseconds(text: object, value: float) -> None:
    assert parse_milliseconds(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["3.6Q", "", "M", "-3M", True, [1]])
def test_bad_counts_are_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="expected a"):
        parse_count(text)


@pytest.mark.parametrize("path", sorted((REPO / "targets").glob("*.yaml")))
def test_shipped_targets_are_valid(path: Path) -> None:
    target = load_target(path)
    assert target.budgets and target.device.memory_bytes >= 1e9


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (None, {"executorch": "ladder", "litert": "ladder"}),
        ("per-rung", {"executorch": "per-rung", "litert": "per-rung"}),
        ("{litert: per-rung}", {"executorch": "ladder", "litert": "per-rung"}),
    ],
)
def test_every_backend_is_laid_out_as_a_ladder_unless_the_target_says_otherwise(
    layout: str | None, expected: dict[str, str], tmp_path: Path
) -> None:
    """Issue 16: one program per backend is the default, for a backend a per-backend layout leaves out too; the
    demo target takes the default."""
    text = TINY_TARGET.replace("bundle: {layout: per-rung}\n", "") if layout is None else laid_out(TINY_TARGET, layout)
    (tmp_path / "t.yaml").write_text(text)
    target = load_target(tmp_path / "t.yaml")
    assert {b.value: target.bundle.layout_of(b).value for b in target.runtime.backends} == expected
    demo = load_target(REPO / "targets" / "cortex-a53.yaml")
    assert {demo.bundle.layout_of(b).value for b in demo.runtime.backends} == {"ladder"}


@pytest.mark.parametrize(
    ("layout", "warned"), [("ladder", True), ("per-rung", False), ("{executorch: per-rung}", False)]
)
def test_a_memory_budget_on_a_ladder_program_is_flagged(layout: str, warned: bool, tmp_path: Path) -> None:
    """The build warns when memory budgets choose rungs that ship in one program (the cost backend's layout,
    ExecuTorch here, decides); fails if the flag ignores the layout or the backend the budgets are for."""
    text = _edit(laid_out(TINY_TARGET, layout), "  - params: 4.2M\n", "  - memory_mb: 12MB\n")
    (tmp_path / "t.yaml").write_text(text)
    assert load_target(tmp_path / "t.yaml").memory_budgets_on_a_ladder is warned


def test_demo_project_is_used_when_none_is_given(tmp_path: Path) -> None:
    project, path = load_project(None, cwd=tmp_path)
    assert path == demo_project_path()
    assert project.models["a"].source == "efficientnet-lite"


def test_project_in_working_directory_wins_over_demo(tmp_path: Path) -> None:
    (tmp_path / "restnetc.yaml").write_text(TINY_PROJECT)
    project, path = load_project(None, cwd=tmp_path)
    assert project.name == "tiny-lite" and path == tmp_path / "restnetc.yaml"


def test_configs_round_trip_through_json(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TINY_TARGET)
    target = load_target(tmp_path / "t.yaml")
    assert TargetConfig.model_validate_json(target.model_dump_json(by_alias=True)) == target
    assert target.budgets[0].metric is Metric.PARAMS and target.budgets[0].limit == 3.6e6
    project, _ = load_project(demo_project_path())
    assert ProjectConfig.model_validate_json(project.model_dump_json()) == project


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


MALFORMED_TARGETS = {
    "wrong type": (_edit(TINY_TARGET, "cores: 4", "cores: four"), "device.cores: Input should be a valid integer"),
    "unknown key": (_edit(TINY_TARGET, "runtime: {", "runtime: {treads: 4, "), "runtime.treads: unknown key"),
    "bad unit": (_edit(TINY_TARGET, "params: 3.6M", "params: 3.6Q"), "budgets[0]: expected a count like 3.6M"),
    "unknown metric": (_edit(TINY_TARGET, "params: 3.6M", "watts: 5"), "unknown budget metric 'watts'"),
    "negative budget": (_edit(TINY_TARGET, "params: 3.6M", "params: -2M"), "expected a positive quantity"),
    "bad memory unit": (_edit(TINY_TARGET, "memory: 1GB", "memory: 1 parsec"), "device.memory: expected a memory size"),
    "unknown backend": (
        _edit(TINY_TARGET, "[executorch, litert]", "[tensorrt]"),
        "runtime.backends[0]: Input should be",
    ),
    "missing section": (
        _edit(TINY_TARGET, "device: {arch: aarch64, cpu: cortex-a53, cores: 4, memory: 1GB}\n", ""),
        "device: required field is missing",
    ),
    "future schema": (_edit(TINY_TARGET, "schema_version: 1", "schema_version: 2"), "schema_version: this restnetc"),
    "not yaml": ("budgets: [params: 3M\n", "invalid YAML"),
    "duplicate budget": (
        _edit(TINY_TARGET, "  - params: 4.2M\n", "  - params: 4.2M\n  - params: 4.2M\n"),
        "params <= 4.2M is listed twice",
    ),
    "device costs without a table": (TINY_TARGET + "costs: {source: device}\n", "costs: table: give a cost table"),
    "cost backend not built": (
        _edit(TINY_TARGET, "[executorch, litert]", "[executorch]") + "costs: {backend: litert}\n",
        "costs.backend: litert is not among runtime.backends",
    ),
    "layout of a backend not built": (
        laid_out(_edit(TINY_TARGET, "[executorch, litert]", "[executorch]"), "{litert: ladder}"),
        "bundle.layout: litert is not among runtime.backends",
    ),
    "unknown layout": (laid_out(TINY_TARGET, "{litert: stacked}"), "bundle.layout"),
    "uint8 input of a float build": (
        _edit(TINY_TARGET, "runtime: {", "runtime: {quantization: fp32, litert_input: uint8, "),
        "runtime: litert_input: uint8 needs quantization int8",
    ),
    "stitch tuning of a float build": (
        _edit(TINY_TARGET, "runtime: {", "runtime: {quantization: fp32, stitch_tuning: {}, "),
        "runtime: stitch_tuning: needs quantization int8",
    ),
    "stitch tuning on too few images": (
        _edit(TINY_TARGET, "runtime: {", "runtime: {stitch_tuning: {train_images: 8}, "),
        "runtime.stitch_tuning.train_images",
    ),
}

MALFORMED_PROJECTS = {
    "missing checkpoint": (
        _edit(
            TINY_PROJECT,
            "{source: efficientnet-lite, name: efficientnet-lite0}",
            "{source: timm, arch: resnet18, checkpoint: nowhere.pth}",
        ),
        "models.b.checkpoint: file not found: nowhere.pth",
    ),
    "unknown model source": (
        _edit(TINY_PROJECT, "source: efficientnet-lite, name: efficientnet-lite0", "source: hub, name: x"),
        "models.b: Input tag 'hub' found",
    ),
    "short normalisation": (
        _edit(TINY_PROJECT, "mean: [0.498, 0.498, 0.498]", "mean: [0.5]"),
        "data.normalization.mean",
    ),
    "digest without checkpoint": (
        _edit(
            TINY_PROJECT,
            "{source: efficientnet-lite, name: efficientnet-lite0}",
            "{source: timm, arch: zoo_vgg11, sha256: " + "a" * 64 + "}",
        ),
        "models.b: sha256: given without a checkpoint to check",
    ),
    "timm weights in kwargs": (
        _edit(
            TINY_PROJECT,
            "{source: efficientnet-lite, name: efficientnet-lite0}",
            "{source: timm, arch: resnet18, kwargs: {checkpoint_path: /tmp/other.pth}}",
        ),
        "models.b.kwargs.checkpoint_path: not allowed: it lets timm load weights other than the checkpoint",
    ),
    "unknown lite model": (
        _edit(TINY_PROJECT, "name: efficientnet-lite0", "name: efficientnet-lite9"),
        "models.b.name: Input should be",
    ),
}


MALFORMED = [("target", case, *MALFORMED_TARGETS[case]) for case in sorted(MALFORMED_TARGETS)] + [
    ("project", case, *MALFORMED_PROJECTS[case]) for case in sorted(MALFORMED_PROJECTS)
]


@pytest.mark.parametrize(("which", "case", "text", "expected"), MALFORMED, ids=[f"{w}-{c}" for w, c, *_ in MALFORMED])
def test_malformed_file_gives_one_line_error(
    which: str, case: str, text: str, expected: str, tiny_files: tuple[Path, Path], cli: Callable[..., CliResult]
) -> None:
    project, target = tiny_files
    broken = target if which == "target" else project
    broken.write_text(text)
    result = cli("search", "--target", str(target), "--project", str(project))
    assert result.code == 1
    assert result.stderr.startswith(f"error: {broken}: ") and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_uint8_input_the_normalisation_cannot_be_is_refused_before_any_work(
    tiny_files: tuple[Path, Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """``runtime.litert_input: uint8`` with a per-channel normalisation: one line naming the target file and the
    project's field, exit 1, no bundle. Fails if the check waits for the search (a traceback or a half-built
    run), or if the build lets a normalisation through that uint8 pixels cannot express."""
    project, target = tiny_files
    project.write_text(_edit(TINY_PROJECT, "mean: [0.498, 0.498, 0.498]", "mean: [0.485, 0.456, 0.406]"))
    target.write_text(_edit(TINY_TARGET, "runtime: {", "runtime: {litert_input: uint8, calibration_images: 64, "))
    result = cli("build", "--target", str(target), "--project", str(project), "--out", str(tmp_path / "out"))
    (error,) = [line for line in result.stderr.splitlines() if not line.startswith("> ")]
    assert result.code == 1 and error.startswith(f"error: {target}: runtime.litert_input: uint8 does not fit"), error
    assert "data.normalization: a uint8 input needs one mean and one std for every channel" in error
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_missing_target_file(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("search", "--target", str(tmp_path / "absent.yaml"))
    assert result.code == 1 and result.stderr.strip() == f"error: {tmp_path / 'absent.yaml'}: file not found"


def test_config_error_type() -> None:
    with pytest.raises(ConfigError):
        load_target(REPO / "README.md")


@pytest.mark.parametrize("key", TIMM_WEIGHT_KWARGS)
def test_timm_kwargs_that_load_weights_are_refused(key: str, tmp_path: Path) -> None:
    """Weights come only from the sha256-pinned checkpoint: no timm argument may name or fetch others."""
    model = f"{{source: timm, arch: zoo_resnet18, kwargs: {{num_classes: 10, {key}: x.pth}}}}"
    project = tmp_path / "p.yaml"
    project.write_text(_edit(TINY_PROJECT, "{source: efficientnet-lite, name: efficientnet-lite2}", model))
    with pytest.raises(ConfigError) as error:
        load_project(project)
    assert str(error.value) == (
        f"{project}: models.a.kwargs.{key}: not allowed: it lets timm load weights other than the checkpoint "
        "restnetc checks against its sha256; give the weights as checkpoint (with sha256) instead"
    )


def test_timm_kwargs_that_shape_the_model_are_accepted(tmp_path: Path) -> None:
    model = "{source: timm, arch: zoo_resnet18, kwargs: {num_classes: 10, drop_rate: 0.1, global_pool: avg}}"
    project = tmp_path / "p.yaml"
    project.write_text(_edit(TINY_PROJECT, "{source: efficientnet-lite, name: efficientnet-lite2}", model))
    model_spec = load_project(project)[0].models["a"]
    assert isinstance(model_spec, TimmModel)
    assert model_spec.kwargs == {"num_classes": 10, "drop_rate": 0.1, "global_pool": "avg"}


def test_every_weight_argument_of_timm_is_refused() -> None:
    """timm.create_model's own arguments other than layer flags, and build_model_with_cfg's pretrained ones."""
    layer_flags = {"model_name", "scriptable", "exportable", "no_jit", "kwargs"}
    factory = set(inspect.signature(timm.create_model).parameters) - layer_flags
    builder = {name for name in inspect.signature(build_model_with_cfg).parameters if name.startswith("pretrained")}
    assert factory | builder <= set(TIMM_WEIGHT_KWARGS), sorted(factory | builder - set(TIMM_WEIGHT_KWARGS))


@pytest.mark.parametrize("name", [".", "..", "a/b", "x;rm"])
def test_target_names_are_plain_file_names(name: str) -> None:
    """A target's name names the bundle directory and the device's remote directory (bench plan)."""
    with pytest.raises(ValidationError, match="not a plain file name"):
        TargetConfig.model_validate({**yaml.safe_load(TINY_TARGET), "name": name})


def test_the_measured_slack_applies_to_measured_metrics_only_and_is_bounded() -> None:
    from restnetc.config.target import LadderPolicy

    metrics = [Metric.PARAMS, Metric.MACS, Metric.FLOPS, Metric.LATENCY_MS, Metric.MEMORY_MB]
    assert LadderPolicy().slack(metrics) == {"latency_ms": 0.05, "memory_mb": 0.05}
    assert LadderPolicy(measured_slack=0).slack([Metric.LATENCY_MS]) == {"latency_ms": 0.0}
    assert LadderPolicy().slack([Metric.PARAMS]) == {}
    for bad in (-0.01, 0.5):
        with pytest.raises(ValidationError, match="measured_slack"):
            LadderPolicy(measured_slack=bad)


def test_a_built_in_target_loads_by_name_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--target cortex-a53`` finds the file the package ships (the same file as the checkout's targets/); a
    file of that name in the working directory wins; an unknown name lists the built-in ones."""
    from restnetc.config.loader import builtin_targets

    monkeypatch.chdir(tmp_path)
    assert sorted(builtin_targets()) == sorted(path.stem for path in (REPO / "targets").glob("*.yaml"))
    assert load_target(Path("cortex-a53")) == load_target(REPO / "targets" / "cortex-a53.yaml")
    (tmp_path / "cortex-a53").write_text((REPO / "targets" / "cortex-a72.yaml").read_text())
    assert load_target(Path("cortex-a53")).name == load_target(REPO / "targets" / "cortex-a72.yaml").name
    with pytest.raises(
        ConfigError, match=r"^cortex-a99: file not found, and not a built-in target \(built-in: cortex-a53, "
    ):
        load_target(Path("cortex-a99"))
