"""Rungs inside a population (issue 14): successive halving and Hyperband without reloading anything."""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest

import regsearch
from regsearch.cli import main
from regsearch.definition import load_definition
from regsearch.definition.build import brackets, make_hypermodel
from regsearch.oracles import PlannedOracle, grid_configurations
from regsearch.population import Population, train_population
from regsearch.population.rungs import Rungs, hyperband_brackets, keep_count, rung_budgets
from regsearch.report import summary_frame, trials_frame
from regsearch.tuners import SuccessiveHalving, read_rungs, read_runs

from sklearn.datasets import make_moons

X, Y = make_moons(60, noise=0.25, random_state=3)
X = X.astype("float32")
TRAIN, VALIDATION = (X[:22], Y[:22]), (X[22:], Y[22:])
STRENGTHS = [1e-5, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]


def test_budgets_grow_by_the_factor_and_end_at_the_epochs() -> None:
    assert rung_budgets(10, 3, 100) == (10, 30, 90, 100)
    assert rung_budgets(10, 3, 90) == (10, 30, 90)
    assert rung_budgets(7, 2, 7) == (7,)
    assert rung_budgets(5, 4, 81) == (5, 20, 80, 81)


def test_brackets_count_configurations_as_keras_tuners_hyperband() -> None:
    # Li et al.: bracket with s halvings ahead starts with ceil((s_max + 1) / (s + 1) * factor**s).
    assert hyperband_brackets(4, 3) == [27, 12, 6, 4]
    assert hyperband_brackets(3, 2) == [4, 3, 3]
    assert hyperband_brackets(1, 3) == [1]
    assert [keep_count(n, 3) for n in (1, 2, 3, 8, 9, 10)] == [1, 1, 1, 2, 3, 3]


def mlp(strength: float, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu",
                                                                      kernel_regularizer=keras.regularizers.L2(strength)),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def test_a_population_paused_at_rungs_trains_on_exactly_as_one_never_paused() -> None:
    """Same weights, optimizer state and early-stopping state after the pause: histories and weights equal."""
    stop = dict(monitor="val_loss", patience=4, restore_best_weights=True)
    kwargs = dict(epochs=40, batch_size=8, seeds=[0, 1, 2], shuffle=True)
    whole = [mlp(s, seed) for s, seed in ((1e-4, 0), (1e-2, 1), (3.0, 2))]
    paused = [mlp(s, seed) for s, seed in ((1e-4, 0), (1e-2, 1), (3.0, 2))]
    expected = train_population(whole, TRAIN, VALIDATION, early_stopping=keras.callbacks.EarlyStopping(**stop),
                                **kwargs)
    population = Population(paused, TRAIN, VALIDATION, early_stopping=keras.callbacks.EarlyStopping(**stop), **kwargs)
    for until in (3, 7, 7, 20):
        population.advance(until)
        assert all(s.epoch <= until or s.ended for s in population.standing())
    population.advance()
    outcomes = population.finish()
    assert [o.epochs_run for o in outcomes] == [o.epochs_run for o in expected]
    assert any(o.epochs_run < 40 for o in expected)  # early stopping acted across a pause
    for got, want, a, b in zip(outcomes, expected, paused, whole):
        assert got.best_epoch == want.best_epoch and got.stopped_epoch == want.stopped_epoch
        np.testing.assert_allclose(got.history["val_loss"], want.history["val_loss"], rtol=1e-5)
        for u, v in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_a_dropped_member_stops_where_it_stands() -> None:
    models = [mlp(1e-3, 0), mlp(1e-3, 1)]
    population = Population(models, TRAIN, VALIDATION, epochs=30, batch_size=8, seeds=[0, 1])
    population.advance(5)
    population.drop([1])
    population.advance()
    outcomes = population.finish()
    assert [o.epochs_run for o in outcomes] == [30, 5]
    assert len(outcomes[1].history["loss"]) == 5


def hypermodel(strengths: list[float] = STRENGTHS) -> regsearch.RegularizedMLP:
    return regsearch.RegularizedMLP(input_shape=(2,), hidden=[16], learning_rate=0.01,
                                    regularizer=regsearch.Regularizer(kinds=["l2"], strengths=strengths))


def halving(tmp_path: Path, rungs: Rungs, repeats: int = 2, **kwargs) -> SuccessiveHalving:
    tuner = SuccessiveHalving(hypermodel(), rungs=rungs, repeats=repeats, seed=5,
                              objective=kt.Objective("val_accuracy", "max"), directory=str(tmp_path),
                              project_name="rungs", **kwargs)
    tuner.search(*TRAIN, validation_data=VALIDATION, epochs=rungs.budgets[-1], batch_size=8, verbose=0)
    return tuner


@pytest.fixture(scope="module")
def halved(tmp_path_factory: pytest.TempPathFactory) -> SuccessiveHalving:
    """One successive-halving search (9 -> 3 -> 1 configurations, 2 seeds each) that two tests read."""
    rungs = Rungs((3, 9, 20), 3, "val_accuracy", minimize=False, tie_breaker="val_loss")
    return halving(tmp_path_factory.mktemp("halved"), rungs)


def test_successive_halving_keeps_the_best_third_with_all_their_seeds(halved: SuccessiveHalving) -> None:
    tuner = halved
    runs = trials_frame(read_runs(tuner)[0])
    scores = pd.DataFrame(read_rungs(tuner))
    assert len(runs) == 9 * 2 and (runs["status"] == "completed").all()
    assert sorted(runs["seed"].unique()) == [5, 6]
    # Every configuration's seeds stop at one rung; 9 -> 3 -> 1 configurations.
    per_config = runs.groupby("trial_id")[["rung", "budget", "epochs_run"]].nunique()
    assert (per_config == 1).all().all()
    reached = runs.groupby("trial_id")["rung"].first().value_counts().sort_index()
    assert reached.to_dict() == {0: 6, 1: 2, 2: 1}
    assert (runs["epochs_run"] == runs["budget"]).all()  # no early stopping: each trained exactly its budget
    assert (runs.set_index("rung")["budget"].groupby(level=0).first() == pd.Series([3, 9, 20])).all()
    for rung in (0, 1):
        at = scores[scores["rung"] == rung].groupby("trial_id").agg(score=("score", "mean"), kept=("kept", "all"))
        assert at["kept"].sum() == keep_count(len(at), 3)
        assert at[at["kept"]]["score"].min() >= at[~at["kept"]]["score"].max()  # the kept are the best
    # A run's record at its last rung is its score there (its val_accuracy at the best epoch so far).
    last = scores.sort_values("rung").groupby(["trial_id", "repeat"]).last()
    merged = runs.set_index(["trial_id", "repeat"]).join(last, rsuffix="_rung")
    np.testing.assert_allclose(merged["val_accuracy"], merged["score"], rtol=1e-6)
    # The survivor ranks first even though stopped configurations may score higher at their rung.
    summary = summary_frame(runs, "val_accuracy", "max")
    assert summary.iloc[0]["mean_rung"] == 2


def test_a_survivor_trains_exactly_as_the_same_configuration_trained_alone(halved: SuccessiveHalving,
                                                                          tmp_path: Path) -> None:
    runs = trials_frame(read_runs(halved)[0])
    survivor = runs[runs["rung"] == 2].sort_values("repeat")
    strength = float(survivor["param_strength"].iloc[0])
    alone = SuccessiveHalving(hypermodel([strength]), rungs=Rungs((20,), 3, "val_accuracy", False), repeats=2, seed=5,
                              objective=kt.Objective("val_accuracy", "max"), directory=str(tmp_path / "b"),
                              project_name="alone")
    alone.search(*TRAIN, validation_data=VALIDATION, epochs=20, batch_size=8, verbose=0)
    single = trials_frame(read_runs(alone)[0]).sort_values("repeat")
    for column in ("val_accuracy", "val_loss", "train_loss", "test_loss"):
        np.testing.assert_allclose(survivor[column].to_numpy(), single[column].to_numpy(), rtol=1e-5)


def test_a_lower_score_is_better_when_minimizing(tmp_path: Path) -> None:
    rungs = Rungs((3, 12), 3, "val_loss", minimize=True)
    tuner = SuccessiveHalving(hypermodel(), rungs=rungs, repeats=1, seed=5, objective=kt.Objective("val_loss", "min"),
                              directory=str(tmp_path), project_name="rungs")
    tuner.search(*TRAIN, validation_data=VALIDATION, epochs=12, batch_size=8, verbose=0)
    at = pd.DataFrame(read_rungs(tuner))
    first = at[at["rung"] == 0]
    assert first["kept"].sum() == 3
    assert first[first["kept"]]["score"].max() <= first[~first["kept"]]["score"].min()


def test_the_grid_and_the_planned_oracle_agree_with_keras_tuners_grid(tmp_path: Path) -> None:
    hm = regsearch.RegularizedMLP(input_shape=(2,), hidden=[4],
                                  regularizer=regsearch.Regularizer(kinds=["l1", "l2"], strengths=[1e-3, 1e-2]),
                                  dropout=regsearch.Dropout(kinds=["none", "dropout"], rates=[0.1, 0.3]))
    grid = grid_configurations(hm)
    hp = kt.HyperParameters()
    hm.describe(hp)
    oracle = kt.oracles.GridSearchOracle(objective=kt.Objective("score", "max"), hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "walk")
    walked = []
    while (trial := oracle.create_trial("w")).status != "STOPPED":
        walked.append(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, {"score": 0.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(grid) == 12 and sorted(map(repr, grid)) == sorted(map(repr, walked))
    planned = PlannedOracle(grid[3:6], objective=kt.Objective("score", "max"), hyperparameters=hp)
    planned._set_project_dir(str(tmp_path), "planned")
    handed = [planned.create_trial(f"t{i}") for i in range(4)]
    assert [t.hyperparameters.values for t in handed[:3]] == grid[3:6]  # all at once, none ended yet
    assert handed[3].status == "IDLE"  # all handed out, some still running: a worker asks again later
    for trial in handed[:3]:
        planned.update_trial(trial.trial_id, {"score": 1.0})
        trial.status = "COMPLETED"
        planned.end_trial(trial)
    assert planned.create_trial("t9").status == "STOPPED"


MOONS = """
description = "rungs"
[data]
dataset = "moons"
train_size = 30
[model]
hypermodel = "RegularizedMLP"
hidden = [8]
learning_rate = 0.01
[space.regularizer]
kinds = ["l2"]
strengths = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 3.0, 10.0, 30.0, 100.0]
[search]
strategy = "{strategy}"
{search}
repeats = 2
[training]
epochs = 12
batch_size = 16
[early_stopping]
patience = "none"
[evaluation]
protocol = "{protocol}"
"""


def definition(tmp_path: Path, strategy: str = "hyperband", search: str = "factor = 3\nmin_epochs = 4",
               protocol: str = "holdout") -> Path:
    path = tmp_path / "rung_search.toml"
    path.write_text(MOONS.format(strategy=strategy, search=search, protocol=protocol))
    return path


def test_a_hyperband_search_writes_every_output_and_the_rung_plot(tmp_path: Path) -> None:
    path = definition(tmp_path, search="factor = 2\nmin_epochs = 3")
    loaded = load_definition(path)
    planned = brackets(loaded, make_hypermodel(loaded))
    # Rungs at 3, 6, 12 epochs; brackets of ceil(3/3*4)=4, ceil(3/2*2)=3 and 3 configurations, of which
    # the 9-configuration grid has 2 left for the last: no configuration is drawn twice.
    assert [b.rungs.budgets for b in planned] == [(3, 6, 12), (6, 12), (12,)]
    assert [len(b.configurations) for b in planned] == [4, 3, 2]
    drawn = [str(c) for b in planned for c in b.configurations]
    assert sorted(drawn) == sorted(str(c) for c in grid_configurations(make_hypermodel(loaded)))
    assert main([str(path), "--results", str(tmp_path / "results"), "--quiet"]) == 0
    folder = tmp_path / "results" / "rung_search"
    for name in ("trials.csv", "summary.csv", "summary.md", "rungs.csv", "rungs.png", "accuracy_vs_strength.png",
                 "learning_curves.png", "best_model.keras"):
        assert (folder / name).is_file(), name
    trials = pd.read_csv(folder / "trials.csv")
    assert sorted(trials["phase"].unique()) == ["baseline", "bracket0", "bracket1", "bracket2"]
    assert len(trials) == (4 + 3 + 2 + 1) * 2
    assert trials[trials["phase"] == "baseline"]["rung"].isna().all()
    rungs = pd.read_csv(folder / "rungs.csv")
    assert set(rungs["phase"]) == {"bracket0", "bracket1", "bracket2"}
    assert "rungs.png" in (folder / "summary.md").read_text()
    # The report command rebuilds the same rung table from the saved runs.
    before = (folder / "rungs.csv").read_text()
    (folder / "rungs.csv").unlink()
    assert main(["report", "--results", str(tmp_path / "results")]) == 0
    assert (folder / "rungs.csv").read_text() == before


def test_hyperband_leaves_out_brackets_the_used_up_grid_cannot_fill(tmp_path: Path) -> None:
    path = definition(tmp_path, search="factor = 2\nmin_epochs = 3")
    path.write_text(path.read_text().replace("1e-4, 1e-3, 1e-2, 1e-1, 1.0, 3.0, 10.0, 30.0, 100.0",
                                             "1e-4, 1e-3, 1e-2, 1e-1, 1.0, 3.0, 10.0"))
    loaded = load_definition(path)
    planned = brackets(loaded, make_hypermodel(loaded))
    assert [(b.phase, len(b.configurations), b.rungs.budgets) for b in planned] == [
        ("bracket0", 4, (3, 6, 12)), ("bracket1", 3, (6, 12))]


@pytest.mark.parametrize(("strategy", "search", "protocol", "setting", "received"), [
    ("hyperband", "factor = 1", "holdout", "search.factor", "got 1"),
    ("successive_halving", "min_epochs = 0", "holdout", "search.min_epochs", "got 0"),
    ("hyperband", "min_epochs = 13", "holdout", "search.min_epochs", "got 13"),
    ("successive_halving", "min_epochs = 1", "holdout", "search.min_epochs", "need 27 configurations"),
    ("hyperband", "factor = 3\nbatch = 4", "holdout", "search.batch", "got 4"),
    ("grid", "factor = 3", "holdout", "search.factor", "got 'grid'"),
    ("grid", "min_epochs = 3", "holdout", "search.min_epochs", "got 'grid'"),
    ("hyperband", "factor = 3", "kfold", "evaluation.protocol", "got 'kfold'"),
])
def test_bad_rung_settings_give_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            strategy: str, search: str, protocol: str, setting: str,
                                                            received: str) -> None:
    path = definition(tmp_path, strategy, search, protocol)
    assert main([str(path), "--results", str(tmp_path / "results")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"'{setting}'" in error and received in error, error
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("arguments", "setting"), [
    (["--engine", "sequential"], "--engine"),
    (["--epochs", "3"], "search.min_epochs"),
    (["--chief", "--oracle-port", "8123"], "--chief"),
])
def test_options_a_rung_search_cannot_honour_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         arguments: list[str], setting: str) -> None:
    path = definition(tmp_path)
    assert main([str(path), "--results", str(tmp_path / "results"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"'{setting}'" in error, error
    assert not (tmp_path / "results").exists()


def test_rungs_refuse_several_folds_and_arguments_a_population_cannot_train(tmp_path: Path) -> None:
    from regsearch.errors import SettingError
    from regsearch.evaluation import Protocol, make_folds

    rungs = Rungs((3, 6), 2, "val_accuracy", False)
    folds = make_folds(Protocol("kfold", folds=3), np.asarray(Y[:30]), classification=True, seed=0)
    with pytest.raises(SettingError, match="'folds'"):
        SuccessiveHalving(hypermodel(), rungs=rungs, folds=folds, objective="val_accuracy",
                          directory=str(tmp_path), project_name="x")
    tuner = SuccessiveHalving(hypermodel(), rungs=rungs, objective="val_accuracy", directory=str(tmp_path),
                              project_name="y")
    with pytest.raises(SettingError, match="'engine'.*class_weight"):
        tuner.search(*TRAIN, validation_data=VALIDATION, epochs=6, class_weight={0: 1.0, 1: 2.0}, verbose=0)


def test_a_rung_scores_each_member_at_its_best_epoch_so_far_as_early_stopping_restores(tmp_path: Path) -> None:
    rungs = Rungs((6, 30), 3, "val_loss", minimize=True)
    tuner = SuccessiveHalving(hypermodel(), rungs=rungs, repeats=2, seed=5,
                              objective=kt.Objective("val_loss", "min"), directory=str(tmp_path),
                              project_name="rungs")
    tuner.search(*TRAIN, validation_data=VALIDATION, epochs=30, batch_size=8, verbose=0,
                 early_stopping=dict(monitor="val_loss", patience=2, restore_best_weights=True))
    records, histories = read_runs(tuner)
    runs = trials_frame(records)
    scores = pd.DataFrame(read_rungs(tuner)).sort_values("rung").groupby(["trial_id", "repeat"]).last()
    restored_earlier = 0
    for _, run in runs.iterrows():
        history = histories[f"{run['trial_id']}/{run['repeat']}"]["val_loss"]
        score = scores.loc[(run["trial_id"], run["repeat"]), "score"]
        assert score == pytest.approx(history[int(run["best_epoch"])], rel=1e-6)
        restored_earlier += history[int(run["best_epoch"])] != pytest.approx(history[-1], rel=1e-6)
    assert restored_earlier > 0  # the best epoch is not the last for some members: the check can tell
    # A run's budget is its last rung's, not the epochs it trained before early stopping ended it.
    by_run = runs.set_index(["trial_id", "repeat"])
    last = scores.loc[by_run.index]
    assert by_run["budget"].astype(int).tolist() == last["budget"].astype(int).tolist()
    assert by_run["rung"].astype(int).tolist() == last["rung"].astype(int).tolist()
    assert (runs["epochs_run"] < runs["budget"]).any()


def test_plots_compare_runs_of_the_whole_budget_each_once() -> None:
    from regsearch.report.tables import whole_budget_runs

    trials = trials_frame([
        {"phase": "bracket0", "trial_id": "b0-1", "repeat": 0, "param_strength": 0.1, "budget": 4, "status": "completed"},
        {"phase": "bracket0", "trial_id": "b0-2", "repeat": 0, "param_strength": 0.2, "budget": 12, "status": "completed"},
        {"phase": "bracket1", "trial_id": "b1-1", "repeat": 0, "param_strength": 0.2, "budget": 12, "status": "completed"},
        {"phase": "bracket1", "trial_id": "b1-1", "repeat": 1, "param_strength": 0.2, "budget": 12, "status": "completed"},
        {"phase": "bracket1", "trial_id": "b1-2", "repeat": 0, "param_strength": 0.1, "budget": 12, "status": "completed"},
        {"phase": "baseline", "trial_id": "x-1", "repeat": 0, "status": "completed"},
    ])
    assert whole_budget_runs(trials).tolist() == [False, True, False, True, True, True]
    assert whole_budget_runs(trials.drop(columns="budget")).all()
