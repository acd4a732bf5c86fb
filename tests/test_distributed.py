"""Data-parallel ranks under torchrun: the CKA pass and stitch fine-tuning are shared and give what one process
gives."""

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
from restnetc.config.project import FinetuneConfig
from restnetc.distributed import ALONE, LAUNCH_VARIABLES, Ranks
from restnetc.frontend.finetune import finetune_stitch
from restnetc.frontend.stitch import StitchedModel, build_stitched
from restnetc.models import decompose
from tests import zoo
from tests.conftest import CliResult

DDP_TOLERANCE = (1e-4, 1e-6)
"""Largest and median difference between a stitch weight trained by two ranks and by one process. The ranks'
gradients are one process's summed in another order, so only float rounding differs; Adam divides each update by
the gradient's running magnitude, which turns that rounding into up to about 3e-5 (measured) where a gradient is
near zero, while training moves the weights by about 0.1. Unsynchronised ranks differ by far more."""


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


def _training_problem() -> tuple[StitchedModel, torch.Tensor, torch.Tensor, torch.Tensor, FinetuneConfig]:
    """A stitch, cached front features of 25 images, labels, teacher logits and settings: 25 images in batches of 8
    end each epoch on a batch of one, so one of two ranks holds none of it."""
    generator = torch.Generator().manual_seed(0)
    model = build_stitched(decompose(zoo.make("resnet")), 1, decompose(zoo.make("vgg", seed=1)), 1, zoo.SIZE)
    with torch.no_grad():
        features = model.front(torch.randn(25, 3, zoo.SIZE, zoo.SIZE, generator=generator))
    labels = torch.randint(0, zoo.CLASSES, (25,), generator=generator)
    teacher = torch.randn(25, zoo.CLASSES, generator=generator)
    config = FinetuneConfig(epochs=3, batch_size=8, lr=1e-2, distill={"weight": 0.5, "temperature": 2.0})
    return model, features, labels, teacher, config


def _train_rank(rank: int, size: int, out: str) -> None:
    """One rank fine-tuning its share of the training problem; rank 1 starts from other weights (DDP must take
    rank 0's)."""
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=size)
    torch.set_num_threads(1)
    model, features, labels, teacher, config = _training_problem()
    assert model.stitch is not None
    if rank > 0:
        with torch.no_grad():
            for parameter in model.stitch.parameters():
                parameter.add_(1.0)
    ranks = Ranks(rank, size)
    part = ranks.part
    report = finetune_stitch(model, features[part], labels[part], teacher[part], config, 0, ranks=ranks)
    torch.save({"stitch": model.stitch.state_dict(), "loss": report.final_loss}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_fine_tune_a_stitch_as_one_process_does(tmp_path: Path) -> None:
    model, features, labels, teacher, config = _training_problem()
    assert model.stitch is not None
    initial = {k: v.clone() for k, v in model.stitch.state_dict().items()}
    report = finetune_stitch(model, features, labels, teacher, config, 0)
    alone = model.stitch.state_dict()
    torch.multiprocessing.spawn(_train_rank, args=(2, str(tmp_path)), nprocs=2)
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        for name, value in alone.items():
            assert not torch.allclose(value, initial[name]), f"{name} did not train"
            difference = (got["stitch"][name] - value).abs()
            largest, median = difference.max().item(), difference.median().item()
            within = largest <= DDP_TOLERANCE[0] and median <= DDP_TOLERANCE[1]
            assert within, f"rank {rank}: {name} differs by up to {largest:.2e}, median {median:.2e}"
        assert got["loss"] == pytest.approx(report.final_loss, abs=DDP_TOLERANCE[0]), rank


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


def test_two_torchrun_ranks_give_the_one_process_cka_matrix_stitch_points_and_stitches(
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
    assert ranks.stderr.count("fine-tuned by 2 ranks") >= 2
    assert np.abs(np.load(one / "cka.npy") - np.load(two / "cka.npy")).max() <= 1e-9
    documents = [json.loads((out / "variants.json").read_text()) for out in (one, two)]
    assert documents[0]["calibration"] == documents[1]["calibration"], "each calibration image counted once"
    points = [[(v["front"]["block"], v["back"]["block"]) for v in d["variants"]] for d in documents]
    assert points[0] == points[1] and len(points[0]) == 2
    # The stitches were fine-tuned by both ranks (DDP) and score what one process's score on the same images.
    steps = [[v["finetune_steps"] for v in d["variants"]] for d in documents]
    assert steps[0] == steps[1] and all(steps[0])
    scores = [[v["accuracy"] for v in d["variants"]] for d in documents]
    assert scores[0] == scores[1]
