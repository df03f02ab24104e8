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

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Hashable, Sequence

import numpy as np

from regsearch.population import checkpoints

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
    decisions = _Decisions(populations, configurations, rungs)
    decided = decisions.resume()
    for rung, budget in enumerate(rungs.budgets):
        for population in populations:
            population.advance(budget)  # resumed: a member behind its rung (an older checkpoint) trains up to it
        if decided is not None and rung < decisions.rungs:
            # Decided before a kill: a member's standing at a past rung cannot be read again from a
            # population that trained past it, so the decision is taken from the record.
            kept = set()
            for p, names in enumerate(configurations):
                at = [[score for score in member if score.rung == rung] for member in decided[p]]
                for k, found in enumerate(at):
                    scores[p][k].extend(found)
                kept.update(names[k] for k, found in enumerate(at) if found and found[0].kept)
                populations[p].drop([k for k, found in enumerate(at) if found and not found[0].kept])
            alive = kept
            continue
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
        for population in populations:  # as they stand at the decision: a rerun resumes from here at the latest
            if getattr(population, "checkpoints", None) is not None:
                population.checkpoint()
        decisions.record(rung, scores)
    return scores


class _Decisions:
    """The rungs decided so far, kept beside the populations' checkpoints (:mod:`.checkpoints`) where they are set.

    A rerun after a kill takes the decided rungs' scores and drops from here,
    rung by rung, and goes on at the next rung.
    """

    def __init__(self, populations: Sequence[Population], configurations: Sequence[Sequence[Hashable]],
                 rungs: Rungs) -> None:
        self.configurations = configurations
        self.rungs = 0  # decided, as resume() found them
        self.checkpoints = checkpoints.current()
        if self.checkpoints is not None:
            # Populations opened under another folder (or none) have no path: nothing to resume then.
            keys = [str(getattr(p, "checkpoint_path", None)) for p in populations]
            self.path = self.checkpoints.path(checkpoints.key_of("rungs", keys, [[repr(n) for n in names]
                                                                                 for names in configurations],
                                                                 repr(rungs)), ".json")

    def record(self, rung: int, scores: list[list[list[RungScore]]]) -> None:
        """Records every member's scores up to rung ``rung`` (which says who was kept), atomically."""
        if self.checkpoints is None:
            return
        self.checkpoints.save_json(self.path, {
            "rungs": rung + 1,
            "scores": [[[dataclasses.asdict(score) for score in member] for member in population]
                       for population in scores]})

    def resume(self) -> list[list[list[RungScore]]] | None:
        """Every member's recorded scores (``[p][k] -> [RungScore, ...]``), setting ``rungs`` decided; None: none."""
        self.rungs = 0
        if self.checkpoints is None:
            return None
        found = self.checkpoints.load_json(self.path)
        if found is None:
            return None
        try:
            saved = [[[RungScore(**score) for score in member] for member in population]
                     for population in found["scores"]]
            decided = int(found["rungs"])
            if [len(p) for p in saved] != [len(names) for names in self.configurations]:
                raise ValueError("members")
        except (KeyError, TypeError, IndexError, ValueError):
            checkpoints.damaged(self.path, "it is not this schedule's")
            return None
        self.rungs = decided
        return saved


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
