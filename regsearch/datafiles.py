"""A user's own data file as a train/test Split: a .csv or .parquet table, or .npz arrays.

``load_file`` is pure: it reads one file and returns arrays; it never prints or
writes. Every bad input raises a one-line ``SettingError`` naming the setting as
a search file's ``[data]`` table calls it (``file``, ``target``, ``features``,
``test_size``, ``scale``, ``task``, ``random_state``), so that the search-file
layer can prefix it with ``data.``.

When no task is given, the target decides:

- strings, booleans and categoricals are class labels: binary for 2 classes,
  multiclass for more;
- numbers go through scikit-learn's ``type_of_target``: ``"binary"`` (two
  whole-number values) is binary; ``"multiclass"`` (more whole-number values)
  is multiclass when there are at most ``MAX_INFERRED_CLASSES`` distinct values
  and at most half as many as rows, else regression (ages, counts, prices);
  ``"continuous"`` (any value with a fraction) is regression.

Class labels become int32 indices 0..k-1 in sorted order (category order for a
categorical column); ``Split.class_names`` keeps the original labels unless
they already were the integers 0..k-1.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pd_types
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

from regsearch.datasets import TASKS, Split
from regsearch.errors import SettingError, one_of
from regsearch.scaling import Standardization

__all__ = ["EXTENSIONS", "MAX_INFERRED_CLASSES", "SCALES", "load_file"]

EXTENSIONS = (".csv", ".parquet", ".npz")
SCALES = ("none", "standard")
MAX_INFERRED_CLASSES = 20
# The given-split layout is looked for first: a file holding both uses it.
NPZ_LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("x", "y"))
MIN_ROWS = 2  # one training and one test row
_LISTED_COLUMNS = 12  # longer tables are summarized in messages, not listed
_LISTED_VALUES = 5
_TEST_SIZE = "a fraction in (0, 1) or a number of test rows (an int >= 1)"
_MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds up to here
_ZIP_MAGIC = b"PK\x03\x04"  # every .npz is a zip archive


class _Shown(str):
    """A received value written as is: ``got column 'bmi' with 2 missing values.``"""

    def __repr__(self) -> str:
        return str(self)


def load_file(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    features: Sequence[str] | None = None,
    test_size: float | int = 0.3,
    scale: str = "none",
    task: str | None = None,
    random_state: int = 0,
    where: str | None = None,
) -> Split:
    """Reads a table or arrays and splits the rows into seeded train and test rows.

    Args:
        path: A .csv (UTF-8) or .parquet table, or a .npz file holding arrays
            ``x`` and ``y`` (split here) or ``x_train``, ``y_train``, ``x_test``
            and ``y_test`` (used as given: ``test_size`` and ``random_state``
            then play no part). ``x`` may have more than two dimensions.
        target: The label column of a table; refused for .npz.
        features: Input columns of a table, in this order; default every
            column but the target. Refused for .npz.
        test_size: Held-out rows: a fraction in (0, 1) of the rows, rounded
            up, or a number of rows.
        scale: ``"none"``, or ``"standard"``: zero mean and unit variance per
            input value, fitted on the training rows only (``Split.scaling``,
            :mod:`regsearch.scaling`).
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; default
            inferred from the target (module docstring). A given task must fit it.
        random_state: Seed of the shuffled split, which is stratified by class
            for classification.
        where: Where the settings come from, for messages (e.g. the search
            file's path); default ``"load_file"``.

    Returns:
        The split, named after the file: float32 inputs; int32 class indices,
        or float32 values and ``n_classes`` 0 for regression; ``test_rows``
        says which rows of the file are the test rows.

    Raises:
        SettingError: One line for a bad setting, a file that cannot be read,
            or table content regsearch cannot use.
    """
    where = where or "load_file"
    _check_settings(test_size, scale, task, random_state, where)
    file = _check_file(path, where)
    if file.suffix.lower() == ".npz":
        for setting, value in (("target", target), ("features", features)):
            if value is not None:
                allowed = "left out for a .npz file, whose arrays have no column names"
                raise SettingError(setting, allowed, value, where)
        x, labels, n_given_train = _read_npz(file, where)
        feature_names = target_name = None
        label_setting, label_text = "file", "array y"
    else:
        frame = _read_table(file, where)
        target_name, feature_names = _pick_columns(frame, file, target, features, where)
        x = _feature_matrix(frame, feature_names, features is None, where)
        labels = frame[target_name]
        n_given_train = None
        label_setting, label_text = "target", f"column {target_name!r}"
    y, task, n_classes, class_names = _encode_target(labels, task, label_setting, label_text, where)
    rows = np.arange(len(y))
    if n_given_train is None:
        x_train, x_test, y_train, y_test, _, test_rows = _split(
            x, y, rows, n_classes, class_names, test_size, random_state, label_setting, label_text, where
        )
    else:
        x_train, x_test = x[:n_given_train], x[n_given_train:]
        y_train, y_test = y[:n_given_train], y[n_given_train:]
        test_rows = rows[n_given_train:]
    scaling = None
    if scale == "standard":
        # Fitted on the training rows only; the saved model carries it (regsearch.predictor).
        scaling = Standardization.fit(x_train)
        x_train, x_test = scaling.apply(x_train), scaling.apply(x_test)
    return Split(
        name=file.name,
        x_train=x_train.astype(np.float32),
        y_train=y_train,
        x_test=x_test.astype(np.float32),
        y_test=y_test,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        n_classes=n_classes,
        task=task,
        feature_names=feature_names,
        target_name=target_name,
        class_names=class_names,
        scaling=scaling,
        test_rows=test_rows,
    )


def _check_settings(test_size: Any, scale: Any, task: Any, random_state: Any, where: str) -> None:
    if scale not in SCALES:
        raise SettingError("scale", one_of(SCALES), scale, where)
    if task is not None and task not in TASKS:
        raise SettingError("task", f"{one_of(TASKS)} (or left out: inferred from the target)", task, where)
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise SettingError("test_size", _TEST_SIZE, test_size, where)
    if isinstance(test_size, numbers.Integral):
        if test_size < 1:
            raise SettingError("test_size", _TEST_SIZE, test_size, where)
    elif not 0 < test_size < 1:  # also refuses NaN
        raise SettingError("test_size", _TEST_SIZE, test_size, where)
    if (
        isinstance(random_state, bool)
        or not isinstance(random_state, numbers.Integral)
        or not 0 <= random_state <= _MAX_SEED
    ):
        raise SettingError("random_state", f"an int in [0, {_MAX_SEED}]", random_state, where)


def _check_file(path: Any, where: str) -> Path:
    """Returns the path of an existing, readable, non-empty file with a known extension."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise SettingError("file", "the path of a .csv, .parquet or .npz file", path, where)
    file = Path(path)
    shown = repr(str(path))
    if not file.exists():
        place = "" if file.is_absolute() else f" at {file.absolute()}"
        raise SettingError("file", "an existing file", _Shown(f"{shown} (not found{place})"), where)
    if file.is_dir():
        raise SettingError("file", "a file, not a folder", _Shown(f"{shown} (a folder)"), where)
    if file.suffix.lower() not in EXTENSIONS:
        raise SettingError("file", "a file whose name ends in .csv, .parquet or .npz", str(path), where)
    try:
        with file.open("rb") as handle:
            empty = not handle.read(1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SettingError("file", "a file regsearch can read", _Shown(f"{shown} ({reason})"), where) from error
    if empty:
        raise SettingError("file", _content(file), _Shown(f"{shown} (an empty file)"), where)
    return file


def _content(file: Path) -> str:
    """What a file of this kind must hold, for messages."""
    return {
        ".csv": f"a UTF-8 .csv table with a header row and at least {MIN_ROWS} data rows",
        ".parquet": f"a .parquet table with at least {MIN_ROWS} rows",
        ".npz": f"a .npz file holding arrays x and y (or x_train, y_train, x_test and y_test) "
        f"of at least {MIN_ROWS} rows",
    }[file.suffix.lower()]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _read_table(file: Path, where: str) -> pd.DataFrame:
    shown = repr(str(file))
    try:
        if file.suffix.lower() == ".csv":
            frame = pd.read_csv(file, encoding="utf-8")  # pandas drops a byte-order mark
        else:
            frame = pd.read_parquet(file)
    except UnicodeDecodeError:
        raise SettingError("file", _content(file), _Shown(f"{shown} ({_not_utf8(file)})"), where) from None
    except pd.errors.EmptyDataError:
        raise SettingError("file", _content(file), _Shown(f"{shown} (no header row)"), where) from None
    except (OSError, ValueError, NotImplementedError) as error:
        # pandas' ParserError and pyarrow's ArrowInvalid are ValueErrors.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else _first_line(error)
        raise SettingError("file", _content(file), _Shown(f"{shown} ({reason})"), where) from error
    _check_rows(len(frame), file, where)
    return frame


def _not_utf8(file: Path) -> str:
    """Says where the first byte that is not UTF-8 is; pandas' own position is per chunk."""
    data = file.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return f"byte 0x{data[error.start]:02x} on line {line} is not UTF-8"
    return "not UTF-8"


def _check_rows(n_rows: int, file: Path, where: str) -> None:
    if n_rows < MIN_ROWS:
        rows = "no data rows" if n_rows == 0 else f"{_count(n_rows, 'row')}"
        raise SettingError("file", _content(file), _Shown(f"{str(file)!r} ({rows})"), where)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _columns_text(columns: list[Any], file: Path) -> str:
    if len(columns) <= _LISTED_COLUMNS:
        return one_of(columns)
    head = ", ".join(repr(c) for c in columns[:_LISTED_VALUES])
    return f"one of the {len(columns)} columns of {file.name} ({head}, ..., {columns[-1]!r})"


def _with_hint(value: Any, columns: list[Any]) -> Any:
    """The received name, with the nearest column name when one is close."""
    if not isinstance(value, str):
        return value
    names = [str(c) for c in columns]
    close = difflib.get_close_matches(value, names, n=1) or difflib.get_close_matches(
        value.lower(), names, n=1
    )
    return _Shown(f"{value!r} (did you mean {close[0]!r}?)") if close else value


def _pick_columns(
    frame: pd.DataFrame, file: Path, target: Any, features: Any, where: str
) -> tuple[str, tuple[str, ...]]:
    """Returns the target column and the feature columns, checked against the table."""
    columns = list(frame.columns)
    listing = _columns_text(columns, file)
    if not isinstance(target, str) or target not in columns:
        raise SettingError("target", f"the name of a column, {listing}", _with_hint(target, columns), where)
    if features is None:
        chosen = [c for c in columns if c != target]
        if not chosen:
            only = _Shown(f"{str(file)!r} (only the target column {target!r})")
            raise SettingError("file", "a table with feature columns besides the target", only, where)
        return target, tuple(str(c) for c in chosen)
    if (
        isinstance(features, str)
        or not isinstance(features, (list, tuple))
        or not features
        or not all(isinstance(name, str) for name in features)
    ):
        allowed = "a non-empty list of column names (or left out: every column but the target)"
        raise SettingError("features", allowed, features, where)
    if target in features:
        raise SettingError("features", f"columns other than the target {target!r}", list(features), where)
    for name in features:
        if name not in columns:
            raise SettingError("features", f"column names, each {listing}", _with_hint(name, columns), where)
    repeated = next((name for i, name in enumerate(features) if name in features[:i]), None)
    if repeated is not None:
        twice = _Shown(f"{list(features)!r} ({repeated!r} twice)")
        raise SettingError("features", "a list of distinct column names", twice, where)
    return target, tuple(features)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages and class names."""
    return value.item() if isinstance(value, np.generic) else value


def _feature_matrix(frame: pd.DataFrame, names: tuple[str, ...], defaulted: bool, where: str) -> np.ndarray:
    """The feature columns as a float64 matrix, refusing text and missing cells."""
    # When features were left out, the user may not know a text column was taken.
    hint = " (features left out takes every column but the target: list the numeric ones)" if defaulted else ""
    matrix = []
    for name in names:
        column = frame[name]
        if pd_types.is_bool_dtype(column):
            column = column.astype(np.float64)
        elif not pd_types.is_numeric_dtype(column):
            numeric = pd.to_numeric(column, errors="coerce")
            bad = numeric.isna() & column.notna()
            if bad.any():
                example = _plain(column[bad].iloc[0])
                got = f"column {name!r} with {_count(int(bad.sum()), 'non-numeric value')}, e.g. {example!r}"
                raise SettingError("features", f"columns of numbers{hint}", _Shown(got), where)
            column = numeric
        missing = int(column.isna().sum())
        if missing:
            got = f"column {name!r} with {_count(missing, 'missing value')}"
            raise SettingError("features", f"columns without missing values{hint}", _Shown(got), where)
        values = column.to_numpy(dtype=np.float64)
        infinite = int(np.isinf(values).sum())
        if infinite:
            got = f"column {name!r} with {_count(infinite, 'infinite value')}"
            raise SettingError("features", f"columns of finite numbers{hint}", _Shown(got), where)
        matrix.append(values)
    return np.column_stack(matrix)


def _read_npz(file: Path, where: str) -> tuple[np.ndarray, pd.Series, int | None]:
    """Returns x, y and the number of given training rows (None: split here)."""
    shown = repr(str(file))
    with file.open("rb") as handle:
        magic = handle.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        # np.load would take any other file (a .npy, text) for pickled data, which misleads.
        not_zip = _Shown(f"{shown} (not a zip archive as np.savez writes)")
        raise SettingError("file", _content(file), not_zip, where)
    try:
        with np.load(file, allow_pickle=False) as loaded:
            names = list(loaded.files)
            layout = next((keys for keys in NPZ_LAYOUTS if set(keys) <= set(names)), ())
            arrays = {key: loaded[key] for key in layout}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # Pickled object arrays are refused here (ValueError): loading them runs code.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else _first_line(error)
        raise SettingError("file", _content(file), _Shown(f"{shown} ({reason})"), where) from error
    if not layout:
        held = f"arrays {', '.join(names)}" if names else "no arrays"
        raise SettingError("file", _content(file), _Shown(f"{shown} (holds {held})"), where)
    pairs = [(layout[i], layout[i + 1]) for i in range(0, len(layout), 2)]
    xs, ys = [], []
    for x_name, y_name in pairs:
        x, y = arrays[x_name], arrays[y_name]
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        problem = None
        if x.dtype.kind not in "biuf":
            problem = f"{x_name} of dtype {x.dtype}, not numbers"
        elif x.ndim < 2:
            problem = f"{x_name} of shape {x.shape}: one row per sample needs 2 dimensions or more"
        elif y.ndim != 1:
            problem = f"{y_name} of shape {y.shape}: one label per row needs 1 dimension"
        elif len(x) != len(y):
            problem = f"{x_name} of {_count(len(x), 'row')} but {y_name} of {len(y)}"
        elif x.dtype.kind == "f" and not np.isfinite(x).all():
            problem = f"{_count(int((~np.isfinite(x)).sum()), 'NaN or infinite value')} in {x_name}"
        if problem:
            raise SettingError("file", _content(file), _Shown(f"{shown} ({problem})"), where)
        xs.append(x)
        ys.append(y)
    if len(xs) == 2:
        if xs[0].shape[1:] != xs[1].shape[1:]:
            problem = f"x_train rows of shape {xs[0].shape[1:]} but x_test rows of shape {xs[1].shape[1:]}"
            raise SettingError("file", _content(file), _Shown(f"{shown} ({problem})"), where)
        if not len(xs[0]) or not len(xs[1]):
            problem = f"{len(xs[0])} training rows and {len(xs[1])} test rows"
            raise SettingError("file", _content(file), _Shown(f"{shown} ({problem})"), where)
    x = np.concatenate(xs).astype(np.float64)
    _check_rows(len(x), file, where)
    return x, pd.Series(np.concatenate(ys)), len(xs[0]) if len(xs) == 2 else None


def _classes(labels: pd.Series) -> list[Any]:
    """The distinct labels in class-index order: sorted, or a categorical's own order."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        present = set(labels.unique())
        return [_plain(c) for c in labels.cat.categories if c in present]
    values = [_plain(v) for v in labels.unique()]
    try:
        return sorted(values)
    except TypeError:  # mixed kinds of labels
        return sorted(values, key=str)


def _show(values: list[Any]) -> str:
    shown = ", ".join(f"{v:.6g}" if isinstance(v, float) else repr(v) for v in values[:_LISTED_VALUES])
    return shown if len(values) <= _LISTED_VALUES else f"{shown}, ..."


def _encode_target(
    labels: pd.Series, task: str | None, setting: str, label_text: str, where: str
) -> tuple[np.ndarray, str, int, tuple[Any, ...] | None]:
    """Infers or checks the task; returns labels, task, n_classes (0: regression), class names."""
    missing = int(labels.isna().sum())
    if missing:
        got = _Shown(f"{label_text} with {_count(missing, 'missing value')}")
        raise SettingError(setting, "labels without missing values", got, where)
    if pd_types.is_bool_dtype(labels) or not pd_types.is_numeric_dtype(labels):
        kind = "labels"
    else:
        values = labels.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            got = _Shown(f"{label_text} with {_count(int(np.isinf(values).sum()), 'infinite value')}")
            raise SettingError(setting, "finite numbers or labels", got, where)
        with warnings.catch_warnings():
            # type_of_target warns when most values are distinct: the rule below handles that.
            warnings.simplefilter("ignore")
            kind = type_of_target(values)  # "binary", "multiclass" or "continuous"
    classes = _classes(labels)
    # Whole numbers read as 1.0 are shown and kept as the class 1.
    names = [int(c) for c in classes] if kind in ("binary", "multiclass") else classes
    n = len(classes)
    if task is None:
        if kind in ("labels", "binary"):
            task = "binary" if n == 2 else "multiclass"
        elif kind == "multiclass" and n <= MAX_INFERRED_CLASSES and 2 * n <= len(labels):
            task = "multiclass"
        else:
            task = "regression"
    if task != "regression" and n < 2:
        got = _Shown(f"{label_text} with the single value {names[0]!r}")
        raise SettingError(setting, "labels of at least 2 classes", got, where)
    fitting = {
        "labels": ("binary", "multiclass") if n == 2 else ("multiclass",),
        "binary": TASKS,
        "multiclass": ("multiclass", "regression"),
        "continuous": ("binary", "regression") if n == 2 else ("regression",),
    }[kind]
    if task not in fitting:
        if kind == "continuous":
            what = "distinct values with fractions"
        else:
            what = "classes" if kind == "labels" or n <= MAX_INFERRED_CLASSES else "distinct values"
        allowed = one_of(fitting) if len(fitting) > 1 else repr(fitting[0])
        held = f"{label_text}, which holds {n} {what} ({_show(names)})"
        raise SettingError("task", f"{allowed} for {held}", task, where)
    if task == "regression":
        return labels.to_numpy(dtype=np.float32), task, 0, None
    codes = pd.Categorical(labels, categories=classes).codes.astype(np.int32)
    if kind != "labels" and names == list(range(n)):
        return codes, task, n, None
    return codes, task, n, tuple(names)


def _split(
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    n_classes: int,
    class_names: tuple[Any, ...] | None,
    test_size: float | int,
    random_state: int,
    label_setting: str,
    label_text: str,
    where: str,
) -> list[np.ndarray]:
    """train_test_split of x, y and the row positions, stratified for classes, after checking it can be done."""
    n = len(y)
    if n_classes:
        counts = np.bincount(y, minlength=n_classes)
        rarest = int(np.argmin(counts))
        if counts[rarest] < 2:
            name = class_names[rarest] if class_names else rarest
            got = _Shown(f"{label_text} with class {name!r} in {_count(int(counts[rarest]), 'row')}")
            allowed = "labels with at least 2 rows of every class (the split keeps each class in train and test)"
            raise SettingError(label_setting, allowed, got, where)
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
    else:
        test_size = float(test_size)
        n_test = math.ceil(test_size * n)  # as train_test_split rounds
    n_train = n - n_test
    least = max(n_classes, 1)
    if n_test < least or n_train < least:
        per_class = " (one per class)" if n_classes else ""
        rows = f"{_count(least, 'training row')} and {_count(least, 'test row')}{per_class}"
        allowed = f"a size that leaves at least {rows} of the {n}"
        if n_train < 0:
            got = _Shown(f"{test_size!r} (the file has {_count(n, 'row')})")
        else:
            got = _Shown(f"{test_size!r} ({_count(n_train, 'training row')}, {_count(n_test, 'test row')})")
        raise SettingError("test_size", allowed, got, where)
    return train_test_split(
        x, y, rows, test_size=test_size, random_state=int(random_state), stratify=y if n_classes else None
    )
