"""Evaluation protocols and the folds they cut from the training rows, as scikit-learn's splitters cut them.

- ``holdout``: one stratified, seeded validation split of the training rows
  drives early stopping and selection; the test rows only score the result;
- ``kfold``: ``folds`` stratified folds (``repeats`` times, each a fresh
  partition); each fold's model early-stops on its own held-out fold;
- ``tutorial``: the seed articles' protocol, the test rows as validation
  data (kept to reproduce them; the estimate it gives is optimistic).

Folds are index arrays into the training rows (scikit-learn's convention);
the test rows are not passed here, so no fold can contain them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from regsearch.errors import SettingError, one_of

__all__ = ["PROTOCOLS", "Fold", "Protocol", "make_folds"]

PROTOCOLS = ("holdout", "kfold", "tutorial")


@dataclass(frozen=True)
class Protocol:
    """How runs are validated and selected, and whether the unregularized baseline runs too.

    Args:
        kind: ``"holdout"``, ``"kfold"`` or ``"tutorial"``.
        validation_size: ``holdout``: the fraction of the training rows held out to validate.
        folds: ``kfold``: folds per partition (at least 2).
        repeats: ``kfold``: partitions, each with a fresh shuffle.
        baseline: Run the same model without penalty, constraint or noise, and compare every configuration to it.

    Raises:
        SettingError: naming the ``evaluation.*`` setting.
    """

    kind: str = "holdout"
    validation_size: float = 0.25
    folds: int = 5
    repeats: int = 1
    baseline: bool = True

    def __post_init__(self) -> None:
        where = "Protocol"
        if self.kind not in PROTOCOLS:
            raise SettingError("evaluation.protocol", one_of(PROTOCOLS), self.kind, where)
        if (isinstance(self.validation_size, bool) or not isinstance(self.validation_size, (int, float))
                or not 0 < self.validation_size < 1):
            raise SettingError("evaluation.validation_size", "a fraction between 0 and 1", self.validation_size,
                               where)
        for name, low in (("folds", 2), ("repeats", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingError(f"evaluation.{name}", f"an integer >= {low}", value, where)
        if not isinstance(self.baseline, bool):
            raise SettingError("evaluation.baseline", "true or false", self.baseline, where)

    @property
    def runs_per_seed(self) -> int:
        """Training runs of one configuration per seed: one per fold."""
        return self.folds * self.repeats if self.kind == "kfold" else 1

    @property
    def selects_on_test(self) -> bool:
        """True for ``tutorial``: the test rows validate, so selection sees them."""
        return self.kind == "tutorial"


@dataclass(frozen=True)
class Fold:
    """One split of the training rows: ``index`` numbers it in ``trials.csv``'s ``fold`` column."""

    index: int
    train: np.ndarray
    validation: np.ndarray


def make_folds(protocol: Protocol, y: Any, *, classification: bool, seed: int,
               where: str = "evaluation") -> list[Fold] | None:
    """The protocol's folds of the training rows (None for ``tutorial``), stratified for classification.

    Raises:
        SettingError: ``evaluation.folds`` above the rows of the smallest class (or of the data),
            ``evaluation.validation_size`` that leaves a class out of either part.
    """
    from sklearn.model_selection import KFold, RepeatedKFold, RepeatedStratifiedKFold, StratifiedKFold
    from sklearn.model_selection import train_test_split

    if protocol.kind == "tutorial":
        return None
    labels = np.asarray(y).reshape(len(y), -1)[:, 0] if classification else None
    rows = np.arange(len(y))
    smallest = int(np.unique(labels, return_counts=True)[1].min()) if classification else len(rows)
    if protocol.kind == "holdout":
        held = math.ceil(protocol.validation_size * len(rows))
        classes = 0 if labels is None else len(np.unique(labels))
        if classification and (smallest < 2 or held < classes or len(rows) - held < classes):
            raise SettingError("evaluation.validation_size",
                               f"a fraction that leaves each of the {classes} classes in both the training and the "
                               f"validation rows ({len(rows)} training rows, the smallest class has {smallest})",
                               protocol.validation_size, where)
        if not classification and not 0 < held < len(rows):
            raise SettingError("evaluation.validation_size", f"a fraction leaving rows on both sides of "
                               f"{len(rows)} training rows", protocol.validation_size, where)
        train, validation = train_test_split(rows, test_size=held, random_state=seed, stratify=labels)
        return [Fold(0, np.sort(train), np.sort(validation))]
    if protocol.folds > smallest:
        what = "the training rows of the smallest class" if classification else "the training rows"
        raise SettingError("evaluation.folds", f"an integer from 2 to {smallest} ({what})", protocol.folds, where)
    if classification:
        splitter = (StratifiedKFold(protocol.folds, shuffle=True, random_state=seed) if protocol.repeats == 1 else
                    RepeatedStratifiedKFold(n_splits=protocol.folds, n_repeats=protocol.repeats, random_state=seed))
    else:
        splitter = (KFold(protocol.folds, shuffle=True, random_state=seed) if protocol.repeats == 1 else
                    RepeatedKFold(n_splits=protocol.folds, n_repeats=protocol.repeats, random_state=seed))
    return [Fold(k, np.sort(train), np.sort(validation))
            for k, (train, validation) in enumerate(splitter.split(rows, labels))]
