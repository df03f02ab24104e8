"""A search resolved once: its definition, data, loaded model file, HyperModel and brackets.

The CLI, :func:`regsearch.search.run_search` and the distributed chief and
workers share one :class:`Plan`, so a definition's data file and ``.keras``
model are each read once per search; the phases that need a HyperModel of
other strengths (the fine grid, the baseline) build it on the same data and
the same loaded model (:meth:`Plan.hypermodel_for`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from regsearch.datasets import Split
from regsearch.definition.build import Bracket, brackets, load_data, make_hypermodel
from regsearch.definition.schema import SearchDefinition

__all__ = ["Plan", "make_plan"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a search trains, resolved from its definition once."""

    definition: SearchDefinition
    split: Split
    hypermodel: Any  # the definition's HyperModel (the first phase's)
    model: Any = None  # the loaded ``[model] file`` (keras.Model), shared by every phase's HyperModel
    brackets: tuple[Bracket, ...] = ()  # successive_halving's or hyperband's; none for other strategies

    def hypermodel_for(self, definition: SearchDefinition) -> Any:
        """The HyperModel of a phase's definition (fine strengths, the baseline) on this plan's data and model.

        Sharing the loaded model is safe: ``Regularize`` clones it with fresh weights for every build.
        """
        return make_hypermodel(definition, self.split, model=self.model)


def make_plan(definition: SearchDefinition, split: Split | None = None) -> Plan:
    """Resolves a checked definition into its plan; ``split`` is its data when loaded already.

    Raises:
        SettingError: A value the data, the HyperModel or the brackets refuse, named by its TOML key.
    """
    split = load_data(definition) if split is None else split
    hypermodel = make_hypermodel(definition, split)
    model = hypermodel.model if definition.hypermodel == "Regularize" else None
    return Plan(definition, split, hypermodel, model, tuple(brackets(definition, hypermodel)))
