"""Search-space vocabulary: what a regularization search may vary.

Each piece (``Regularizer``, ``Placement``, ``Constraint``, ``Dropout``, in
:mod:`regsearch.space.pieces`) declares Keras Tuner hyperparameters with
``resolve(hp)`` and returns the trial's configuration as a flat dict (the
``describe()`` keys). Strengths, rates and learning rates are searchable
numbers (:mod:`regsearch.space.values`): a value, a list, ``Decades``,
``FineGrid``, or a continuous ``LogRange``/``Range``. A piece with a single
value declares nothing.

Where a grid mixes kinds (``none``, ``l1``, ``l2``, ``l1_l2``) with strengths,
kind and strength are encoded in one Choice (``"none"``, ``"l2:0.001"``,
``"l1_l2:0.01:0.001"``) because conditional hyperparameters have KeyError bugs
in GridSearch (keras-tuner #614).
"""

# The helpers and constants are re-exported for the HyperModels; the public API is __all__.
from regsearch.space.pieces import (  # noqa: F401
    CONSTRAINTS,
    DEFAULT_GRID,
    DEFAULT_STRENGTHS,
    DROPOUT_KINDS,
    DROPOUT_WHERE,
    KINDS,
    PLACEMENTS,
    TARGETS,
    Constraint,
    Dropout,
    Placement,
    Regularizer,
    make_constraint,
    make_dropout,
    make_regularizer,
)
from regsearch.space.values import (  # noqa: F401
    Decades,
    FineGrid,
    LogRange,
    Range,
    Values,
    as_choices,
    as_numbers,
    declare_value,
    is_searched,
)

__all__ = ["Constraint", "Decades", "Dropout", "FineGrid", "LogRange", "Placement", "Range", "Regularizer"]
