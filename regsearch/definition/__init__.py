"""Search definitions: TOML files that say what to search (:mod:`.schema`) and what they build (:mod:`.build`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from regsearch.definition.schema import (
    NOTHING,
    OBJECTIVES,
    PACKAGED_SEARCHES,
    SearchDefinition,
    find_definition,
    known_searches,
    read_definition,
)

if TYPE_CHECKING:
    from regsearch.datasets import Split

__all__ = ["PACKAGED_SEARCHES", "SearchDefinition", "check_inputs", "find_definition", "known_searches",
           "load_definition", "read_definition", "NOTHING", "OBJECTIVES"]


def check_inputs(definition: SearchDefinition) -> tuple[SearchDefinition, Split]:
    """The checks of a read definition that need neither TensorFlow nor JAX; returns it resolved, and its data.

    The space's values are in range, the data loads and splits (a data file is
    read whole), the objective is resolved against it, the folds fit it, and a
    model file is a ``.keras`` archive; what needs Keras (the HyperModel, the model file's layers) is
    left to :func:`load_definition`.

    Raises:
        SettingError: naming the ``data.*``, ``evaluation.*`` or ``model.file`` key and the file.
    """
    from regsearch.definition.build import check_model_file, load_data, make_folds, make_space, resolve_objective

    make_space(definition)
    split = load_data(definition)
    definition = resolve_objective(definition, split)
    make_folds(definition, split)
    if "file" in definition.model:
        check_model_file(definition.model["file"], str(definition.path))
    return definition, split


def load_definition(name_or_path: str | Path | SearchDefinition, split: Split | None = None) -> SearchDefinition:
    """Reads and validates a search definition, down to its data and HyperModel.

    Checks the schema, then loads the data and builds the HyperModel once, so
    that a bad value (a negative strength, a missing column, a model whose
    output does not fit the task) fails before anything is written. The
    objective is resolved against the data (test loss for regression).

    Args:
        name_or_path: A search name, a file, or a definition read already (:func:`read_definition`).
        split: Its data, when :func:`check_inputs` loaded it already.

    Raises:
        SettingError: For malformed TOML (with line and column), unknown keys
            (with the nearest known key), wrong types and out-of-range values.
    """
    from regsearch.definition.plan import make_plan

    definition = name_or_path if isinstance(name_or_path, SearchDefinition) else read_definition(name_or_path)
    if split is None:
        definition, split = check_inputs(definition)
    return make_plan(definition, split).definition  # the CLI keeps the plan itself (its data and model, read once)
