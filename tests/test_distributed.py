"""Data-parallel ranks under torchrun: the CKA pass is shared and gives what one process gives."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from restnetc.cache import Cache
from restnetc.distributed import ALONE, LAUNCH_VARIABLES, Ranks
from tests.conftest import CliResult


def test_the_shares_of_the_ranks_are_disjoint_and_cover_every_item() -> None:
    items = list(range(11))
    shares = [Ranks(rank, 3).share(items) for rank in range(3)]
    assert sorted(item for share in shares for item in share) == items and all(len(share) in (3, 4) for share in shares)
    assert ALONE.share(items) == items and ALONE.main and not Ranks(1, 3).main


def test_a_read_only_cache_reads_entries_but_never_writes_one(tmp_path: Path) -> None:
    Cache(tmp_path).save("stored", {"x": torch.ones(2)})
    reader = Cache(tmp_path, writable=False)
    loaded = reader.load("stored")
    assert loaded is not None and torch.equal(loaded["x"], torch.ones(2))
    reader.save("other", {"x": torch.zeros(2)})
    reader.save_bytes("other", b"bytes")
    reader.save_json("other", {"a": 1})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["stored.pt"]


def _rank(rank: int, size: int, out: str) -> None:
    """One rank of a gloo group whose values differ by rank; saves what the ``Ranks`` calls gave it."""
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=size)
    ranks = Ranks(rank, size)
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(float(rank + 1))
    ranks.weights_from_main(model)
    counted = torch.tensor([float(rank + 1)])
    ranks.sum(counted)
    value = ranks.from_main(f"rank {rank}")
    torch.save({"weight": model.weight.detach(), "sum": counted, "value": value}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_every_rank_takes_rank_0_s_weights_and_values_and_the_sum_of_all(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_rank, args=(2, str(tmp_path)), nprocs=2)
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert torch.all(got["weight"] == 1.0) and got["sum"].item() == 3.0 and got["value"] == "rank 0", rank


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT unset: launch restnetc with torchrun"),
        ({"WORLD_SIZE": "two"}, "environment variable WORLD_SIZE: expected a whole number set by torchrun, got 'two'"),
        (
            {"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"},
            "environment variable RANK: expected 0 to 1 (WORLD_SIZE=2), got 2",
        ),
    ],
)
def test_a_launch_environment_that_is_not_torchrun_s_is_a_one_line_error(
    environment: dict[str, str],
    message: str,
    tiny_files: tuple[Path, Path],
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    project, target = tiny_files
    result = cli("search", "--target", str(target), "--project", str(project))
    assert result.code == 1 and message in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def test_two_torchrun_ranks_give_the_one_process_cka_matrix_and_stitch_points(
    tiny_files: tuple[Path, Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project, target = tiny_files
    job = ["search", "--target", str(target), "--project", str(project)]
    one, two = tmp_path / "one", tmp_path / "two"
    alone = cli(*job, "--out", str(one), "--cache-dir", str(tmp_path / "cache-one"))
    assert alone.code == 0, alone.stderr
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "restnetc"]
    ranks = subprocess.run(
        [*launch, *job, "--out", str(two), "--cache-dir", str(tmp_path / "cache-two")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    assert "over 64 calibration images, shared by 2 ranks" in ranks.stderr
    assert np.abs(np.load(one / "cka.npy") - np.load(two / "cka.npy")).max() <= 1e-9
    documents = [json.loads((out / "variants.json").read_text()) for out in (one, two)]
    assert documents[0]["calibration"] == documents[1]["calibration"], "each calibration image counted once"
    points = [[(v["front"]["block"], v["back"]["block"]) for v in d["variants"]] for d in documents]
    assert points[0] == points[1] and len(points[0]) == 2
