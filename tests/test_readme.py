"""The README's examples run as written (with fewer epochs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def code_block(heading: str, language: str) -> str:
    """The first ``language`` code block after the line ``heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    match = re.search(rf"```{language}\n(.*?)```", text[start:], flags=re.S)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def test_the_search_definition_example_is_valid(tmp_path):
    from regsearch.definition import load_definition

    path = tmp_path / "example.toml"
    path.write_text(code_block("### A search definition", "toml"), encoding="utf-8")
    definition = load_definition(path)
    assert (definition.strategy, definition.epochs, definition.early_stopping["patience"]) == ("coarse_to_fine", 4000, 200)


def test_the_own_data_search_file_example_is_valid(tmp_path):
    import keras
    import pandas as pd

    from regsearch.definition import load_definition

    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    pd.DataFrame({"age": rng.normal(50, 10, 60), "bmi": rng.normal(25, 4, 60), "site": rng.integers(0, 3, 60),
                  "outcome": rng.integers(0, 2, 60)}).to_csv(tmp_path / "data" / "patients.csv", index=False)
    inputs = keras.Input((2,))
    h = keras.layers.Dense(4, activation="relu", name="dense_1")(inputs)
    h = keras.layers.Dense(4, activation="relu", name="dense_2")(h)
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h)).save(tmp_path / "my_model.keras")
    path = tmp_path / "mine.toml"
    path.write_text(code_block("### From a search file", "toml"), encoding="utf-8")
    definition = load_definition(path)
    assert definition.hypermodel == "Regularize" and definition.model["layers"] == ["dense_1", "dense_2"]
    assert definition.data["features"] == ["age", "bmi"] and definition.objective == "val_accuracy"


def test_the_regularize_example_runs(tmp_path):
    from regsearch.datasets import load_dataset

    split = load_dataset("digits", n_samples=120, train_size=80)
    code = code_block("### In your own Keras Tuner code", "python")
    code = code.replace("epochs=200", "epochs=2").replace('directory="tuning"', f'directory=r"{tmp_path}"')
    namespace = {"x_train": split.x_train, "y_train": split.y_train, "x_test": split.x_test, "y_test": split.y_test}
    exec(compile(code, "README.md", "exec"), namespace)
    trials = namespace["tuner"].oracle.trials.values()
    assert len(trials) == 8  # (none + l2 x 3) x two dropout rates
    assert all(t.status == "COMPLETED" for t in trials)
    best = namespace["tuner"].get_best_models(1)[0]
    assert {"conv_dropout", "dense_dropout"} <= {layer.name for layer in best.layers}


def test_the_preset_example_runs(tmp_path):
    from regsearch.datasets import load_dataset

    split = load_dataset("moons")
    section = README.read_text(encoding="utf-8")
    start = section.index("The built-in HyperModels are presets")
    code = "import keras, keras_tuner as kt, regsearch\n" + re.search(r"```python\n(.*?)```", section[start:], re.S).group(1)
    code = code.replace("epochs=4000", "epochs=3").replace('directory="tuning"', f'directory=r"{tmp_path}"')
    code = code.replace("regsearch.Decades(1e-1, 1e-6)", "regsearch.Decades(1e-1, 1e-2)")
    namespace = {"x_train": split.x_train, "y_train": split.y_train, "x_test": split.x_test, "y_test": split.y_test}
    exec(compile(code, "README.md", "exec"), namespace)
    tuner = namespace["tuner"]
    trials = tuner.oracle.trials.values()
    assert len(trials) == 10  # (none + l1 x 2 + l2 x 2) x (after, before)
    assert all(t.status == "COMPLETED" for t in trials)
    assert all("train_accuracy" in t.metrics.metrics for t in trials)


@pytest.mark.parametrize("heading", ["## The engine: `regsearch.fit`"])
def test_the_engine_example_runs(heading):
    import keras

    import regsearch
    from regsearch.datasets import load_dataset

    split = load_dataset("moons")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    code = code_block(heading, "python").replace("epochs=4000", "epochs=5")
    namespace = {"keras": keras, "regsearch": regsearch, "model": model, "x_train": split.x_train,
                 "y_train": split.y_train, "x_test": split.x_test, "y_test": split.y_test}
    exec(compile(code, "README.md", "exec"), namespace)
    assert len(namespace["history"].history["val_accuracy"]) == 5
