"""Search definitions: TOML files that say what to search (:mod:`.schema`) and what they build (:mod:`.build`)."""

from __future__ import annotations

from pathlib import Path

from regsearch.definition.schema import (
    NOTHING,
    OBJECTIVES,
    PACKAGED_SEARCHES,
    SearchDefinition,
    find_definition,
    known_searches,
    read_definition,
)

__all__ = ["PACKAGED_SEARCHES", "SearchDefinition", "find_definition", "known_searches", "load_definition",
           "read_definition", "NOTHING", "OBJECTIVES"]


def load_definition(name_or_path: str | Path) -> SearchDefinition:
    """Reads and validates a search definition, down to its data and HyperModel.

    Checks the schema, then loads the data and builds the HyperModel once, so
    that a bad value (a negative strength, a missing column, a model whose
    output does not fit the task) fails before anything is written. The
    objective is resolved against the data (test loss for regression).

    Raises:
        SettingError: For malformed TOML (with line and column), unknown keys
            (with the nearest known key), wrong types and out-of-range values.
    """
    from regsearch.definition.build import brackets, load_data, make_folds, make_hypermodel, resolve_objective

    definition = read_definition(name_or_path)
    split = load_data(definition)
    definition = resolve_objective(definition, split)
    hypermodel = make_hypermodel(definition, split)
    make_folds(definition, split)
    brackets(definition, hypermodel)
    return definition
