"""One plan per search: the definition's data file and model file are each read once (counted)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from regsearch.cli import main

SEARCH = """\
description = "a search whose files are each read once"

[data]
file = "table.csv"
target = "label"
test_size = 0.25

[model]
file = "mine.keras"

[space.regularizer]
kinds = ["l2"]
strengths = {{ decades = [1e-1, 1e-3] }}

[search]
strategy = "coarse_to_fine"
fine_points = 2
repeats = 1

[training]
epochs = 2
{evaluation}
"""


@pytest.fixture
def reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """A tiny table and saved model in ``tmp_path``; counts the reads of each by the readers regsearch calls."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    table = pd.DataFrame(x, columns=list("abcd"))
    table["label"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    table.to_csv(tmp_path / "table.csv", index=False)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "mine.keras")

    counts: Counter = Counter()
    read_csv, load_model = pd.read_csv, keras.saving.load_model

    def counted_csv(path, *args, **kwargs):
        counts[Path(path).name] += 1
        return read_csv(path, *args, **kwargs)

    def counted_model(path, *args, **kwargs):
        counts[Path(path).name] += 1
        return load_model(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counted_csv)
    monkeypatch.setattr(keras.saving, "load_model", counted_model)
    monkeypatch.chdir(tmp_path)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("evaluation", ["", '[evaluation]\nprotocol = "kfold"\nfolds = 2'])
def test_a_search_reads_its_data_and_model_file_once(tmp_path: Path, reads: Counter, evaluation: str) -> None:
    (tmp_path / "once.toml").write_text(SEARCH.format(evaluation=evaluation))
    assert main(["once.toml", "--quiet"]) == 0
    trials = pd.read_csv(tmp_path / "results" / "once" / "trials.csv")
    phases = {"coarse", "fine", "baseline"} | ({"refit"} if evaluation else set())
    assert set(trials["phase"]) == phases  # every phase that builds a HyperModel ran
    assert (reads["table.csv"], reads["mine.keras"]) == (1, 1)  # the report's own files (trials.csv) aside
