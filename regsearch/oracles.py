"""A Keras Tuner oracle that hands out a list of configurations known up front.

Keras Tuner's ``GridSearchOracle`` works out the next grid point only when
a trial ends, and keeps its walk in memory only. A grid is known before it
starts: regsearch's grid phases (and each bracket of successive halving,
compared at every rung) hand their configurations out with
:class:`PlannedOracle`, through Keras Tuner's public ``Oracle.populate_space``,
so that a batch, or every free distributed worker, gets the next one at once,
and a resumed search finds its place from the saved trials alone.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import keras_tuner as kt

__all__ = ["PlannedOracle", "grid_configurations"]


def grid_configurations(hypermodel: Any, hyperparameters: kt.HyperParameters | None = None) -> list[dict[str, Any]]:
    """Every combination of the HyperModel's declared values, in ``GridSearchOracle``'s order (the last fastest).

    ``hyperparameters`` (Keras Tuner's argument of that name) fix or add values first.
    """
    hp = kt.HyperParameters() if hyperparameters is None else hyperparameters.copy()
    hypermodel.declare_hyperparameters(hp)
    describe = getattr(hypermodel, "describe", None)
    (describe or hypermodel.build)(hp)
    names, choices = [], []
    for parameter in hp.space:
        names.append(parameter.name)
        if isinstance(parameter, kt.engine.hyperparameters.Boolean):
            choices.append([True, False])
        elif isinstance(parameter, kt.engine.hyperparameters.Fixed):
            choices.append([parameter.value])
        else:
            choices.append(list(parameter.values))
    return [dict(zip(names, values)) for values in itertools.product(*choices)]


class PlannedOracle(kt.Oracle):
    """Hands out each of ``configurations`` once, in order; stops once the last trial has ended.

    A configuration counts as handed out while its trial runs in this
    process or once its trial ended; one whose process was killed mid-trial
    is handed out again after a reload (Keras Tuner retries it under its id).
    The list is the constructor's, not saved: a resumed search gives it again.

    Args:
        configurations: Hyperparameter values, one dict per trial.
        **kwargs: ``keras_tuner.Oracle``'s (objective, seed, ...); the list says how many trials run.
    """

    def __init__(self, configurations: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        if kwargs.get("max_trials") is not None:
            raise ValueError("PlannedOracle: 'max_trials' is the number of configurations; leave it out.")
        super().__init__(**kwargs)
        self.configurations = [dict(values) for values in configurations]

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """The first configuration no trial holds: Keras Tuner's documented extension point."""
        values = self.next_configuration()
        if values is not None:
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
        if self.ongoing_trials:  # the phase ends when its last trial does: ask again (Keras Tuner's "idle")
            return {"status": kt.engine.trial.TrialStatus.IDLE, "values": None}
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    def next_configuration(self) -> dict[str, Any] | None:
        """The first configuration no trial holds (None: every one is handed out or done)."""
        held = [trial.hyperparameters.values for trial in self.trials.values()
                if trial.status in ("COMPLETED", "FAILED", "INVALID") or trial.trial_id in self.ongoing_trials_ids()]
        for values in self.configurations:
            if values not in held:
                return values
        return None

    def ongoing_trials_ids(self) -> set[str]:
        """Trials handed out by this process and not yet ended."""
        return {trial.trial_id for trial in self.ongoing_trials.values()}
