"""The pieces of a regularization search: regularizer, placement, constraint, dropout.

Each piece validates its arguments, declares its Keras Tuner hyperparameters
in ``resolve(hp)`` and returns the trial's values as a flat dict; the
``make_*`` functions turn those values into Keras objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from regsearch.errors import SettingError, one_of
from regsearch.space.values import (
    Decades,
    LogRange,
    Range,
    Values,
    _is_number,
    as_choices,
    as_numbers,
    declare_value,
)

if TYPE_CHECKING:
    import keras

KINDS = ("none", "l1", "l2", "l1_l2")
TARGETS = ("kernel", "bias", "activity", "recurrent", "embeddings")
PLACEMENTS = ("after", "before")
CONSTRAINTS = ("none", "max_norm", "unit_norm", "non_neg", "min_max_norm")
DROPOUT_KINDS = ("none", "dropout", "gaussian_dropout", "gaussian_noise")
DROPOUT_WHERE = ("input", "hidden", "both")

__all__ = ["Constraint", "Dropout", "Placement", "Regularizer", "make_constraint", "make_dropout", "make_regularizer"]

#: The strengths a ``Regularizer`` searches when none are given: continuous, on a log scale.
DEFAULT_STRENGTHS = LogRange(1e-6, 1e-1)
#: What a search file's ``[space.regularizer]`` without ``strengths`` searches: the tutorials' decades.
DEFAULT_GRID = Decades(1e-1, 1e-6)


class Regularizer:
    """Which weight/activity penalty, how strong, and on what.

    Args:
        kinds: ``"none"``, ``"l1"``, ``"l2"``, ``"l1_l2"`` or a list of them (searched).
        strengths: the strength (for ``l1_l2`` the L2 strength): a number, a
            list, ``Decades``, ``FineGrid`` (grid searches) or ``LogRange``
            (tuners that sample: random, Bayesian, Hyperband); default
            ``LogRange(1e-6, 1e-1)``, a continuous log scale (:data:`DEFAULT_STRENGTHS`).
            Keras Tuner's samplers draw new values from it for as long as they
            ask, where a finite grid runs out (stock ``Hyperband`` then stops at
            its first rung); give ``Decades(1e-1, 1e-6)`` for the tutorials' grid.
        target: where the penalty goes: ``"kernel"``, ``"bias"``, ``"activity"``,
            ``"recurrent"``, ``"embeddings"``; several at once joined by ``+``
            (``"kernel+bias"``); a list of such names is searched.
        l1_strengths: the L1 strength of ``l1_l2``; None uses the same value
            as the L2 strength (``L1L2(s, s)``), otherwise every pair is searched.

    Raises:
        SettingError: an unknown kind or target, or a negative strength.
    """

    def __init__(
        self,
        kinds: str | Sequence[str] = "l2",
        strengths: Values | None = None,
        target: str | Sequence[str] = "kernel",
        l1_strengths: Values | None = None,
    ) -> None:
        where = "Regularizer"
        self.kinds = as_choices(kinds, "kinds", KINDS, where)
        strengths = DEFAULT_STRENGTHS if strengths is None else strengths
        for setting, value in (("strengths", strengths), ("l1_strengths", l1_strengths)):
            if isinstance(value, Range):
                raise SettingError(
                    setting, "a grid or a LogRange (strengths live on a log scale)", value, where
                )
        self.strengths = as_numbers(strengths, "strengths", where, positive=True)
        self.l1_strengths = (
            None
            if l1_strengths is None
            else as_numbers(l1_strengths, "l1_strengths", where, positive=True)
        )
        targets = (target,) if isinstance(target, str) else target
        if not isinstance(targets, Sequence) or not targets:
            raise SettingError(
                "target", f"a name or a list of names, {one_of(TARGETS)}", target, where
            )
        for option in targets:
            parts = option.split("+") if isinstance(option, str) else [option]
            for part in parts:
                if part not in TARGETS:
                    raise SettingError(
                        "target", one_of(TARGETS) + " (joined by '+' for several)", option, where
                    )
        self.targets = tuple(targets)

    @property
    def regularizes(self) -> bool:
        return self.kinds != ("none",)

    def target_parts(self) -> set[str]:
        """Every single target any trial may use (to check a model supports it)."""
        if not self.regularizes:
            return set()
        return {part for option in self.targets for part in option.split("+")}

    def resolve(self, hp: Any) -> dict[str, Any]:
        """Declares this piece's hyperparameters; returns kind, strength (l1, l2) and target."""
        kind, l1, l2 = self._resolve_kind_and_strength(hp)
        config: dict[str, Any] = {
            "kind": kind,
            "strength": None if kind == "none" else (l2 if kind != "l1" else l1),
        }
        if "l1_l2" in self.kinds:
            config["l1"] = l1 if kind in ("l1", "l1_l2") else None
            config["l2"] = l2 if kind in ("l2", "l1_l2") else None
        config["target"] = declare_value(hp, "target", self.targets) if self.regularizes else "none"
        return config

    def _resolve_kind_and_strength(self, hp: Any) -> tuple[str, float | None, float | None]:
        if not self.regularizes:  # no strength to declare, whatever the strengths are
            return "none", None, None
        grids = isinstance(self.strengths, tuple) and (
            self.l1_strengths is None or isinstance(self.l1_strengths, tuple)
        )
        if grids:
            options = self._grid_options()
            if len(options) == 1:
                return _decode_regularizer(options[0])
            if len(self.kinds) == 1 and self.kinds[0] in ("l1", "l2"):
                strength = hp.Choice("strength", list(self.strengths))
                return (
                    (self.kinds[0], strength, None)
                    if self.kinds[0] == "l1"
                    else (self.kinds[0], None, strength)
                )
            return _decode_regularizer(hp.Choice("regularizer", options))
        kind = declare_value(hp, "kind", self.kinds)
        strength = declare_value(hp, "strength", self.strengths)
        l1 = strength
        if "l1_l2" in self.kinds and self.l1_strengths is not None:
            l1 = declare_value(hp, "l1", self.l1_strengths)
        if kind == "none":
            return "none", None, None
        if kind == "l1":
            return "l1", strength, None
        if kind == "l2":
            return "l2", None, strength
        return "l1_l2", l1, strength

    def _grid_options(self) -> list[str]:
        options: list[str] = []
        for kind in self.kinds:
            if kind == "none":
                options.append("none")
            elif kind in ("l1", "l2"):
                options.extend(f"{kind}:{s!r}" for s in self.strengths)
            elif self.l1_strengths is None:
                options.extend(f"l1_l2:{s!r}:{s!r}" for s in self.strengths)
            else:
                options.extend(
                    f"l1_l2:{a!r}:{b!r}" for a in self.l1_strengths for b in self.strengths
                )
        return options

    def __repr__(self) -> str:
        return (
            f"Regularizer(kinds={list(self.kinds)!r}, strengths={self.strengths!r}, "
            f"target={list(self.targets)!r}, l1_strengths={self.l1_strengths!r})"
        )


def make_regularizer(config: dict[str, Any]) -> keras.regularizers.Regularizer | None:
    """The Keras regularizer for a resolved configuration (None for kind none)."""
    import keras  # only here: a search file's values are checked without a backend

    kind = config["kind"]
    if kind == "none":
        return None
    if kind == "l1":
        return keras.regularizers.L1(config["strength"])
    if kind == "l2":
        return keras.regularizers.L2(config["strength"])
    return keras.regularizers.L1L2(l1=config["l1"], l2=config["l2"])


def _decode_regularizer(option: str) -> tuple[str, float | None, float | None]:
    kind, *numbers = option.split(":")
    if kind == "none":
        return "none", None, None
    if kind == "l1":
        return "l1", float(numbers[0]), None
    if kind == "l2":
        return "l2", None, float(numbers[0])
    return "l1_l2", float(numbers[0]), float(numbers[1])


class Placement:
    """Activity regularization after the activation (``Dense(relu, activity_regularizer)``)
    or before it (``Dense(linear, activity_regularizer) -> Activation(relu)``).

    Args:
        values: ``"after"``, ``"before"`` or a list of both (searched).
    """

    def __init__(self, values: str | Sequence[str] = "after") -> None:
        self.values = as_choices(values, "placement", PLACEMENTS, "Placement")

    def resolve(self, hp: Any) -> dict[str, Any]:
        return {"placement": declare_value(hp, "placement", self.values)}

    def __repr__(self) -> str:
        return f"Placement({list(self.values)!r})"


class Constraint:
    """A weight constraint, applied to the same layers as the regularizer.

    Args:
        kinds: ``"none"``, ``"max_norm"``, ``"unit_norm"``, ``"non_neg"``,
            ``"min_max_norm"`` or a list of them (searched).
        max_value: the norm bound of max_norm and min_max_norm (a number or a
            list, searched); None means Keras's default (2.0 for max_norm, 1.0
            for min_max_norm).
        min_value: min_max_norm's lower bound (default 0.0).
        rate: min_max_norm's rate (default 1.0).
        targets: the weights constrained together: ``"kernel"``, ``"bias"``,
            ``"recurrent"``, ``"embeddings"`` or a tuple of them (not searched).

    Raises:
        SettingError: an unknown kind or target, or a bound that is not a number.
    """

    def __init__(
        self,
        kinds: str | Sequence[str] = "max_norm",
        max_value: float | Sequence[float] | None = None,
        min_value: float = 0.0,
        rate: float = 1.0,
        targets: str | Sequence[str] = ("kernel",),
    ) -> None:
        where = "Constraint"
        self.kinds = as_choices(kinds, "kinds", CONSTRAINTS, where)
        self.max_value = (
            None if max_value is None else as_numbers(max_value, "max_value", where, positive=True)
        )
        if isinstance(self.max_value, (LogRange, Range)):
            raise SettingError("max_value", "a number or a list of numbers", max_value, where)
        if not _is_number(min_value) or min_value < 0:
            raise SettingError("min_value", "a number >= 0", min_value, where)
        if not _is_number(rate) or not 0 <= rate <= 1:
            raise SettingError("rate", "a number in [0, 1]", rate, where)
        if (
            "min_max_norm" in self.kinds
            and self.max_value is not None
            and min(self.max_value) < min_value
        ):
            raise SettingError(
                "max_value", f"at least min_value={min_value!r}", self.max_value, where
            )
        self.min_value, self.rate = float(min_value), float(rate)
        self.targets = as_choices(
            targets, "targets", ("kernel", "bias", "recurrent", "embeddings"), where
        )

    @property
    def constrains(self) -> bool:
        return self.kinds != ("none",)

    def options(self) -> list[str]:
        """The encoded Choice values, in declaration order."""
        options: list[str] = []
        for kind in self.kinds:
            if kind == "max_norm":
                options.extend(f"max_norm:{v!r}" for v in (self.max_value or (2.0,)))
            elif kind == "min_max_norm":
                options.extend(
                    f"min_max_norm:{self.min_value!r}:{v!r}:{self.rate!r}"
                    for v in (self.max_value or (1.0,))
                )
            else:
                options.append(kind)
        return options

    def resolve(self, hp: Any) -> dict[str, Any]:
        """Declares ``constraint`` if searched; returns constraint, its arguments and targets."""
        kind, *numbers = declare_value(hp, "constraint", tuple(self.options())).split(":")
        config: dict[str, Any] = {"constraint": kind}
        if {"max_norm", "min_max_norm"} & set(self.kinds):
            config["max_value"] = (
                float(numbers[-2] if kind == "min_max_norm" else numbers[0]) if numbers else None
            )
        if "min_max_norm" in self.kinds:
            config["min_value"] = float(numbers[0]) if kind == "min_max_norm" else None
            config["rate"] = float(numbers[2]) if kind == "min_max_norm" else None
        config["constraint_target"] = "+".join(self.targets) if self.constrains else "none"
        return config

    def __repr__(self) -> str:
        return (
            f"Constraint(kinds={list(self.kinds)!r}, max_value={self.max_value!r}, min_value={self.min_value!r}, "
            f"rate={self.rate!r}, targets={self.targets!r})"
        )


def make_constraint(
    config: dict[str, Any], axis: int | list[int] = 0
) -> keras.constraints.Constraint | None:
    """A new Keras constraint for a resolved configuration (None for none)."""
    import keras  # only here: a search file's values are checked without a backend

    kind = config["constraint"]
    if kind == "none":
        return None
    if kind == "max_norm":
        return keras.constraints.MaxNorm(max_value=config["max_value"], axis=axis)
    if kind == "unit_norm":
        return keras.constraints.UnitNorm(axis=axis)
    if kind == "non_neg":
        return keras.constraints.NonNeg()
    return keras.constraints.MinMaxNorm(
        min_value=config["min_value"], max_value=config["max_value"], rate=config["rate"], axis=axis
    )


class Dropout:
    """Noise on inputs and/or hidden features.

    Args:
        kinds: ``"none"``, ``"dropout"`` (``Dropout(rate)``), ``"gaussian_dropout"``
            (``GaussianDropout(rate)``), ``"gaussian_noise"`` (``GaussianNoise(stddev)``)
            or a list of them (searched).
        rates: the rate, or the sigma of gaussian_noise: a number, a list, or a ``Range``.
        where: ``"input"``, ``"hidden"``, ``"both"`` or a list of them (searched);
            the same rate is used at every place.

    Raises:
        SettingError: an unknown kind or place, a negative rate, or a rate >= 1
            for dropout and gaussian_dropout.
    """

    def __init__(
        self,
        kinds: str | Sequence[str] = "dropout",
        rates: float | Sequence[float] | Range = 0.5,
        where: str | Sequence[str] = "hidden",
    ) -> None:
        place = "Dropout"
        self.kinds = as_choices(kinds, "kinds", DROPOUT_KINDS, place)
        if isinstance(rates, LogRange):
            raise SettingError("rates", "a number, a list of numbers or a Range", rates, place)
        below = 1.0 if {"dropout", "gaussian_dropout"} & set(self.kinds) else None
        self.rates = as_numbers(rates, "rates", place, below=below)
        self.where = as_choices(where, "where", DROPOUT_WHERE, place)

    @property
    def drops(self) -> bool:
        return self.kinds != ("none",)

    def resolve(self, hp: Any) -> dict[str, Any]:
        """Declares dropout hyperparameters; returns dropout_kind, dropout_rate, dropout_where."""
        if isinstance(self.rates, tuple):
            options = [
                "none" if kind == "none" else f"{kind}:{rate!r}"
                for kind in self.kinds
                for rate in (self.rates if kind != "none" else (None,))
            ]
            if len(self.kinds) == 1 and self.kinds[0] != "none":
                kind, rate = self.kinds[0], declare_value(hp, "dropout_rate", self.rates)
            else:
                kind, *rest = declare_value(hp, "dropout", tuple(options)).split(":")
                rate = float(rest[0]) if rest else None
        else:
            kind = declare_value(hp, "dropout_kind", self.kinds)
            rate = self.rates.declare(hp, "dropout_rate")
        where = declare_value(hp, "dropout_where", self.where) if self.drops else None
        if kind == "none":
            rate, where = None, None
        return {"dropout_kind": kind, "dropout_rate": rate, "dropout_where": where}

    def __repr__(self) -> str:
        return (
            f"Dropout(kinds={list(self.kinds)!r}, rates={self.rates!r}, where={list(self.where)!r})"
        )


def make_dropout(config: dict[str, Any], name: str) -> keras.layers.Layer:
    """A new noise layer for a resolved configuration (dropout_kind must not be none)."""
    import keras  # only here: a search file's values are checked without a backend

    kind, rate = config["dropout_kind"], config["dropout_rate"]
    if kind == "dropout":
        return keras.layers.Dropout(rate, name=name)
    if kind == "gaussian_dropout":
        return keras.layers.GaussianDropout(rate, name=name)
    return keras.layers.GaussianNoise(rate, name=name)
