"""A results folder back in Python (issue 25, item 8): ``regsearch.open_results``."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import regsearch
from regsearch.errors import SettingError
from test_caveats import records

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder as a search leaves it, made without training: the report, two models, the provenance."""
    from regsearch.report import write_report

    folder = tmp_path_factory.mktemp("results") / "tiny"
    write_report(folder, records(best=1e-2, seeds=3, failed=1), {}, search_name="tiny", rerun_command="x",
                 objective="val_accuracy", protocol="holdout", epochs=200, tensorboard=False,
                 provenance={"versions": {"keras": keras.__version__}, "device": "CPU: test", "rerun": "x"})
    for name, units in (("best_model.keras", 3), ("baseline_model.keras", 2)):
        inputs = keras.Input((2,))
        keras.Model(inputs, keras.layers.Dense(units, name="out")(inputs)).save(folder / name)
    return folder


def test_open_results_gives_the_tables_the_choice_and_the_answer(tiny: Path) -> None:
    results = regsearch.open_results(tiny)
    pd.testing.assert_frame_equal(results.trials, regsearch.trials_frame(pd.read_csv(tiny / "trials.csv")
                                                                         .to_dict("records")))
    assert list(results.summary["trial_id"]) == list(pd.read_csv(tiny / "summary.csv")["trial_id"])
    assert results.best == {"kind": "l2", "strength": 1e-2}
    assert results.answer is not None and results.answer in (tiny / "summary.md").read_text()
    assert results.warnings == ["Of 16 runs, 1 failed: the answer rests on the others (the reasons are in the reason "
                                "column of trials.csv)."]
    assert results.provenance == json.loads((tiny / "provenance.json").read_text())
    assert results.definition is None  # no search.toml here: the report's defaults apply


def test_the_models_load_in_safe_mode(tiny: Path) -> None:
    results = regsearch.open_results(tiny)
    x = np.ones((4, 2), dtype="float32")
    assert results.best_model().predict(x, verbose=0).shape == (4, 3)
    assert results.baseline_model().predict(x, verbose=0).shape == (4, 2)
    (tiny / "baseline_model.keras").rename(tiny / "moved.keras")
    try:
        with pytest.raises(FileNotFoundError, match="baseline_model.keras: no saved model"):
            results.baseline_model()
    finally:
        (tiny / "moved.keras").rename(tiny / "baseline_model.keras")


def test_a_folder_without_trials_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as error:
        regsearch.open_results(tmp_path)
    assert str(error.value) == (f"open_results: 'results folder' must be a search's results folder (holding "
                                f"trials.csv); got '{tmp_path}'.")


def test_the_readme_example_runs_on_a_committed_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """What git holds of results/moons_l2 (no tuner state) is enough."""
    from test_readme import code_block

    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code_block("### Results back in Python", "python"), "README.md", "exec"), namespace)
    results = namespace["results"]
    assert results.best["strength"] == pd.read_csv(ROOT / "results/moons_l2/summary.csv")["param_strength"].iloc[0]
    assert results.answer in (ROOT / "results/moons_l2/summary.md").read_text()
    assert namespace["model"].count_params() == namespace["baseline"].count_params()


def test_a_kfold_search_is_indexed_with_the_test_scores_of_its_choices_refit() -> None:
    """The folds score no test rows; the index shows the refit of the chosen configuration (not the baseline's)."""
    from regsearch.report.sections import index_table
    from regsearch.report.write import index_row

    folder = ROOT / "results" / "circles_activity_cv"
    row = index_row(folder)
    trials = pd.read_csv(folder / "trials.csv")
    refit = trials[(trials["phase"] == "refit") & (trials["trial_id"] == row["best"]["trial_id"])]
    assert len(refit) == 10 and refit["test_accuracy"].nunique() > 1
    assert row["best"]["mean_test_accuracy"] == pytest.approx(refit["test_accuracy"].mean())
    assert row["best"]["std_test_accuracy"] == pytest.approx(refit["test_accuracy"].std(ddof=0))
    assert row["best"]["mean_test_loss"] == pytest.approx(refit["test_loss"].mean())
    mean, std = refit["test_accuracy"].mean(), refit["test_accuracy"].std(ddof=0)
    assert index_table([row])["test accuracy"].iloc[0] == f"{mean:.3f} ± {std:.3f}"
