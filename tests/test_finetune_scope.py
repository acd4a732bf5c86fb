"""``finetune.scope`` through ``restnetc search``: wider scopes train more, report it, and cache it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult


@pytest.mark.parametrize("scope", ["stitch+front", "all"])
def test_search_trains_the_scope_and_counts_its_parameters(
    scope: str, built: tuple[Path, Path, Path, Path], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    _, project, target, cache = built
    # the paper's rule with no second candidate: the same stitch point whatever the scope trains
    cka_only = project.read_text() + "search: {selector: cka, shortlist: 1}\n"
    (tmp_path / "narrow.yaml").write_text(cka_only)
    narrow_args = ["--target", str(target), "--project", str(tmp_path / "narrow.yaml"), "--cache-dir", str(cache)]
    assert cli("search", *narrow_args, "--out", str(tmp_path / "narrow")).code == 0
    stitch_only = json.loads((tmp_path / "narrow" / "variants.json").read_text())["variants"]
    text = cka_only.replace("finetune: {", f"finetune: {{scope: {scope}, ")
    assert text != cka_only
    (tmp_path / "p.yaml").write_text(text)
    args = ["--target", str(target), "--project", str(tmp_path / "p.yaml"), "--cache-dir", str(cache)]
    for _ in range(2):  # the second run comes from the cache and must agree
        result = cli("search", *args, "--out", str(tmp_path / "out"))
        assert result.code == 0, result.stderr
        variants = json.loads((tmp_path / "out" / "variants.json").read_text())["variants"]
        assert len(variants) == len(stitch_only)
        for wide, narrow in zip(variants, stitch_only, strict=True):
            assert wide["front"] == narrow["front"] and wide["back"] == narrow["back"]
            assert wide["trainable_params"] > 10 * narrow["trainable_params"]
            assert wide["accuracy"]["before_finetune"] == narrow["accuracy"]["before_finetune"]
            assert 0 <= wide["accuracy"]["after_finetune"] <= 100
    assert json.loads((tmp_path / "out" / "variants.json").read_text())["finetune"]["scope"] == scope
