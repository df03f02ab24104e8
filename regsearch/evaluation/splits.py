"""Evaluation protocols and the folds they cut from the training rows, as scikit-learn's splitters cut them.

- ``holdout``: one stratified, seeded validation split of the training rows
  drives early stopping and selection; the test rows only score the result;
- ``kfold``: ``folds`` stratified folds (``repeats`` times, each a fresh
  partition); each fold's model early-stops on its own held-out fold;
- ``nested``: ``outer_folds`` stratified outer folds of the training rows;
  each outer fold's training rows are cut into ``folds`` inner folds on
  which the whole ``kfold`` search runs (:func:`outer_folds`), and its
  choice is scored on the outer fold's rows;
- ``tutorial``: the seed articles' protocol, the test rows as validation
  data (kept to reproduce them; the estimate it gives is optimistic).

With ``split_per_seed``, seed ``seed + r`` gets a split (or partition) of its
own, drawn with that seed, so that the spread over seeds carries the data
split's variance as well as initialization's and order's.

Folds are index arrays into the training rows (scikit-learn's convention);
the test rows are not passed here, so no fold can contain them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from regsearch.errors import SettingError, one_of

__all__ = ["PROTOCOLS", "Fold", "OuterFold", "Protocol", "make_folds", "outer_folds"]

PROTOCOLS = ("holdout", "kfold", "nested", "tutorial")


@dataclass(frozen=True)
class Protocol:
    """How runs are validated and selected, and whether the unregularized baseline runs too.

    Args:
        kind: ``"holdout"``, ``"kfold"``, ``"nested"`` or ``"tutorial"``.
        validation_size: ``holdout``: the fraction of the training rows held out to validate.
        folds: ``kfold``: folds per partition (at least 2); ``nested``: inner folds of each outer fold's training rows.
        repeats: ``kfold`` and ``nested``'s inner folds: partitions, each with a fresh shuffle.
        baseline: Run the same model without penalty, constraint or noise, and compare every configuration to it.
        outer_folds: ``nested``: outer folds of the training rows (at least 2).
        split_per_seed: ``holdout``, ``kfold``, ``nested`` (inner folds): each seed gets a split of its own.

    Raises:
        SettingError: naming the ``evaluation.*`` setting.
    """

    kind: str = "holdout"
    validation_size: float = 0.25
    folds: int = 5
    repeats: int = 1
    baseline: bool = True
    outer_folds: int = 5
    split_per_seed: bool = False

    def __post_init__(self) -> None:
        where = "Protocol"
        if self.kind not in PROTOCOLS:
            raise SettingError("evaluation.protocol", one_of(PROTOCOLS), self.kind, where)
        if (isinstance(self.validation_size, bool) or not isinstance(self.validation_size, (int, float))
                or not 0 < self.validation_size < 1):
            raise SettingError("evaluation.validation_size", "a fraction between 0 and 1", self.validation_size,
                               where)
        for name, low in (("folds", 2), ("repeats", 1), ("outer_folds", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingError(f"evaluation.{name}", f"an integer >= {low}", value, where)
        for name in ("baseline", "split_per_seed"):
            if not isinstance(getattr(self, name), bool):
                raise SettingError(f"evaluation.{name}", "true or false", getattr(self, name), where)
        if self.split_per_seed and self.kind == "tutorial":
            raise SettingError("evaluation.split_per_seed", "false for protocol 'tutorial' (its test rows validate: "
                               "there is no split to draw)", self.split_per_seed, where)

    @property
    def runs_per_seed(self) -> int:
        """Training runs of one configuration per seed: one per fold."""
        return self.folds * self.repeats if self.kind in ("kfold", "nested") else 1

    @property
    def inner(self) -> Protocol:
        """The protocol each search of ``nested`` runs (``kfold`` on its rows); any other protocol itself."""
        return dataclasses.replace(self, kind="kfold") if self.kind == "nested" else self

    @property
    def selects_on_test(self) -> bool:
        """True for ``tutorial``: the test rows validate, so selection sees them."""
        return self.kind == "tutorial"


@dataclass(frozen=True)
class Fold:
    """One split of the training rows: ``index`` numbers it in ``trials.csv``'s ``fold`` column.

    ``repeat``: None when every seed trains on it; else the one repeat (seed ``seed + repeat``) that does
    (``split_per_seed``).
    """

    index: int
    train: np.ndarray
    validation: np.ndarray
    repeat: int | None = None


@dataclass(frozen=True)
class OuterFold:
    """One outer fold of ``nested``: its search sees only ``train`` (rows of the training rows); ``assess`` scores."""

    index: int
    train: np.ndarray
    assess: np.ndarray


def make_folds(protocol: Protocol, y: Any, *, classification: bool, seed: int, seeds: int = 1,
               where: str = "evaluation") -> list[Fold] | None:
    """The protocol's folds of the training rows (None for ``tutorial``), stratified for classification.

    ``nested`` gives the folds of its inner search on ``y``'s rows (an outer fold's training rows,
    :func:`outer_folds`). With ``split_per_seed``, each of the ``seeds`` repeats gets folds of its own,
    drawn with seed ``seed + repeat`` (``Fold.repeat``); the first repeat's are the folds a fixed split draws.

    Raises:
        SettingError: ``evaluation.folds`` above the rows of the smallest class (or of the data),
            ``evaluation.validation_size`` that leaves a class out of either part.
    """
    if protocol.kind == "tutorial":
        return None
    if not protocol.split_per_seed:
        return _draw(protocol, y, classification, seed, where)
    return [dataclasses.replace(fold, repeat=repeat) for repeat in range(seeds)
            for fold in _draw(protocol, y, classification, seed + repeat, where)]


def outer_folds(protocol: Protocol, y: Any, *, classification: bool, seed: int,
                where: str = "evaluation") -> list[OuterFold]:
    """``nested``'s outer folds of the training rows: stratified, drawn once with ``seed``, each row assessed once.

    Raises:
        SettingError: ``evaluation.outer_folds`` above the rows of the smallest class (or of the data).
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    labels, smallest = _labels(y, classification)
    if protocol.outer_folds > smallest:
        what = "the training rows of the smallest class" if classification else "the training rows"
        raise SettingError("evaluation.outer_folds", f"an integer from 2 to {smallest} ({what})",
                           protocol.outer_folds, where)
    splitter = (StratifiedKFold if classification else KFold)(protocol.outer_folds, shuffle=True, random_state=seed)
    return [OuterFold(k, np.sort(train), np.sort(assess))
            for k, (train, assess) in enumerate(splitter.split(np.arange(len(y)), labels))]


def _labels(y: Any, classification: bool) -> tuple[np.ndarray | None, int]:
    """The class of each row (None for regression) and the rows of the smallest class (all rows for regression)."""
    labels = np.asarray(y).reshape(len(y), -1)[:, 0] if classification else None
    smallest = int(np.unique(labels, return_counts=True)[1].min()) if classification else len(y)
    return labels, smallest


def _draw(protocol: Protocol, y: Any, classification: bool, seed: int, where: str) -> list[Fold]:
    """One draw of the protocol's folds (``holdout``: one split; ``kfold``, ``nested``: ``repeats`` partitions)."""
    from sklearn.model_selection import KFold, RepeatedKFold, RepeatedStratifiedKFold, StratifiedKFold
    from sklearn.model_selection import train_test_split

    labels, smallest = _labels(y, classification)
    rows = np.arange(len(y))
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
        if protocol.kind == "nested":
            what = ("the rows of the smallest class in an outer fold's training rows" if classification else
                    "an outer fold's training rows")
        raise SettingError("evaluation.folds", f"an integer from 2 to {smallest} ({what})", protocol.folds, where)
    if classification:
        splitter = (StratifiedKFold(protocol.folds, shuffle=True, random_state=seed) if protocol.repeats == 1 else
                    RepeatedStratifiedKFold(n_splits=protocol.folds, n_repeats=protocol.repeats, random_state=seed))
    else:
        splitter = (KFold(protocol.folds, shuffle=True, random_state=seed) if protocol.repeats == 1 else
                    RepeatedKFold(n_splits=protocol.folds, n_repeats=protocol.repeats, random_state=seed))
    return [Fold(k, np.sort(train), np.sort(validation))
            for k, (train, validation) in enumerate(splitter.split(rows, labels))]
