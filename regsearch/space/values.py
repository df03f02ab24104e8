"""Searchable numbers: explicit grids (decades, fine grids) and continuous ranges.

``declare_value`` turns a normalised value into Keras Tuner hyperparameters: a
one-value tuple declares nothing, a longer tuple is an ordered ``hp.Choice``
(so ``GridSearch`` visits exactly the declared values, in order), a
``LogRange`` is a log-sampled ``hp.Float`` for ``BayesianOptimization``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from regsearch.errors import SettingError, one_of

__all__ = ["Decades", "FineGrid", "LogRange", "Range", "Values", "as_choices", "as_numbers", "declare_value", "is_searched"]


class Decades:
    """Powers of ten from ``start`` to ``stop`` inclusive, in that order.

    ``Decades(1e-1, 1e-6)`` gives exactly ``(0.1, 0.01, 0.001, 0.0001, 1e-05, 1e-06)``.

    Raises:
        SettingError: an end is not a positive power of ten.
    """

    def __init__(self, start: float, stop: float) -> None:
        first = _decade_exponent(start, "start")
        last = _decade_exponent(stop, "stop")
        step = -1 if last < first else 1
        self.start, self.stop = float(start), float(stop)
        self.values: tuple[float, ...] = tuple(
            float(f"1e{k}") for k in range(first, last + step, step)
        )

    def __repr__(self) -> str:
        return f"Decades({self.start!r}, {self.stop!r})"


class FineGrid:
    """``n`` log-spaced values spanning ``span`` decades centred on ``center``, ascending.

    The fine step after a coarse ``Decades`` search: ``FineGrid(1e-3, n=7)``
    gives 0.000316 ... 0.00316, rounded to three significant digits.

    Raises:
        SettingError: center is not positive, n < 1 or span is not positive.
    """

    def __init__(self, center: float, n: int = 7, span: float = 1.0) -> None:
        where = "FineGrid"
        if not _is_positive_number(center):
            raise SettingError("center", "a positive number", center, where)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SettingError("n", "an integer >= 1", n, where)
        if not _is_positive_number(span):
            raise SettingError("span", "a positive number of decades", span, where)
        self.center, self.n, self.span = float(center), n, float(span)
        if n == 1:
            raw = [self.center]
        else:
            raw = [self.center * 10 ** (span * (i / (n - 1) - 0.5)) for i in range(n)]
        self.values: tuple[float, ...] = tuple(sorted({float(f"{v:.3g}") for v in raw}))

    def __repr__(self) -> str:
        return f"FineGrid({self.center!r}, n={self.n}, span={self.span!r})"


class LogRange:
    """A continuous range searched on a log scale: ``hp.Float(name, low, high, sampling="log")``.

    Raises:
        SettingError: unless 0 < low < high.
    """

    def __init__(self, low: float, high: float) -> None:
        if not _is_positive_number(low):
            raise SettingError("low", "a positive number", low, "LogRange")
        if not _is_number(high) or not high > low:
            raise SettingError("high", f"a number greater than low={low!r}", high, "LogRange")
        self.low, self.high = float(low), float(high)

    def declare(self, hp: Any, name: str) -> float:
        return hp.Float(name, self.low, self.high, sampling="log")

    def __repr__(self) -> str:
        return f"LogRange({self.low!r}, {self.high!r})"


class Range:
    """A continuous linear range, ``hp.Float(name, low, high, step)``; used for dropout rates.

    Raises:
        SettingError: unless 0 <= low < high.
    """

    def __init__(self, low: float, high: float, step: float | None = None) -> None:
        if not _is_number(low) or low < 0:
            raise SettingError("low", "a number >= 0", low, "Range")
        if not _is_number(high) or not high > low:
            raise SettingError("high", f"a number greater than low={low!r}", high, "Range")
        if step is not None and not _is_positive_number(step):
            raise SettingError("step", "a positive number or None", step, "Range")
        self.low, self.high, self.step = float(low), float(high), step

    def declare(self, hp: Any, name: str) -> float:
        return hp.Float(name, self.low, self.high, step=self.step)

    def __repr__(self) -> str:
        return f"Range({self.low!r}, {self.high!r}, step={self.step!r})"


Continuous = LogRange | Range
#: A searchable number: one value, an explicit list, a grid, or a continuous range.
Values = float | Sequence[float] | Decades | FineGrid | LogRange | Range


def declare_value(hp: Any, name: str, spec: tuple | Continuous) -> Any:
    """Declares ``name`` for a normalised spec and returns this trial's value.

    A one-value tuple declares nothing; a longer tuple is an ordered ``hp.Choice``.
    """
    if isinstance(spec, (LogRange, Range)):
        return spec.declare(hp, name)
    if len(spec) == 1:
        return spec[0]
    return hp.Choice(name, list(spec))


def is_searched(spec: tuple | Continuous) -> bool:
    """True if ``spec`` declares a hyperparameter."""
    return isinstance(spec, (LogRange, Range)) or len(spec) > 1


def as_choices(value: Any, setting: str, allowed: Sequence[str], where: str) -> tuple[str, ...]:
    """Normalises a name or a list of names, each checked against ``allowed``."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, Sequence) or len(names) == 0:
        raise SettingError(
            setting, f"a name or a non-empty list of names, {one_of(allowed)}", value, where
        )
    for name in names:
        if name not in allowed:
            raise SettingError(setting, one_of(allowed), name, where)
    if len(set(names)) != len(names):
        raise SettingError(setting, "a list without repeats", list(names), where)
    return tuple(names)


def as_numbers(
    value: Any, setting: str, where: str, *, positive: bool = False, below: float | None = None
) -> tuple[float, ...] | Continuous:
    """Normalises a searchable number to a tuple of floats or a continuous range."""
    if isinstance(value, (Decades, FineGrid)):
        numbers: Sequence[Any] = value.values
    elif isinstance(value, (LogRange, Range)):
        if below is not None and value.high >= below:
            raise SettingError(setting, f"a range below {below}", value, where)
        return value
    elif _is_number(value):
        numbers = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
        numbers = value
    else:
        raise SettingError(
            setting,
            "a number, a list of numbers, Decades, FineGrid, LogRange or Range",
            value,
            where,
        )
    for number in numbers:
        if not _is_number(number) or number < 0 or (positive and number == 0):
            raise SettingError(setting, "positive" if positive else "non-negative", number, where)
        if below is not None and number >= below:
            raise SettingError(setting, f"below {below}", number, where)
    if len(set(numbers)) != len(numbers):
        raise SettingError(setting, "a list without repeats", list(numbers), where)
    return tuple(float(n) for n in numbers)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


def _decade_exponent(value: Any, setting: str) -> int:
    if _is_positive_number(value):
        exponent = round(math.log10(value))
        if math.isclose(value, 10.0**exponent, rel_tol=1e-9):
            return exponent
    raise SettingError(setting, "a positive power of ten such as 1e-1", value, "Decades")
