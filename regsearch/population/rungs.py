"""Successive halving inside populations: at each rung the weakest configurations stop, the rest train on.

Hyperband and successive halving (Li et al. 2018, 2020) compare
configurations after a small budget of epochs, keep the best ``1/factor``
and give them more. Tuners do it by stopping processes or by reloading
checkpoints and training again; here the members of a configuration simply
stop being trained inside their population (:class:`~regsearch.population.Population`),
and the kept ones go on from where they stand: the same weights, optimizer
state and early-stopping state.

A configuration's score at a rung is the mean over its members (its seeds)
of the selection score at each member's best epoch so far, the epoch whose
weights it would end with; seeds are kept or dropped together. Ties are
broken by a second score (the loss on the same rows), as the report ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Hashable, Sequence

import numpy as np

if TYPE_CHECKING:
    from regsearch.population import Population, Standing

__all__ = ["Rungs", "RungScore", "rung_budgets", "hyperband_brackets", "keep_count", "successive_halving"]


@dataclass(frozen=True)
class Rungs:
    """When to compare configurations and by what.

    Attributes:
        budgets: Epochs after which configurations are compared, increasing;
            the last is the full budget (nobody is dropped there).
        factor: Each rung keeps the best ``1/factor`` of the configurations (at least one).
        score: The history key the comparison reads (``val_accuracy``, say).
        minimize: True when a lower score is better.
        tie_breaker: A history key minimized among equal scores (``val_loss``), or None.
    """

    budgets: tuple[int, ...]
    factor: int
    score: str
    minimize: bool
    tie_breaker: str | None = None


@dataclass(frozen=True)
class RungScore:
    """One member at one rung."""

    rung: int
    budget: int
    epochs: int  # trained so far (less than the budget where early stopping ended it)
    score: float
    kept: bool


def rung_budgets(min_epochs: int, factor: int, epochs: int) -> tuple[int, ...]:
    """``min_epochs * factor**k`` below ``epochs``, then ``epochs`` itself."""
    budgets = []
    budget = min_epochs
    while budget < epochs:
        budgets.append(budget)
        budget *= factor
    return (*budgets, epochs)


def hyperband_brackets(rungs: int, factor: int) -> list[int]:
    """Configurations per bracket as Keras Tuner's Hyperband counts them; bracket ``b`` starts at rung ``b``.

    With ``s = rungs - 1 - b`` halvings ahead, a bracket starts with
    ``ceil(rungs / (s + 1) * factor**s)`` configurations (Li et al. 2018).
    """
    return [math.ceil(rungs / (s + 1) * factor**s) for s in range(rungs - 1, -1, -1)]


def keep_count(configurations: int, factor: int) -> int:
    """How many configurations a rung keeps: the best ``1/factor``, at least one."""
    return max(1, configurations // factor)


def successive_halving(populations: Sequence[Population], configurations: Sequence[Sequence[Hashable]],
                       rungs: Rungs) -> list[list[list[RungScore]]]:
    """Advances ``populations`` rung by rung, dropping the weakest configurations at each rung but the last.

    ``configurations[p][k]`` names member ``k`` of population ``p``'s
    configuration: members with one name (its seeds, in any population) are
    scored together and kept or dropped together. Returns each member's
    scores, rung by rung, as ``[p][k] -> [RungScore, ...]``; the caller
    finishes the populations.
    """
    scores: list[list[list[RungScore]]] = [[[] for _ in names] for names in configurations]
    alive = {name for names in configurations for name in names}
    for rung, budget in enumerate(rungs.budgets):
        for population in populations:
            population.advance(budget)
        # (population, member, its configuration, its standing, its score and tie-breaker), live configurations only
        standing = [(p, k, name, member, _scores_at_best(member, rungs))
                    for p, (names, population) in enumerate(zip(configurations, populations))
                    for k, (name, member) in enumerate(zip(names, population.standing())) if name in alive]
        member_scores: dict[Hashable, list[tuple[float, float]]] = {}
        for _, _, name, _, score in standing:
            member_scores.setdefault(name, []).append(score)
        last = rung == len(rungs.budgets) - 1
        kept = set(member_scores) if last else set(_ranked(member_scores, rungs)[:keep_count(len(member_scores),
                                                                                             rungs.factor)])
        for p, k, name, member, score in standing:
            trained = member.epoch - populations[p].initial_epoch
            scores[p][k].append(RungScore(rung=rung, budget=budget, epochs=trained, score=score[0], kept=name in kept))
        for p, names in enumerate(configurations):
            populations[p].drop([k for k, name in enumerate(names) if name in alive and name not in kept])
        alive = kept
    return scores


def _scores_at_best(member: Standing, rungs: Rungs) -> tuple[float, float]:
    """The member's score and tie-breaker at its best epoch so far (NaN before any epoch)."""
    def at(key: str | None) -> float:
        values = member.history.get(key, []) if key else []
        index = member.best_epoch - (member.epoch - len(values))
        return float(values[index]) if 0 <= index < len(values) else math.nan

    return at(rungs.score), at(rungs.tie_breaker)


def _ranked(member_scores: dict[Hashable, list[tuple[float, float]]], rungs: Rungs) -> list[Hashable]:
    """Configurations best first: mean score (NaN last), then the mean tie-breaker (lower first)."""
    def key(name: Hashable) -> tuple[float, float]:
        values = np.asarray(member_scores[name], float)
        score, tie = (float(np.mean(values[:, 0])), float(np.mean(values[:, 1])))
        score = math.inf if math.isnan(score) else (score if rungs.minimize else -score)
        return score, math.inf if math.isnan(tie) else tie

    return sorted(member_scores, key=key)
