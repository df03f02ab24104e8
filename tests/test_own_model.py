"""A user's own saved model and table of data, through a search file and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from regsearch.cli import main
from safe_load import load_without_regsearch

SEARCH = """\
description = "L2 on both hidden layers of my own model, on the breast cancer table"

[data]
file = "cancer.csv"
target = "diagnosis"
test_size = 0.3
scale = "standard"

[model]
file = "my_model.keras"
layers = ["dense_1", "dense_2"]

[space.regularizer]
kinds = ["l2"]
strengths = { decades = [1e-1, 1e-3] }

[search]
strategy = "coarse_to_fine"
fine_points = 2
repeats = 2  # two seeds that must differ, and cheap (the default is 5)

[training]
epochs = 3  # bookkeeping: which phases, seeds and layers ran, not how well they learned

[early_stopping]
patience = 1
"""


def cancer_table(rows: int | None = None) -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.drop(columns="target").iloc[:, :6]
    frame["diagnosis"] = np.where(bunch.target == 0, "malignant", "benign")
    return frame if rows is None else frame.iloc[:rows]


def own_model(outputs: int = 1, features: int = 6) -> keras.Model:
    """A functional model of the user's: two hidden Dense layers and a BatchNormalization."""
    inputs = keras.Input((features,), name="features")
    h = keras.layers.Dense(16, activation="relu", name="dense_1")(inputs)
    h = keras.layers.BatchNormalization(name="batch_norm")(h)
    h = keras.layers.Dense(8, activation="relu", name="dense_2")(h)
    activation = "sigmoid" if outputs == 1 else "softmax"
    model = keras.Model(inputs, keras.layers.Dense(outputs, activation=activation, name="diagnosis")(h))
    model.compile("adam", "binary_crossentropy" if outputs == 1 else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture
def project(tmp_path: Path) -> Path:
    cancer_table().to_csv(tmp_path / "cancer.csv", index=False)
    own_model().save(tmp_path / "my_model.keras")
    (tmp_path / "my_search.toml").write_text(SEARCH)
    return tmp_path


@pytest.mark.slow
def test_own_model_and_csv_run_end_to_end_and_write_every_output(project: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    results = project / "results"
    monkeypatch.chdir(project)  # the file names in the search file are relative to it, as a user runs it
    assert main([str(project / "my_search.toml"), "--results", str(results), "--quiet"]) == 0
    folder = results / "my_search"
    for name in ("trials.csv", "summary.csv", "summary.md", "accuracy_vs_strength.png", "learning_curves.png",
                 "best_model.keras", "search.toml"):
        assert (folder / name).is_file(), name
    trials = pd.read_csv(folder / "trials.csv")
    assert set(trials["phase"]) == {"coarse", "fine", "baseline"}
    assert (trials["status"] == "completed").all()
    assert set(trials["param_layers"]) == {"dense_1, dense_2"}
    coarse = trials[trials["phase"] == "coarse"]
    assert sorted(coarse["param_strength"]) == [1e-3, 1e-3, 1e-2, 1e-2, 1e-1, 1e-1]  # two seeds each
    assert (coarse.groupby("param_strength")["seed"].nunique() == 2).all()  # and the seeds differ
    # scale = "standard": the saved model is the scaling layer in front of the trained model (regsearch.predictor).
    regularized = ("[l.name for l in m.layers][:2], sorted(l.name for l in m.layers[-1].layers "
                   "if getattr(l, 'kernel_regularizer', None) is not None)")
    # The saved model is the selected configuration's: L2 on both layers, or none where the baseline won.
    best = pd.read_csv(folder / "summary.csv").iloc[0]
    expected = "[]" if best["phase"] == "baseline" else "['dense_1', 'dense_2']"
    expected = f"['features', 'standard_scaling'] {expected}"  # print(a, b)
    assert load_without_regsearch(folder / "best_model.keras", regularized) == expected
    assert "cancer.csv" in (folder / "search.toml").read_text()
    assert json.loads((folder / "tuner" / "settings.json").read_text())["model.file"] == "my_model.keras"


def test_a_regression_table_ranks_by_validation_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.iloc[:120].to_csv(tmp_path / "diabetes.csv", index=False)
    inputs = keras.Input((10,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    keras.Model(inputs, keras.layers.Dense(1, name="progression")(hidden)).save(tmp_path / "regression.keras")
    (tmp_path / "regression.toml").write_text(
        'description = "L2 on a regression model"\n[data]\nfile = "diabetes.csv"\ntarget = "target"\n'
        '[model]\nfile = "regression.keras"\n[space.regularizer]\nkinds = ["l2"]\nstrengths = [1e-1, 1e-3]\n'
    )
    assert main([str(tmp_path / "regression.toml"), "--results", str(tmp_path / "out"), "--epochs", "2", "--repeats",
                 "2", "--quiet"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "regression" / "summary.csv")
    assert "mean_test_accuracy" not in summary and summary["mean_val_loss"].is_monotonic_increasing
    assert "by mean val loss (lower is better)" in (tmp_path / "out" / "regression" / "summary.md").read_text()
    model = keras.saving.load_model(tmp_path / "out" / "regression" / "best_model.keras")
    assert model.loss == "mean_squared_error"  # uncompiled source: the task's loss


def edited(old: str, new: str) -> str:
    assert old in SEARCH
    return SEARCH.replace(old, new, 1)


def write_bytes(name: str, content: bytes):
    return lambda folder: (folder / name).write_bytes(content)


def write_table(name: str, frame: pd.DataFrame):
    return lambda folder: frame.to_csv(folder / name, index=False)


def write_model(name: str, model_maker):
    return lambda folder: model_maker().save(folder / name)


def lambda_model() -> keras.Model:
    inputs = keras.Input((6,))
    h = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4, name="d")(h)))
    model.compile("adam", "binary_crossentropy")
    return model


class Scale(keras.layers.Layer):  # not registered: loading needs custom_objects
    def call(self, inputs):
        return inputs * 2.0


def custom_layer_model() -> keras.Model:
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4)(Scale()(inputs))))
    model.compile("adam", "binary_crossentropy")
    return model


def both_classes(rows: int) -> pd.DataFrame:
    """The first ``rows`` malignant rows, then as many benign ones."""
    frame = cancer_table()
    return pd.concat([frame[frame["diagnosis"] == label].iloc[:rows] for label in ("malignant", "benign")])


def with_text(column: str, value: object, rows: tuple[int, ...] = (3,)) -> pd.DataFrame:
    frame = cancer_table().astype({column: object})
    for row in rows:
        frame.loc[row, column] = value
    return frame


# Each case: the search text, what to write beside it, and what the one-line message must hold.
BAD_INPUT = {
    "missing data file": (edited('"cancer.csv"', '"patients.csv"'), None,
                          ["'data.file' must be", "patients.csv"]),
    "data file not UTF-8": (edited('"cancer.csv"', '"latin.csv"'),
                            write_bytes("latin.csv", "caf\xe9,diagnosis\n1,a\n2,b\n".encode("latin-1")),
                            ["'data.file' must be", "UTF-8"]),
    "unknown extension": (edited('"cancer.csv"', '"cancer.xlsx"'), write_bytes("cancer.xlsx", b"x"),
                          ["'data.file' must be", ".csv", ".parquet", ".npz", "cancer.xlsx"]),
    "target column missing": (edited('"diagnosis"', '"diagnosys"'), None,
                              ["'data.target' must be the name of a column", "got 'diagnosys' (did you mean 'diagnosis'?)"]),
    "feature column missing": (edited('target = "diagnosis"', 'target = "diagnosis"\nfeatures = ["mean radius", "mean smothness"]'),
                               None, ["'data.features' must be", "mean smoothness", "got 'mean smothness'"]),
    "non-numeric feature": (edited('"cancer.csv"', '"text.csv"'),
                            write_table("text.csv", with_text("mean area", "large", rows=(3, 7))),
                            ["'data.features' must be", "mean area", "2"]),
    "NaN feature": (edited('"cancer.csv"', '"gaps.csv"'),
                    write_table("gaps.csv", with_text("mean texture", np.nan, rows=(1, 2, 9))),
                    ["'data.features' must be", "mean texture", "3"]),
    "too few rows for the split": (edited('"cancer.csv"', '"tiny.csv"').replace("test_size = 0.3", "test_size = 0.2"),
                                   write_table("tiny.csv", both_classes(2)),
                                   ["'data.test_size' must be a size that leaves at least 2 training rows and 2 test "
                                    "rows", "got 0.2"]),
    "a class with one row": (edited('"cancer.csv"', '"single.csv"'), write_table("single.csv", both_classes(1)),
                             ["'data.target' must be labels with at least 2 rows of every class"]),
    "dataset and file both given": (edited('file = "cancer.csv"', 'file = "cancer.csv"\ndataset = "moons"'), None,
                                    ["'data.dataset' must be given, or data.file instead (exactly one of them)",
                                     "got 'both'"]),
    "missing model file": (edited('"my_model.keras"', '"mine.keras"'), None,
                           ["'model.file' must be an existing .keras file", "mine.keras"]),
    "model file that is no model": (edited('"my_model.keras"', '"junk.keras"'), write_bytes("junk.keras", b"junk"),
                                    ["'model.file' must be a Keras model of built-in layers that loads in safe mode",
                                     "junk.keras"]),
    "model with a Lambda layer": (edited('"my_model.keras"', '"lambda.keras"'), write_model("lambda.keras", lambda_model),
                                  ["'model.file' must be a Keras model of built-in layers that loads in safe mode",
                                   "lambda.keras"]),
    "model with a custom layer": (edited('"my_model.keras"', '"custom.keras"'),
                                  write_model("custom.keras", custom_layer_model),
                                  ["'model.file' must be a Keras model of built-in layers that loads in safe mode",
                                   "custom.keras"]),
    "layer that matches nothing": (edited('"dense_2"]', '"dense_3"]'), None,
                                   ["'model.layers' must be a name, pattern or class matching one of the model's "
                                    "layers: dense_1, batch_norm, dense_2, diagnosis", "got 'dense_3'"]),
    "output does not fit the task": (edited('"my_model.keras"', '"three.keras"'),
                                     write_model("three.keras", lambda: own_model(outputs=3)),
                                     ["'model.file' must be a model with one output of 1 or 2 units for the task "
                                      "'binary'", "output units [3]"]),
    "input does not fit the data": (edited('"my_model.keras"', '"wide.keras"'),
                                    write_model("wide.keras", lambda: own_model(features=9)),
                                    ["'model.file' must be a model with one input of shape (6,)", "[(9,)]"]),
    "model key for the built-in models": (edited('layers = ["dense_1", "dense_2"]', 'hidden = [5]'), None,
                                          ["'model.hidden' must be a known key of [model]", "got 'hidden'"]),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: str, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, prepare, expected = BAD_INPUT[case]
    definition = project / "bad.toml"
    definition.write_text(text)
    if prepare is not None:
        prepare(project)
    before = sorted(p.name for p in project.iterdir())
    monkeypatch.chdir(project)

    code = main([str(definition), "--results", str(project / "results")])

    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"regsearch: error: {definition}: ")
    for part in expected:
        assert part in lines[0], lines[0]
    assert sorted(p.name for p in project.iterdir()) == before  # nothing written
