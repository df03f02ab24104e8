"""The saved models as whole predictors: raw rows in, the user's labels out (regsearch.predictor, regsearch.scaling)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn import datasets as sk_datasets
from sklearn.preprocessing import StandardScaler

from regsearch.cli import main
from regsearch.datafiles import load_file
from regsearch.predictor import SCALING_LAYER, description, whole_predictor
from regsearch.scaling import EPSILON, Standardization


def _table(rows: int = 40, seed: int = 0) -> np.ndarray:
    """Columns: large offset, a constant, a spread below Keras' epsilon, an ordinary one."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(1000, 50, rows), np.full(rows, 7.0), rng.normal(0, 1e-9, rows),
                            rng.normal(0, 1, rows)])


def test_the_scaling_is_standard_scalers_and_keras_normalization_computes_it_from_raw_rows() -> None:
    x = _table()
    train, test = x[:30], x[30:]
    scaling = Standardization.fit(train)
    scaler = StandardScaler().fit(train)
    np.testing.assert_array_equal(scaling.mean, scaler.mean_)
    np.testing.assert_array_equal(scaling.scale, scaler.scale_)
    assert scaling.scale[1] == 1.0  # the constant column: StandardScaler's scale 1, not a division by 0
    ordinary = [0, 1, 3]
    np.testing.assert_allclose(scaling.apply(test)[:, ordinary], scaler.transform(test)[:, ordinary], rtol=1e-12)
    # Below Keras' epsilon both the runs and the saved model divide by epsilon (StandardScaler would not).
    assert scaling.scale[2] < EPSILON
    np.testing.assert_allclose(scaling.apply(test)[:, 2], (test[:, 2] - scaling.mean[2]) / EPSILON)
    normalize = keras.layers.Normalization(mean=scaling.mean.tolist(), variance=scaling.variance.tolist())
    computed = keras.ops.convert_to_numpy(normalize(test.astype("float32")))
    np.testing.assert_allclose(computed, scaling.apply(test), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scaling.invert(scaling.apply(test)), test, rtol=1e-12)


def test_test_rows_name_the_rows_of_the_file(tmp_path: Path) -> None:
    x = _table(60)
    frame = pd.DataFrame(x, columns=["income", "const", "tiny", "other"])
    frame.insert(2, "answer", np.where(x[:, 0] > 1000, "yes", "no"))  # the target between feature columns
    frame.to_csv(tmp_path / "t.csv", index=False)
    split = load_file(tmp_path / "t.csv", target="answer", features=["other", "income"], scale="standard",
                      test_size=0.25, random_state=4)
    assert split.class_names == ("no", "yes") and len(split.test_rows) == split.n_test == 15
    rows = frame.iloc[split.test_rows]
    np.testing.assert_array_equal(np.asarray(split.class_names)[split.y_test], rows["answer"])
    raw = rows[["other", "income"]].to_numpy()
    np.testing.assert_allclose(split.x_test, split.scaling.apply(raw), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(split.unscaled().x_test, raw, rtol=1e-6)
    plain = load_file(tmp_path / "t.csv", target="answer")
    assert split.unscaled().scaling is None and plain.unscaled() is plain
    np.savez(tmp_path / "given.npz", x_train=x[:45], y_train=x[:45, 3] > 0, x_test=x[45:], y_test=x[45:, 3] > 0)
    np.testing.assert_array_equal(load_file(tmp_path / "given.npz").test_rows, np.arange(45, 60))


@pytest.fixture(scope="module")
def digits_split(tmp_path_factory: pytest.TempPathFactory) -> Any:
    digits = sk_datasets.load_digits()
    folder = tmp_path_factory.mktemp("digits")
    np.savez(folder / "digits.npz", x=digits.images[:150, :, :, np.newaxis], y=digits.target[:150])
    return load_file(folder / "digits.npz", scale="standard")  # images with constant (all-zero) pixels


def test_the_whole_predictor_takes_raw_rows_and_saves_and_loads_in_safe_mode(
        digits_split: Any, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="digit")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    predictor = whole_predictor(model, digits_split)
    raw = digits_split.unscaled()
    assert raw.x_test.max() == 16.0  # pixel values as in the file
    expected = model.predict(digits_split.x_test, verbose=0)
    np.testing.assert_allclose(predictor.predict(raw.x_test, verbose=0), expected, rtol=1e-4, atol=1e-6)
    predictor.save(tmp_path / "p.keras")
    with warnings.catch_warnings(record=True) as with_warnings:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(tmp_path / "p.keras", safe_mode=True)
    assert not [w for w in with_warnings if "Skipping variable loading" in str(w.message)]
    assert [layer.name for layer in loaded.layers][1] == SCALING_LAYER and loaded.layers[-1].name == model.name
    np.testing.assert_allclose(loaded.predict(raw.x_test, verbose=0), expected, rtol=1e-4, atol=1e-6)
    scores = loaded.evaluate(raw.x_test, raw.y_test, verbose=0, return_dict=True)
    assert scores == pytest.approx(model.evaluate(digits_split.x_test, digits_split.y_test, verbose=0,
                                                  return_dict=True), rel=1e-5)
    assert whole_predictor(model, raw) is model  # nothing fitted: the model itself
    about = description(loaded, digits_split)
    assert about["inputs"]["columns"] is None and about["inputs"]["shape"] == [8, 8, 1]
    assert about["classes"] == list(range(10)) and about["output"].startswith("10 columns")


# --- own searches on tables with string labels, read back by a process without regsearch ---------------------

SEARCH = """\
description = "{task} table"
[data]
file = "{file}"
target = "{target}"
features = {features}
test_size = 0.3
scale = "standard"
[model]
hypermodel = "RegularizedMLP"
hidden = [16]
[space.regularizer]
kinds = ["l2"]
strengths = [1e-3]
[search]
strategy = "grid"
repeats = 1
[training]
epochs = 25
batch_size = 16
"""


def _tables(folder: Path) -> dict[str, tuple[pd.DataFrame, str, list[str]]]:
    """Binary and multiclass string labels and a regression target; features far from 0 and 1 in the file."""
    rng = np.random.default_rng(7)
    n = 90
    income, rate, const = rng.normal(1000, 50, n), rng.normal(-0.02, 0.01, n), np.full(n, 7.0)
    signal = (income - 1000) / 50 + (rate + 0.02) / 0.01
    binary = pd.DataFrame({"rate": rate, "answer": np.where(signal + rng.normal(0, 0.5, n) > 0, "yes", "no"),
                           "income": income})
    level = np.digitize(signal + rng.normal(0, 0.3, n), [-0.8, 0.8])
    multiclass = pd.DataFrame({"income": income, "const": const, "rate": rate,
                               "grade": np.array(["low", "mid", "high"])[level]})
    regression = pd.DataFrame({"income": income, "rate": rate, "price": 300 + 40 * signal + rng.normal(0, 5, n)})
    return {"binary": (binary, "answer", ["income", "rate"]),  # the features in another order than the file's
            "multiclass": (multiclass, "grade", ["income", "const", "rate"]),
            "regression": (regression, "price", ["income", "rate"])}


CHECK = """
import json, sys
import keras, numpy as np, pandas as pd
found = {}
for folder, table in json.loads(sys.argv[1]).items():
    about = json.load(open(f"{folder}/predictor.json"))
    rows = pd.read_csv(table).iloc[pd.read_csv(f"{folder}/test_rows.csv")["row"]]
    x, y = rows[about["inputs"]["columns"]].to_numpy("float32"), rows[about["target"]].to_numpy()
    found[folder] = {}
    for name in ("best_model", "baseline_model"):
        model = keras.saving.load_model(f"{folder}/{name}.keras", safe_mode=True)
        out = model.predict(x, verbose=0)
        if about["classes"] is None:
            found[folder][name] = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
            continue
        classes = np.asarray(about["classes"], dtype=object)
        labels = classes[(out[:, 0] > 0.5).astype(int)] if out.shape[1] == 1 else classes[out.argmax(axis=1)]
        found[folder][name] = float(np.mean(labels == y))
        found[folder][name + "_labels"] = sorted(set(labels))
assert "regsearch" not in sys.modules
print(json.dumps(found))
"""


class _Spy:
    """Records what the report's decision-boundary plot is given, and draws it as usual."""

    def __init__(self, plot: Any) -> None:
        self.plot, self.calls = plot, []

    def __call__(self, models: Any, x_train: Any, y_train: Any, x_test: Any, y_test: Any, **kwargs: Any) -> Any:
        self.calls.append((dict(models), np.asarray(x_test), np.asarray(y_test)))
        return self.plot(models, x_train, y_train, x_test, y_test, **kwargs)


@pytest.fixture(scope="module")
def own_searches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from regsearch.report import write as report_write

    root = tmp_path_factory.mktemp("own")
    spy = _Spy(report_write.plot_decision_boundaries)
    cases = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_write, "plot_decision_boundaries", spy)
        for task, (frame, target, features) in _tables(root).items():
            frame.to_csv(root / f"{task}.csv", index=False)
            # An absolute data path: `report` rebuilds from the copy in the results folder, and finds the file.
            (root / f"{task}.toml").write_text(SEARCH.format(task=task, file=root / f"{task}.csv", target=target,
                                                             features=json.dumps(features)))
            assert main([str(root / f"{task}.toml"), "--results", str(root / "results"), "--quiet"]) == 0
            cases[task] = root / "results" / task
        searched = len(spy.calls)
        assert main(["report", "binary", "--results", str(root / "results"), "--quiet"]) == 0
        reported = len(spy.calls)
        # A folder saved before the models carried their scaling: no predictor.json, models that take scaled rows.
        legacy = root / "results" / "legacy"
        shutil.copytree(cases["binary"], legacy)
        (legacy / "predictor.json").unlink()
        for name in ("best_model", "baseline_model"):
            keras.saving.load_model(legacy / f"{name}.keras", safe_mode=True).layers[-1].save(legacy / f"{name}.keras")
        assert main(["report", "legacy", "--results", str(root / "results"), "--quiet"]) == 0
    return {"root": root, "folders": cases, "boundary_at_search": spy.calls[:searched],
            "boundary_at_report": spy.calls[searched:reported], "boundary_of_legacy": spy.calls[reported:]}


def _scores(folder: Path) -> dict[str, pd.Series]:
    summary = pd.read_csv(folder / "summary.csv")
    return {"best_model": summary.iloc[0], "baseline_model": summary[summary["param_kind"] == "none"].iloc[0]}


@pytest.mark.slow
def test_a_users_searches_save_whole_predictors(own_searches: dict[str, Any], subtests: pytest.Subtests) -> None:
    """One test over the module's searches, so that they run once (two test workers would each make them)."""
    fresh = run_without_regsearch(own_searches)  # one fresh process for both checks that need one
    for check in (saved_models_predict_raw_rows_in_a_process_without_regsearch,
                  the_decision_boundary_plot_gets_raw_rows_and_the_models_that_take_them,
                  the_readme_example_prints_the_reported_test_accuracy):
        with subtests.test(check=check.__name__):
            check(own_searches, fresh)


def readme_example(own_searches: dict[str, Any]) -> str:
    """The README's "Using the saved model" code, on the binary search's folder and table."""
    from test_readme import code_block

    code = code_block("#### Using the saved model", "python")
    code = code.replace('"results/my_search"', repr(str(own_searches["folders"]["binary"]))).replace(
        '"data/patients.csv"', repr(str(own_searches["root"] / "binary.csv"))).replace(
        "model.predict(rows", "model.predict(verbose=0, x=rows")
    return code


#: Runs CHECK, then the README's code in a namespace of its own (it sees none of CHECK's names), in one process
#: that never imports regsearch; prints CHECK's JSON line, then what the README's code printed.
FRESH = """
import contextlib, io, json, sys
check, readme = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["-c", check["tables"]]
exec(compile(check["code"], "CHECK", "exec"), {"__name__": "__main__"})
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    exec(compile(readme, "README.md", "exec"), {"__name__": "__main__"})
assert "regsearch" not in sys.modules
print(json.dumps(printed.getvalue()))
"""


def run_without_regsearch(own_searches: dict[str, Any]) -> dict[str, Any]:
    """CHECK's findings and the README example's printed lines, from one fresh process without regsearch."""
    root, folders = own_searches["root"], own_searches["folders"]
    tables = {str(folder): str(root / f"{task}.csv") for task, folder in folders.items()}
    check = json.dumps({"code": CHECK, "tables": json.dumps(tables)})
    done = subprocess.run([sys.executable, "-c", FRESH, check, json.dumps(readme_example(own_searches))],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return {"found": json.loads(lines[-2]), "readme_printed": json.loads(lines[-1]).strip().splitlines()}


def saved_models_predict_raw_rows_in_a_process_without_regsearch(own_searches: dict[str, Any],
                                                                 fresh: dict[str, Any]) -> None:
    root, folders = own_searches["root"], own_searches["folders"]
    found = fresh["found"]
    for task, folder in folders.items():
        got = found[str(folder)]
        for name, row in _scores(folder).items():
            if task == "regression":
                assert got[name] == pytest.approx(row["mean_test_loss"], rel=1e-4)
            else:
                # The report's test accuracy, to the count of rows: predicted from raw rows, mapped to the labels.
                assert got[name] == pytest.approx(row["mean_test_accuracy"], abs=1e-6), (task, name)
                assert set(got[f"{name}_labels"]) <= {"yes", "no", "low", "mid", "high"}
        if task != "regression":
            # Trained past always guessing one class, which is what a model fed unscaled rows would tend to.
            rows = pd.read_csv(root / f"{task}.csv").iloc[pd.read_csv(folder / "test_rows.csv")["row"]]
            majority = rows[_tables(root)[task][1]].value_counts(normalize=True).max()
            assert _scores(folder)["best_model"]["mean_test_accuracy"] > majority
    about = json.loads((folders["binary"] / "predictor.json").read_text())
    assert about["inputs"]["columns"] == ["income", "rate"] and about["classes"] == ["no", "yes"]
    assert "'yes'" in about["output"] and about["inputs"]["scaled_inside"]
    assert json.loads((folders["multiclass"] / "predictor.json").read_text())["classes"] == ["high", "low", "mid"]
    assert json.loads((folders["regression"] / "predictor.json").read_text())["classes"] is None


def the_decision_boundary_plot_gets_raw_rows_and_the_models_that_take_them(own_searches: dict[str, Any],
                                                                           fresh: dict[str, Any]) -> None:
    folder = own_searches["folders"]["binary"]
    raw = pd.read_csv(own_searches["root"] / "binary.csv").iloc[pd.read_csv(folder / "test_rows.csv")["row"]]
    expected = _scores(folder)
    for calls in (own_searches["boundary_at_search"], own_searches["boundary_at_report"]):
        (models, x_test, y_test), = calls  # only the two-feature search draws one
        np.testing.assert_allclose(x_test, raw[["income", "rate"]].to_numpy(), rtol=1e-5)
        for shown, name in (("best configuration", "best_model"), ("no regularization", "baseline_model")):
            predicted = models[shown].predict(x_test, verbose=0)[:, 0] > 0.5
            assert np.mean(predicted == (y_test == 1)) == pytest.approx(expected[name]["mean_test_accuracy"])
    assert (folder / "decision_boundary.png").is_file()
    (models, x_test, y_test), = own_searches["boundary_of_legacy"]
    scaled = load_file(own_searches["root"] / "binary.csv", target="answer", features=["income", "rate"],
                       test_size=0.3, scale="standard")
    np.testing.assert_allclose(x_test, scaled.x_test, rtol=1e-5, atol=1e-6)  # the rows its models take
    predicted = models["best configuration"].predict(x_test, verbose=0)[:, 0] > 0.5
    assert np.mean(predicted == (y_test == 1)) == pytest.approx(expected["best_model"]["mean_test_accuracy"])


def the_readme_example_prints_the_reported_test_accuracy(own_searches: dict[str, Any],
                                                         fresh: dict[str, Any]) -> None:
    folder = own_searches["folders"]["binary"]
    printed = float(fresh["readme_printed"][-1])
    assert printed == pytest.approx(_scores(folder)["best_model"]["mean_test_accuracy"], abs=1e-6)
