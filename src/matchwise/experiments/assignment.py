"""Deterministic, stateless arm assignment: a salted SHA-256 of the user id picks the arm.

The same (salt, user id) gives the same arm in every process, on every host and on every
serving path (cache, Redis, live), with nothing stored: Python's built-in ``hash()`` is
salted per process (``PYTHONHASHSEED``), so it is never used here.

Two independent uniforms are drawn per user, one for coverage and one for the arm
(``sha256("{salt}:coverage:{user}")`` and ``sha256("{salt}:arm:{user}")``). Keeping them
apart is a choice with a purpose: raising an experiment's coverage (10% -> 50%) only adds
users, and every user who was already in keeps the arm they had, because the arm draw does
not depend on the coverage. Lowering coverage sends some users back to the default; the
rest keep their arm. Changing the weights moves only the users whose arm draw falls in the
part of [0, 1) that changed hands. Changing the salt reshuffles everyone (a new experiment).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

from matchwise.errors import InvalidInput

__all__ = ["Arm", "arm_for_uniform", "assign_arm", "assign_arms", "unit_uniform", "validate_arms"]

#: An arm's name and its traffic weight (any positive scale; weights are normalised).
Arm = tuple[str, float]

_MANTISSA = 53  # bits a float64 holds exactly: the uniform is k / 2**53, never 1.0


def unit_uniform(salt: str, user_id: str, purpose: str = "arm") -> float:
    """A uniform number in [0, 1) from ``sha256("{salt}:{purpose}:{user_id}")``.

    The top 53 bits of the digest become ``k / 2**53``, exact in a float64, so the value
    never rounds up to 1.0 and is identical on every platform and Python process.
    """
    digest = hashlib.sha256(f"{salt}:{purpose}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _MANTISSA)) / float(1 << _MANTISSA)


def validate_arms(arms: Sequence[Arm]) -> None:
    """Reject what cannot be a split: no arms, repeated names, non-positive weights."""
    if not arms:
        raise InvalidInput("an experiment needs at least one arm")
    names = [name for name, _ in arms]
    if len(set(names)) != len(names):
        raise InvalidInput(f"arm names must be unique, got {names}")
    for name, weight in arms:
        if not name:
            raise InvalidInput("an arm needs a name")
        if not (math.isfinite(weight) and weight > 0):
            raise InvalidInput(f"arm {name!r} needs a positive finite weight, got {weight}")


def arm_for_uniform(u: float, arms: Sequence[Arm]) -> str:
    """The arm whose share of [0, 1) holds ``u``: arms take consecutive intervals in the
    order given, each as wide as its normalised weight."""
    total = math.fsum(weight for _, weight in arms)
    cumulative = 0.0
    for name, weight in arms[:-1]:
        cumulative += weight / total
        if u < cumulative:
            return name
    return arms[-1][0]  # the last interval ends at exactly 1.0, whatever the rounding


def _check_coverage(coverage: float) -> None:
    if not (0.0 <= coverage <= 1.0):
        raise InvalidInput(f"coverage must be in [0, 1], got {coverage}")


def assign_arm(salt: str, user_id: str, arms: Sequence[Arm], coverage: float = 1.0) -> str | None:
    """The arm ``user_id`` sees in the experiment salted ``salt``, or None for the default.

    A user is in the experiment when their coverage uniform is below ``coverage``; then
    their arm uniform picks an arm by weight (see the module docstring for why the two
    draws are separate). ``coverage`` 0 puts nobody in, 1 puts everybody in.
    """
    validate_arms(arms)
    _check_coverage(coverage)
    if unit_uniform(salt, user_id, "coverage") >= coverage:
        return None
    return arm_for_uniform(unit_uniform(salt, user_id, "arm"), arms)


def assign_arms(
    salt: str, user_ids: Iterable[str], arms: Sequence[Arm], coverage: float = 1.0
) -> list[str | None]:
    """:func:`assign_arm` for many users at once (attributing logged exposures, checking a
    split): the same answer per user, with the split checked once."""
    validate_arms(arms)
    _check_coverage(coverage)
    return [
        None
        if unit_uniform(salt, user, "coverage") >= coverage
        else arm_for_uniform(unit_uniform(salt, user, "arm"), arms)
        for user in user_ids
    ]
