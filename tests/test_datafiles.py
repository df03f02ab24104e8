"""Tests for regsearch.datafiles: a user's csv, parquet or npz file as a Split.

Tables are scikit-learn's bundled wine (3 classes), breast cancer (2 classes)
and diabetes (regression) data, written to files here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets as sk_datasets

from regsearch.datafiles import load_file
from regsearch.datasets import Split, load_dataset
from regsearch.errors import SettingError

WINE_NAMES = {0: "barolo", 1: "grignolino", 2: "barbera"}  # 59, 71 and 48 rows


def _frame(loader: Callable[..., Any]) -> pd.DataFrame:
    return loader(as_frame=True).frame  # the features, then a "target" column


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return _frame(sk_datasets.load_wine)


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return _frame(sk_datasets.load_breast_cancer)


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return _frame(sk_datasets.load_diabetes)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _rows(x: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(row) for row in np.asarray(x, dtype=np.float32)}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_wine_table_shapes_dtypes_and_names(wine: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    split = load_file(_write(wine, tmp_path / f"wine{suffix}"), target="target")
    assert isinstance(split, Split)
    assert split.name == f"wine{suffix}"
    # 0.3 of 178 rows, rounded up as train_test_split does: 54 test rows.
    assert (split.n_train, split.n_test) == (124, 54)
    assert split.x_train.shape == (124, 13) and split.x_test.shape == (54, 13)
    assert split.input_shape == (13,)
    assert split.x_train.dtype == np.float32 and split.x_test.dtype == np.float32
    assert split.y_train.dtype == np.int32 and split.y_test.dtype == np.int32
    assert (split.task, split.n_classes) == ("multiclass", 3)
    assert split.feature_names == tuple(wine.columns[:-1])
    assert split.target_name == "target"
    assert split.class_names is None  # the labels already were 0, 1, 2
    # scale="none" keeps the values: every row is a row of the table.
    assert _rows(np.concatenate([split.x_train, split.x_test])) == _rows(wine.iloc[:, :-1].to_numpy())


def test_csv_and_parquet_give_the_same_split(wine: pd.DataFrame, tmp_path: Path) -> None:
    from_csv = load_file(_write(wine, tmp_path / "wine.csv"), target="target")
    from_parquet = load_file(_write(wine, tmp_path / "wine.parquet"), target="target")
    np.testing.assert_allclose(from_csv.x_train, from_parquet.x_train, rtol=1e-6)
    np.testing.assert_array_equal(from_csv.y_test, from_parquet.y_test)


@pytest.mark.parametrize(
    ("table", "task", "n_classes"),
    [("wine", "multiclass", 3), ("cancer", "binary", 2), ("diabetes", "regression", 0)],
)
def test_task_is_inferred_from_the_target(
    request: pytest.FixtureRequest, tmp_path: Path, table: str, task: str, n_classes: int
) -> None:
    frame = request.getfixturevalue(table)
    split = load_file(_write(frame, tmp_path / "data.csv"), target="target")
    assert (split.task, split.n_classes) == (task, n_classes)
    if task == "regression":
        # diabetes holds whole numbers, but 214 distinct ones: a quantity, not classes.
        assert split.y_train.dtype == np.float32 and split.class_names is None
        values = set(frame["target"].astype(np.float32))
        assert set(split.y_train) | set(split.y_test) == values
    else:
        assert split.y_train.dtype == np.int32
        assert set(split.y_train) == set(range(n_classes))


@pytest.mark.parametrize(
    ("labels", "task", "class_names"),
    [
        ([True, False] * 10, "binary", (False, True)),
        (["yes", "no"] * 10, "binary", ("no", "yes")),
        ([3, 7, 9, 3] * 5, "multiclass", (3, 7, 9)),  # not 0..k-1: kept
        ([1.0, 2.0] * 10, "binary", (1, 2)),  # whole numbers as floats are the ints
        ([0, 1, 2, 3] * 5, "multiclass", None),
        # 11 distinct whole numbers in 20 rows: more than half, so a quantity.
        (list(range(11)) + [0] * 9, "regression", None),
        ([0.5, 1.5] * 10, "regression", None),  # fractions
    ],
)
def test_inference_rule_on_small_targets(
    tmp_path: Path, labels: list, task: str, class_names: tuple | None
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=len(labels)), "y": labels})
    split = load_file(_write(frame, tmp_path / "small.parquet"), target="y", test_size=0.5)
    assert split.task == task
    assert split.class_names == class_names
    if class_names is not None:
        assert split.n_classes == len(class_names)
        # (1.0, 2.0) == (1, 2): the types tell whole-number floats became ints.
        assert [type(c) for c in split.class_names] == [type(c) for c in class_names]


def test_a_byte_order_mark_does_not_stick_to_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"  # Excel's "CSV UTF-8" starts with a byte-order mark
    path.write_text("y,a\n" + "".join(f"{i % 2},{i}\n" for i in range(10)), encoding="utf-8-sig")
    split = load_file(path, target="y")
    assert (split.target_name, split.feature_names, split.task) == ("y", ("a",), "binary")


def test_string_labels_become_indices_in_sorted_order(wine: pd.DataFrame, tmp_path: Path) -> None:
    named = wine.assign(target=wine["target"].map(WINE_NAMES))
    split = load_file(_write(named, tmp_path / "wine.csv"), target="target")
    assert split.class_names == ("barbera", "barolo", "grignolino")
    assert split.task == "multiclass" and split.y_train.dtype == np.int32
    label_of_row = dict(zip(map(tuple, named.iloc[:, :-1].to_numpy(np.float32)), named["target"]))
    for x, y in ((split.x_train, split.y_train), (split.x_test, split.y_test)):
        found = [label_of_row[tuple(row)] for row in x]
        assert found == [split.class_names[index] for index in y]


@pytest.mark.parametrize("table", ["wine", "cancer"])
@pytest.mark.parametrize("random_state", [0, 1, 2])
def test_classification_split_is_stratified(
    request: pytest.FixtureRequest, tmp_path: Path, table: str, random_state: int
) -> None:
    frame = request.getfixturevalue(table)
    split = load_file(_write(frame, tmp_path / "data.csv"), target="target", random_state=random_state)
    share = np.bincount(frame["target"]) / len(frame)
    # Every class keeps its share in both parts, to within one row.
    for y in (split.y_train, split.y_test):
        np.testing.assert_allclose(np.bincount(y, minlength=len(share)), share * len(y), atol=1.0)


def test_standard_scaling_is_fitted_on_the_training_rows_only(
    cancer: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(cancer, tmp_path / "cancer.csv")
    raw = load_file(path, target="target")
    scaled = load_file(path, target="target", scale="standard")
    np.testing.assert_array_equal(raw.y_train, scaled.y_train)  # the same rows
    np.testing.assert_allclose(scaled.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.std(axis=0), 1.0, atol=1e-4)
    # The test rows get the training rows' mean and spread, so theirs are off.
    assert np.abs(scaled.x_test.mean(axis=0)).max() > 0.05
    mean = raw.x_train.astype(np.float64).mean(axis=0)
    std = raw.x_train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(scaled.x_test, (raw.x_test - mean) / std, rtol=1e-4, atol=1e-4)
    assert scaled.x_train.dtype == np.float32 and scaled.x_test.dtype == np.float32


def test_features_subset_in_the_given_order(wine: pd.DataFrame, tmp_path: Path) -> None:
    columns = ["proline", "alcohol", "hue"]
    split = load_file(_write(wine, tmp_path / "wine.csv"), target="target", features=columns)
    assert split.feature_names == tuple(columns)
    assert split.input_shape == (3,)
    assert _rows(np.concatenate([split.x_train, split.x_test])) == _rows(wine[columns].to_numpy())


def test_test_size_as_a_number_of_rows(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    split = load_file(_write(diabetes, tmp_path / "d.csv"), target="target", test_size=100)
    assert (split.n_train, split.n_test) == (342, 100)


def test_same_seed_same_split_other_seed_other_split(wine: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(wine, tmp_path / "wine.csv")
    first, again = load_file(path, target="target"), load_file(path, target="target")
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    other = load_file(path, target="target", random_state=1)
    assert _rows(first.x_test) != _rows(other.x_test)


def test_npz_with_x_and_y_is_split_here(cancer: pd.DataFrame, tmp_path: Path) -> None:
    x, y = cancer.iloc[:, :-1].to_numpy(), cancer["target"].to_numpy()
    np.savez(tmp_path / "cancer.npz", x=x, y=y)
    split = load_file(tmp_path / "cancer.npz", test_size=0.25, scale="standard")
    assert (split.n_train, split.n_test) == (426, 143)
    assert (split.task, split.n_classes) == ("binary", 2)
    assert split.feature_names is None and split.target_name is None
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0.0, atol=1e-5)
    from_csv = load_file(_write(cancer, tmp_path / "c.csv"), target="target", test_size=0.25)
    np.testing.assert_array_equal(split.y_test, from_csv.y_test)  # the same seeded split


def test_npz_with_a_given_split_keeps_it_and_images_keep_their_shape(tmp_path: Path) -> None:
    digits = sk_datasets.load_digits()
    images = digits.images[:300, :, :, np.newaxis]
    labels = digits.target[:300]
    np.savez(
        tmp_path / "digits.npz",
        x_train=images[:200],
        y_train=labels[:200],
        x_test=images[200:],
        y_test=labels[200:],
    )
    split = load_file(tmp_path / "digits.npz", test_size=0.5, random_state=3)
    assert split.input_shape == (8, 8, 1)
    np.testing.assert_array_equal(split.x_train, images[:200].astype(np.float32))
    np.testing.assert_array_equal(split.x_test, images[200:].astype(np.float32))
    np.testing.assert_array_equal(split.y_train, labels[:200])
    np.testing.assert_array_equal(split.y_test, labels[200:])
    assert (split.task, split.n_classes) == ("multiclass", 10)
    scaled = load_file(tmp_path / "digits.npz", scale="standard")
    assert scaled.x_train.shape == (200, 8, 8, 1)
    pixels = scaled.x_train.reshape(200, -1)
    varying = images[:200].reshape(200, -1).std(axis=0) > 0
    np.testing.assert_allclose(pixels.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(pixels[:, varying].std(axis=0), 1.0, atol=1e-4)


def test_named_datasets_are_classification_splits() -> None:
    assert load_dataset("moons").task == "binary"
    digits = load_dataset("digits", n_samples=50, train_size=25)
    assert digits.task == "multiclass"
    assert digits.feature_names is None and digits.target_name is None and digits.class_names is None


def test_a_given_task_that_fits_the_target_is_used(wine: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(wine, tmp_path / "wine.csv")
    split = load_file(path, target="target", task="regression")
    assert (split.task, split.n_classes, split.y_train.dtype) == ("regression", 0, np.float32)
    cancer_path = _write(_frame(sk_datasets.load_breast_cancer), tmp_path / "cancer.csv")
    two = load_file(cancer_path, target="target", task="multiclass")
    assert (two.task, two.n_classes) == ("multiclass", 2)


# --- bad input: one line naming the setting, where, the allowed values and what came ---

TABLE = "a,b,y\n" + "".join(f"{i},{i % 3},{'pq'[i % 2]}\n" for i in range(10))


def _text(name: str, text: str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


def _parquet(frame: pd.DataFrame) -> Callable[[Path], Path]:
    return lambda folder: _write(frame, folder / "t.parquet")


def _npz(**arrays: np.ndarray) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        np.savez(folder / "a.npz", **arrays)
        return folder / "a.npz"

    return write


def _folder(folder: Path) -> Path:
    (folder / "data.csv").mkdir()
    return folder / "data.csv"


def _wine_csv(folder: Path) -> Path:
    return _write(_frame(sk_datasets.load_wine), folder / "wine.csv")


X20 = np.arange(40.0).reshape(20, 2)
Y20 = np.arange(20) % 2

BAD = [
    # (id, file, arguments, setting, fragments of the message)
    ("missing file", lambda f: f / "nope.csv", {"target": "y"}, "file", ["an existing file", "nope.csv' (not found)."]),
    ("folder", _folder, {"target": "y"}, "file", ["not a folder", "(a folder)"]),
    ("not utf-8", _text("t.csv", "a,y\ncafé,1\nthé,2\n", "latin-1"), {"target": "y"}, "file",
     ["UTF-8", "byte 0xe9 on line 2 is not UTF-8"]),
    ("unknown extension", _text("t.xlsx", TABLE), {"target": "y"}, "file",
     [".csv, .parquet or .npz", "got '"]),
    ("empty file", _text("t.csv", ""), {"target": "y"}, "file", ["header row", "(an empty file)"]),
    ("blank file", _text("t.csv", "\n\n"), {"target": "y"}, "file", ["(no header row)"]),
    ("header only", _text("t.csv", "a,y\n"), {"target": "y"}, "file", ["at least 2 data rows", "(no data rows)"]),
    ("one row", _text("t.csv", "a,y\n1,2\n"), {"target": "y"}, "file", ["(1 row)"]),
    ("no rows parquet", _parquet(pd.DataFrame({"a": [], "y": []})), {"target": "y"}, "file", ["(no data rows)"]),
    ("ragged csv", _text("t.csv", "a,y\n1,2\n1,2,3,4\n"), {"target": "y"}, "file", ["Expected 2 fields"]),
    ("not parquet", _text("t.parquet", TABLE), {"target": "y"}, "file", [".parquet table", "got '"]),
    ("target missing column", _text("t.csv", TABLE), {"target": "yy"}, "target",
     ["one of 'a', 'b', 'y'", "got 'yy' (did you mean 'y'?)"]),
    ("target in a long table", _wine_csv, {"target": "Proline"}, "target",
     ["one of the 14 columns of wine.csv ('alcohol'", "'target')", "did you mean 'proline'?"]),
    ("target left out", _text("t.csv", TABLE), {}, "target", ["the name of a column", "got None."]),
    ("feature missing column", _text("t.csv", TABLE), {"target": "y", "features": ["a", "bb"]}, "features",
     ["one of 'a', 'b', 'y'", "got 'bb' (did you mean 'b'?)"]),
    ("target among features", _text("t.csv", TABLE), {"target": "y", "features": ["a", "y"]}, "features",
     ["columns other than the target 'y'", "got ['a', 'y']"]),
    ("features a string", _text("t.csv", TABLE), {"target": "y", "features": "a"}, "features",
     ["a non-empty list of column names", "got 'a'"]),
    ("features repeated", _text("t.csv", TABLE), {"target": "y", "features": ["a", "a"]}, "features",
     ["distinct", "('a' twice)"]),
    ("only the target", _text("t.csv", "y\n1\n2\n"), {"target": "y"}, "file", ["feature columns", "only the target"]),
    ("non-numeric feature", _text("t.csv", "a,b,y\n1,x1,0\n2,3,1\n3,x2,0\n4,5,1\n"), {"target": "y"}, "features",
     ["columns of numbers", "column 'b' with 2 non-numeric values, e.g. 'x1'", "features left out"]),
    ("missing feature", _text("t.csv", "a,b,y\n1,,0\n2,3,1\n3,4,0\n4,5,1\n"), {"target": "y"}, "features",
     ["without missing values", "column 'b' with 1 missing value"]),
    ("infinite feature", _parquet(pd.DataFrame({"a": [1.0, np.inf, 2, 3], "y": [0, 1, 0, 1]})), {"target": "y"},
     "features", ["finite numbers", "column 'a' with 1 infinite value"]),
    ("missing target", _text("t.csv", "a,y\n1,p\n2,\n3,q\n4,\n5,p\n"), {"target": "y"}, "target",
     ["without missing values", "column 'y' with 2 missing values"]),
    ("single class", _text("t.csv", "a,y\n1,p\n2,p\n3,p\n"), {"target": "y"}, "target",
     ["at least 2 classes", "the single value 'p'"]),
    ("test_size 1.5", _text("t.csv", TABLE), {"target": "y", "test_size": 1.5}, "test_size",
     ["a fraction in (0, 1) or a number of test rows", "got 1.5."]),
    ("test_size 0", _text("t.csv", TABLE), {"target": "y", "test_size": 0}, "test_size", ["got 0."]),
    ("test_size text", _text("t.csv", TABLE), {"target": "y", "test_size": "0.3"}, "test_size", ["got '0.3'."]),
    ("test_size bool", _text("t.csv", TABLE), {"target": "y", "test_size": True}, "test_size", ["got True."]),
    ("test_size all rows", _text("t.csv", TABLE), {"target": "y", "test_size": 10}, "test_size",
     ["at least 2 training rows and 2 test rows (one per class) of the 10", "got 10 (0 training rows, 10 test rows)"]),
    ("test_size too many", _text("t.csv", TABLE), {"target": "y", "test_size": 50}, "test_size",
     ["got 50 (the file has 10 rows)"]),
    ("too few test rows", _text("t.csv", TABLE), {"target": "y", "test_size": 0.05}, "test_size",
     ["at least 2 training rows and 2 test rows (one per class)", "got 0.05 (9 training rows, 1 test row)"]),
    ("too few training rows", _npz(x=X20, y=Y20), {"test_size": 0.95}, "test_size",
     ["got 0.95 (1 training row, 19 test rows)"]),
    ("class of one row", _text("t.csv", "a,y\n1,p\n2,p\n3,q\n4,q\n5,r\n"), {"target": "y"}, "target",
     ["at least 2 rows of every class", "column 'y' with class 'r' in 1 row"]),
    ("scale", _text("t.csv", TABLE), {"target": "y", "scale": "minmax"}, "scale",
     ["one of 'none', 'standard'", "got 'minmax'."]),
    ("task unknown", _text("t.csv", TABLE), {"target": "y", "task": "classification"}, "task",
     ["one of 'binary', 'multiclass', 'regression'", "got 'classification'."]),
    ("binary with 3 classes", _text("t.csv", TABLE), {"target": "b", "features": ["a"], "task": "binary"},
     "task", ["one of 'multiclass', 'regression' for column 'b', which holds 3 classes (0, 1, 2)", "got 'binary'."]),
    ("binary with 3 labels", _text("t.csv", "a,y\n1,p\n2,q\n3,r\n4,p\n"), {"target": "y", "task": "binary"}, "task",
     ["'multiclass' for column 'y', which holds 3 classes ('p', 'q', 'r')", "got 'binary'."]),
    ("regression of labels", _text("t.csv", TABLE), {"target": "y", "task": "regression"}, "task",
     ["one of 'binary', 'multiclass' for column 'y'", "got 'regression'."]),
    ("multiclass of fractions", _npz(x=X20, y=np.linspace(0, 1, 20)), {"task": "multiclass"}, "task",
     ["'regression' for array y, which holds 20 distinct values with fractions (0, 0.0526316,", "got 'multiclass'."]),
    ("random_state", _text("t.csv", TABLE), {"target": "y", "random_state": "a"}, "random_state",
     ["an int in [0, 4294967295]", "got 'a'."]),
    ("target for npz", _npz(x=X20, y=Y20), {"target": "y"}, "target", ["left out for a .npz file", "got 'y'."]),
    ("features for npz", _npz(x=X20, y=Y20), {"features": ["a"]}, "features", ["left out for a .npz file"]),
    ("npz keys", _npz(inputs=X20, labels=Y20), {}, "file",
     ["arrays x and y (or x_train, y_train, x_test and y_test)", "(holds arrays inputs, labels)"]),
    ("npz lengths", _npz(x=X20, y=Y20[:15]), {}, "file", ["(x of 20 rows but y of 15)"]),
    ("npz 1-D x", _npz(x=np.arange(20.0), y=Y20), {}, "file", ["x of shape (20,)"]),
    ("npz NaN", _npz(x=np.where(X20 > 30, np.nan, X20), y=Y20), {}, "file", ["9 NaN or infinite values in x"]),
    ("npz no rows", _npz(x=np.zeros((0, 2)), y=np.zeros(0)), {}, "file", ["(no data rows)"]),
    ("npz empty test", _npz(x_train=X20, y_train=Y20, x_test=X20[:0], y_test=Y20[:0]), {}, "file",
     ["20 training rows and 0 test rows"]),
    ("npz not a zip", _text("a.npz", TABLE), {}, "file", [".npz file holding arrays", "(not a zip archive"]),
    ("npy as npz", lambda f: (np.save(f / "a.npy", X20), (f / "a.npy").rename(f / "a.npz"))[1], {}, "file",
     ["(not a zip archive"]),
    ("npz of objects", _npz(x=X20, y=np.array([{"a": 1}] * 20, dtype=object)), {}, "file", ["allow_pickle"]),
]


@pytest.mark.parametrize(("make", "arguments", "setting", "fragments"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_input_is_one_line_naming_the_setting(
    tmp_path: Path, make: Callable[[Path], Path], arguments: dict, setting: str, fragments: list[str]
) -> None:
    path = make(tmp_path)
    with pytest.raises(SettingError) as caught:
        load_file(path, where="search.toml", **arguments)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"search.toml: '{setting}' must be ")
    assert caught.value.setting == setting
    assert "; got " in message and message.endswith(".")
    for fragment in fragments:
        assert fragment in message


def test_unreadable_file_is_one_line(
    wine: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(wine, tmp_path / "wine.csv")

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    # Tests run as root here and there, where chmod 000 does not stop reading.
    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(SettingError) as caught:
        load_file(path, target="target")
    message = str(caught.value)
    assert message == f"load_file: 'file' must be a file regsearch can read; got '{path}' (Permission denied)."


def test_a_missing_relative_path_says_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingError) as caught:
        load_file("data/nope.csv", target="y")
    assert str(caught.value) == (
        "load_file: 'file' must be an existing file; "
        f"got 'data/nope.csv' (not found at {tmp_path / 'data' / 'nope.csv'})."
    )


def test_messages_name_load_file_when_no_where_is_given(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match=r"^load_file: 'scale' must be one of 'none', 'standard'; got 'z'\.$"):
        load_file(tmp_path / "any.csv", scale="z")
