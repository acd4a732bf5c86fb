"""Accuracy policies: what a build does with an artifact whose validation top-1 is more than the target's
tolerance below eager fp32. Each policy is registered under the name a target file uses
(``accuracy.policy``); the registry rejects duplicates, and a test checks that it holds exactly the names the
target schema accepts.

A policy sees only artifacts beyond tolerance (``OverTolerance``) and decides on validation figures alone.
It returns the final ``Verified``, or ``TryFloat``: lower a candidate with these units kept in float, verify
it, and hand it to the policy's ``settle``, which picks between the two.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from restnetc.bundle.screening import SCREENING_IMAGES, Screening
from restnetc.bundle.verification import BuildError, Verified
from restnetc.progress import Note
from restnetc.registry import Registry

MIN_FLOAT_GAIN_POINTS = 0.5
"""Float islands cost bytes (a float head is ~1 MB on EfficientNet-Lite); keep them only for a real gain."""


@dataclasses.dataclass(frozen=True)
class TryFloat:
    """Lower a candidate with these quantization units kept in float, then ``settle`` between it and all-int8."""

    units: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class OverTolerance:
    """An all-int8 artifact that lost more than ``tolerance`` top-1 points on validation against eager fp32.

    ``screen(gain)`` scores candidate float islands in simulation, needing ``gain`` points to be worth it;
    ``log`` collects notes for the build's output.
    """

    label: str
    quantization: str
    eager_accuracy: float
    first: Verified
    tolerance: float
    screen: Callable[[float], Screening]
    log: list[Note]

    @property
    def drop(self) -> float:
        """Validation top-1 points lost against eager fp32."""
        return self.eager_accuracy - self.first.evaluation.validation.accuracy

    @property
    def headline(self) -> str:
        top1 = self.first.evaluation.validation.accuracy
        return (
            f"{self.label} {self.quantization}: validation top-1 {top1:.2f}% is {self.drop:.2f} points below eager "
            f"fp32 {self.eager_accuracy:.2f}% (tolerance {self.tolerance})"
        )


class AccuracyRule(ABC):
    """One way to treat an artifact beyond tolerance. Implementations are stateless."""

    @abstractmethod
    def decide(self, case: OverTolerance) -> Verified | TryFloat:
        """The final artifact, or the float units worth lowering as a candidate. May raise ``BuildError``."""

    def settle(self, case: OverTolerance, candidate: Verified) -> Verified:
        """The artifact to keep once the ``TryFloat`` candidate is verified (only for policies that try one)."""
        raise NotImplementedError(f"{type(self).__name__} never asks for a float candidate")


_POLICIES = Registry[AccuracyRule]("accuracy policy")
get_policy, list_policies = _POLICIES.get, _POLICIES.names


def register_policy(name: str) -> Callable[[type[AccuracyRule]], type[AccuracyRule]]:
    """Class decorator: register an instance of the class under ``name``; a name is registered once."""

    def register(cls: type[AccuracyRule]) -> type[AccuracyRule]:
        _POLICIES.register(name, cls())
        return cls

    return register


@register_policy("fail")
class Fail(AccuracyRule):
    """Stop the build."""

    def decide(self, case: OverTolerance) -> Verified | TryFloat:
        raise BuildError(f"{case.headline}; the target's accuracy policy is 'fail'")


@register_policy("warn")
class Warn(AccuracyRule):
    """Keep the artifact; the warning stays in the build output and the manifest's ``policy``."""

    def decide(self, case: OverTolerance) -> Verified | TryFloat:
        return dataclasses.replace(case.first, policy=f"warn: kept with a {case.drop:.2f}-point drop")


@register_policy("keep-float")
class KeepFloat(AccuracyRule):
    """Keep the units that screening finds worth it in float, if the verified candidate gains enough."""

    def decide(self, case: OverTolerance) -> Verified | TryFloat:
        screening = case.screen(case.drop - case.tolerance)
        tried = ", ".join(f"{'+'.join(units) or 'all int8'} {top1:.2f}%" for units, top1 in screening.tried.items())
        on = f"simulated top-1 on the first {SCREENING_IMAGES} validation images"
        case.log.append(Note(logging.INFO, f"{case.label}: {on}, with float units: {tried}"))
        return TryFloat(screening.float_units) if screening.float_units else self._kept(case, case.first)

    def settle(self, case: OverTolerance, candidate: Verified) -> Verified:
        top1 = candidate.evaluation.validation.accuracy
        units = ", ".join(candidate.float_modules)
        case.log.append(Note(logging.INFO, f"{case.label} keep-float {units}: validation top-1 {top1:.2f}%"))
        better = top1 >= case.first.evaluation.validation.accuracy + MIN_FLOAT_GAIN_POINTS
        return self._kept(case, candidate if better else case.first)

    @staticmethod
    def _kept(case: OverTolerance, best: Verified) -> Verified:
        """``best`` with the policy's note; warns loudly if it is still beyond tolerance."""
        top1 = best.evaluation.validation.accuracy
        recovered = case.eager_accuracy - top1 <= case.tolerance
        kept = ", ".join(best.float_modules) or "nothing"
        note = f"keep-float: int8 lost {case.drop:.2f} points on validation; kept {kept} in float -> {top1:.2f}%" + (
            "" if recovered else " (still beyond tolerance)"
        )
        if not recovered:
            case.log.append(Note(logging.WARNING, f"ACCURACY WARNING {case.label}: {note}"))
        return dataclasses.replace(best, policy=note)
