"""Stitch-aware quantization (issue 17): a variant's stitching layer, its only trained part, trained again with
the rest of the rung under the very int8 simulation its lowering calibrated, so that the stitch learns to absorb
the quantization error downstream of it. ``in_float`` is the control arm: the same training without the
simulation, which tells quantization-awareness apart from the extra training itself.

Both arms return a new ``Rung`` whose model is a copy of the original's with only the stitch's weights changed;
the original rung, its model and the calibrated graph are left as they were. ``choose`` is what a build runs
(``runtime.stitch_tuning``): the tuned stitch, kept only where the simulation scores it higher on validation.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterable

import torch
from torch import nn

from restnetc.backends import Backend
from restnetc.bundle.ladder import Rung, eager_logits
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.bundle.verification import HeldOut
from restnetc.cache import stage_key, tensors_digest
from restnetc.config.project import DistillConfig
from restnetc.frontend.finetune import stitch_loss
from restnetc.native_output import captured

STITCH = "stitch."
"""The state-dict prefix of a stitched model's stitching layer (``StitchedModel.stitch``): the weights trained."""


@dataclasses.dataclass(frozen=True)
class StitchTuning:
    """How the stitch trains again: ``epochs`` passes over the images given, Adam at ``lr`` on minibatches of
    ``batch_size``, loss ``finetune.stitch_loss`` with the rung's own fp32 logits as the teacher (``distill``),
    so the simulated rung learns to answer as its float self does, and the labels keep it honest."""

    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 32
    distill: DistillConfig = dataclasses.field(default_factory=lambda: DistillConfig(weight=0.5, temperature=1.0))
    seed: int = 0


def _fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None, low: int, high: int
) -> torch.Tensor:
    """``x`` through int8 and back: per channel along ``axis``, or per tensor when ``axis`` is None."""
    if axis is not None:
        return torch.fake_quantize_per_channel_affine(x, scale.float(), zero_point.int(), axis, low, high)
    return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero_point), low, high)


class _Frozen(nn.Module):
    """Fake quantization with the parameters a calibrated observer settled on: what the int8 graph computes."""

    def __init__(self, observer: nn.Module) -> None:
        super().__init__()
        scale, zero_point = observer.calculate_qparams()  # type: ignore[operator]
        self.register_buffer("scale", scale.float())
        self.register_buffer("zero_point", zero_point.int())
        self.low, self.high = int(observer.quant_min), int(observer.quant_max)  # type: ignore[arg-type]
        self.axis = int(observer.ch_axis) if scale.numel() > 1 else None  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero_point = self.get_buffer("scale"), self.get_buffer("zero_point")
        return _fake_quantize(x, scale, zero_point, self.axis, self.low, self.high)


class _Following(nn.Module):
    """Fake quantization of a trained weight at the range its observer sees in it now (straight-through
    gradients): the weight's int8 grid moves as the weight trains, as it will when the graph is converted."""

    def __init__(self, observer: nn.Module) -> None:
        super().__init__()
        self.observer = copy.deepcopy(observer)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        observer = self.observer
        with torch.no_grad():
            observer.reset_min_max_vals()  # type: ignore[operator]
            observer(weight.detach())
            scale, zero_point = observer.calculate_qparams()  # type: ignore[operator]
        low, high = int(observer.quant_min), int(observer.quant_max)  # type: ignore[arg-type]
        axis = int(observer.ch_axis) if scale.numel() > 1 else None  # type: ignore[arg-type]
        return _fake_quantize(weight, scale, zero_point, axis, low, high)


def simulation(observed: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A trainable copy of the calibrated graph ``observed``: each observer becomes the fake quantization it
    calibrated to, except those on the stitch's own weights, which follow the weights as they train."""
    graph = copy.deepcopy(observed)
    for node in list(graph.graph.nodes):
        if node.op == "call_module" and "activation_post_process" in str(node.target):
            observer, source = graph.get_submodule(str(node.target)), node.args[0]
            trained = source.op == "get_attr" and str(source.target).startswith(STITCH)
            setattr(graph, str(node.target), _Following(observer) if trained else _Frozen(observer))
    graph.recompile()
    return graph


def _train(forward: nn.Module, rung: Rung, images: torch.Tensor, labels: torch.Tensor, tuning: StitchTuning) -> Rung:
    """``rung`` with the stitch weights ``forward`` holds after training them on ``images`` (every other
    parameter of ``forward`` frozen)."""
    stitch = {name: p for name, p in forward.named_parameters() if name.startswith(STITCH)}
    if not stitch:
        raise ValueError(f"{rung.id}: no stitching layer to tune (only a variant has one)")
    for name, parameter in forward.named_parameters():
        parameter.requires_grad_(name in stitch)
    teacher = eager_logits(rung.model, images)
    optimizer = torch.optim.Adam(stitch.values(), lr=tuning.lr)
    generator = torch.Generator().manual_seed(tuning.seed)
    for _ in range(tuning.epochs):
        for batch in torch.randperm(len(images), generator=generator).split(tuning.batch_size):
            loss = stitch_loss(forward(images[batch]), labels[batch], teacher[batch], tuning.distill, len(batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return _with_stitch(rung, stitch.items())


def _with_stitch(rung: Rung, weights: Iterable[tuple[str, torch.Tensor]]) -> Rung:
    model = copy.deepcopy(rung.model)
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights:
            own[name].copy_(value)
    return dataclasses.replace(rung, model=model.eval())


def under_int8(
    rung: Rung, observed: torch.fx.GraphModule, images: torch.Tensor, labels: torch.Tensor, tuning: StitchTuning
) -> Rung:
    """``rung`` with its stitch trained on ``images`` under the int8 simulation of ``observed``: the rung's
    calibrated graph for one backend (``lowering.Graphs.observed``). Lower the result through the same path,
    calibrated afresh: the stitch's weights moved, and with them its input to the back part (whose range is the
    back parent's where the rung has a donor)."""
    return _train(simulation(observed), rung, images, labels, tuning)


def in_float(rung: Rung, images: torch.Tensor, labels: torch.Tensor, tuning: StitchTuning) -> Rung:
    """``rung`` with its stitch trained exactly as ``under_int8`` trains it, in float: the control arm."""
    return _train(copy.deepcopy(rung.model).eval(), rung, images, labels, tuning)


@dataclasses.dataclass(frozen=True)
class Choice:
    """A variant's stitch-aware quantization, decided on validation in one backend's int8 simulation."""

    rung: Rung
    """What to lower: the tuned rung where it scored higher, else the rung given."""
    plain: float
    """Simulated int8 top-1 % on validation of the rung given."""
    tuned: float
    """The same of the tuned rung."""
    seconds: float
    """How long training took, in the run that trained it."""
    stored: bool
    """Whether the choice came from the cache (nothing trained in this call)."""

    @property
    def kept(self) -> bool:
        return self.tuned > self.plain


def _simulated_top1(graphs: Graphs, held_out: HeldOut) -> float:
    """Top-1 % on ``held_out`` of the all-int8 graph of ``graphs``, simulated in PyTorch."""
    graph, _ = graphs.int8(())
    with torch.no_grad():
        logits = torch.cat([graph(chunk) for chunk in held_out.images.split(250)])
    return round(float((logits.argmax(1) == held_out.labels).double().mean() * 100), 3)


def choose(
    rung: Rung,
    backend: Backend,
    observations: Observations,
    images: torch.Tensor,
    labels: torch.Tensor,
    validation: HeldOut,
    tuning: StitchTuning,
) -> Choice:
    """``rung``'s stitch trained on ``images`` under ``backend``'s int8 simulation (``under_int8``, calibrated by
    ``observations``), against the rung as given, both scored on ``validation`` in that simulation. The outcome
    and the tuned stitch are stored in ``observations.cache``, so a rebuild trains nothing."""
    settings = (tuning.epochs, tuning.lr, tuning.batch_size, tuning.distill.model_dump(), tuning.seed)
    train = tensors_digest({"images": images, "labels": labels})
    inputs = (rung.quantized_digest, observations.calibration_digest, train, validation.digest, settings)
    key = stage_key("stitch-tuned", backend.name, *inputs, observations.tools)
    stored = observations.cache.load(key)
    cached = stored is not None
    if stored is None:
        with captured():
            graphs = Graphs(rung, backend, observations)  # one export and calibration of the rung given
            plain = _simulated_top1(graphs, validation)
            start = time.perf_counter()
            tuned = under_int8(rung, graphs.observed(), images, labels, tuning)
            seconds = time.perf_counter() - start
            score = _simulated_top1(Graphs(tuned, backend, observations), validation)
        weights = {name: p.detach() for name, p in tuned.model.named_parameters() if name.startswith(STITCH)}
        figures = torch.tensor([plain, score, seconds], dtype=torch.float64)
        stored = {"figures": figures, **{f"weight:{name}": value for name, value in weights.items()}}
        observations.cache.save(key, stored)
    plain, score, seconds = (float(x) for x in stored["figures"])
    weights = {name.removeprefix("weight:"): v for name, v in stored.items() if name.startswith("weight:")}
    return Choice(_with_stitch(rung, weights.items()) if score > plain else rung, plain, score, seconds, cached)
