"""The contract every named search keeps (issue 4): it loads, validates, builds, plans, and runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import keras_tuner as kt
import pandas as pd
import pytest

from regsearch.cli import main
from regsearch.definition import PACKAGED_SEARCHES, load_definition
from regsearch.definition.build import brackets, make_hypermodel
from regsearch.search import fine_strengths, phases, plan_size
from on_jax import jax_environment

SEARCHES = sorted(path.stem for path in PACKAGED_SEARCHES.glob("*.toml"))

# What each grid visits (the coarse grid for coarse_to_fine): the searches answer what they say.
PLANNED = {
    "circles_activity": 12,  # 6 decades x placement after/before
    "circles_activity_cv": 12,
    "digits_cnn": 5,
    "moons_activity": 12,
    "moons_constraints": 5,
    "moons_dropout": 15,  # 3 kinds x 5 rates
    "moons_early_stopping": 4,
    "moons_hyperband": 44,  # 11 strengths x (no dropout, 3 rates); brackets sample it
    "moons_l1": 6,
    "moons_l1_l2": 6,
    "moons_l2": 6,
    "moons_l2_cv": 6,
    "moons_l2_nested": 6,  # moons_l2_cv's grid, in each outer fold and then on every training row
    "moons_overfit": 1,
    "moons_sgd_lr": 3,
    "rings_l2": 6,
    "sequence_lstm": 15,  # 5 decades x 3 targets
}
BAYESIAN_TRIALS_IN_CI = 4
EPOCHS_IN_CI = {"digits_cnn": 2, "sequence_lstm": 2, "moons_hyperband": 150}  # its first rung: 150 epochs


def test_every_packaged_search_is_in_the_contract() -> None:
    assert set(SEARCHES) == set(PLANNED) | {"moons_bayes"}
    on_jax = [name for batch in ON_JAX.values() for name in batch]
    assert set(on_jax) <= set(SEARCHES) and len(set(on_jax)) == len(on_jax) and CACHED_ON_JAX <= set(ON_JAX)
    assert set(SAME_PATH_AS) <= set(SEARCHES) and set(SAME_PATH_AS.values()) <= set(SEARCHES) - set(SAME_PATH_AS)


def grid_walk(hypermodel, folder: Path) -> list[dict]:
    """The configurations Keras Tuner's GridSearchOracle proposes for this HyperModel, without training."""
    hp = kt.HyperParameters()
    hypermodel.build(hp)
    oracle = kt.oracles.GridSearchOracle(objective=kt.Objective("score", "max"), hyperparameters=hp)
    oracle._set_project_dir(str(folder), "walk")
    walked = []
    while True:
        trial = oracle.create_trial("walker")
        if trial.status == "STOPPED":
            return walked
        walked.append(dict(trial.hyperparameters.values))
        oracle.update_trial(trial.trial_id, {"score": 0.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)


@pytest.mark.parametrize("name", SEARCHES)
def test_each_search_loads_validates_builds_and_plans(name: str, tmp_path: Path) -> None:
    definition = load_definition(PACKAGED_SEARCHES / f"{name}.toml")
    assert definition.name == name
    assert definition.description.strip()
    hypermodel = make_hypermodel(definition)
    model = hypermodel.build(kt.HyperParameters())
    assert isinstance(model, keras.Model)
    assert model.optimizer is not None

    if definition.strategy == "bayesian":
        assert definition.max_trials >= 1
        hp = kt.HyperParameters()
        hypermodel.describe(hp)
        assert len(hp.space) >= 2
        return
    walked = grid_walk(hypermodel, tmp_path)
    assert len(walked) == plan_size(hypermodel) == PLANNED[name]
    assert len({tuple(sorted(v.items())) for v in walked}) == len(walked)  # no configuration twice
    if definition.strategy == "coarse_to_fine":
        decades = list(hypermodel.regularizer.strengths)
        fine = fine_strengths(decades[len(decades) // 2], decades, definition.fine_points)
        assert len(set(fine)) == definition.fine_points - definition.fine_points % 2  # the middle one is a decade


def expected_rows(name: str) -> int:
    """Selection runs with one seed: configurations (the fine grid without the decade it reuses, the baseline) x folds."""
    definition = load_definition(PACKAGED_SEARCHES / f"{name}.toml")
    if definition.strategy == "bayesian":
        configurations = BAYESIAN_TRIALS_IN_CI
    elif definition.strategy in ("successive_halving", "hyperband"):
        ci = definition.with_epochs(EPOCHS_IN_CI[name])
        configurations = sum(len(b.configurations) for b in brackets(ci, make_hypermodel(ci)))
    else:
        fine = definition.fine_points - definition.fine_points % 2 if definition.strategy == "coarse_to_fine" else 0
        configurations = PLANNED[name] + fine
    configurations += "baseline" in phases(definition, make_hypermodel(definition))
    return configurations * definition.evaluation.runs_per_seed


def cli_arguments(name: str, results: str = "results") -> list[str]:
    """One run per configuration and few epochs: the contract is that it runs, not what it finds."""
    arguments = [name, "--epochs", str(EPOCHS_IN_CI.get(name, 3)), "--repeats", "1", "--results", results, "--quiet"]
    if name == "moons_bayes":
        arguments += ["--max-trials", str(BAYESIAN_TRIALS_IN_CI)]
    return arguments


def check_outputs(folder: Path, name: str) -> None:
    """What a finished search leaves in ``folder``: every file, one row per run, a best model that loads."""
    for output in ("trials.csv", "summary.csv", "summary.md", "accuracy_vs_strength.png", "learning_curves.png",
                   "best_model.keras", "search.toml"):
        assert (folder / output).is_file(), output
    trials = pd.read_csv(folder / "trials.csv")
    refit = trials["phase"] == "refit"
    assert (~refit).sum() == expected_rows(name)
    definition = load_definition(PACKAGED_SEARCHES / f"{name}.toml")
    # kfold: the selected configuration and (unless it is the baseline) the baseline, retrained once per seed.
    assert refit.sum() in ((1, 2) if definition.evaluation.kind == "kfold" else (0,))
    assert (trials["search"] == name).all()
    assert not (trials["status"] == "failed").any(), trials["reason"].dropna().unique()
    assert not trials.duplicated(["phase", "trial_id", "fold"]).any()
    assert (folder / "summary.md").read_text().splitlines()[2].startswith("**")  # the answer comes first
    summary = pd.read_csv(folder / "summary.csv")
    assert summary["rank"].iloc[0] == 1
    assert (folder / "search.toml").read_text() == (PACKAGED_SEARCHES / f"{name}.toml").read_text()
    keras.saving.load_model(folder / "best_model.keras", safe_mode=True)
    assert [p.name for p in folder.rglob(".*") if p.name != ".lock"] == []


#: Named searches whose code path another end-to-end test runs on tiny data: moons_l2_nested is moons_l2_cv's
#: search six times over (five outer folds, then every training row), about 90 s of CPU even at 3 epochs;
#: tests/test_nested.py runs a nested search end to end through the CLI on 24 rows.
RUN_ELSEWHERE = {"moons_l2_nested"}
#: Named searches whose code path another one's end-to-end run takes (each still loads, validates, builds and
#: plans above, where a slip in its file shows): another regularizer kind or another generated dataset on
#: moons_l2's path, moons_activity's placement on circles, and moons_l2_cv's protocol with that placement.
SAME_PATH_AS = {"moons_l1": "moons_l2", "moons_l1_l2": "moons_l2", "rings_l2": "moons_l2",
                "circles_activity": "moons_activity", "circles_activity_cv": "moons_l2_cv"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.filterwarnings("ignore:constrained_layout not applied")
@pytest.mark.parametrize("name", [name for name in SEARCHES if name not in RUN_ELSEWHERE | set(SAME_PATH_AS)])
def test_each_search_runs_end_to_end_through_the_cli(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the packaged definitions, not a local searches/ folder
    assert main(cli_arguments(name)) == 0
    check_outputs(tmp_path / "results" / name, name)


#: One named search per code path (strategy, protocol, HyperModel, placement, searched patience or learning rate)
#: runs again on JAX; the others repeat a path (moons_l1 is moons_l2 with another kind). moons_constraints and
#: moons_dropout do not: a constraint and dropout are members' layers, which tests/test_population.py trains on JAX
#: against the same member alone (moons_hyperband searches dropout here, and moons_bayes's space holds both).
#: Nor does moons_l2: its path is taken here by others on JAX, coarse_to_fine by moons_l2_cv, the tutorial
#: protocol by moons_early_stopping, moons_activity and moons_sgd_lr, L2 on the hidden kernel with objective
#: test_accuracy by moons_hyperband (and moons_l2 itself runs end to end on TensorFlow above). Keras picks its
#: backend once per process, so each batch is one process; batches of about equal time spread over the test
#: workers (pytest-xdist's ``xdist_group`` no longer groups under pytest 9.2: pytest-xdist issue 1386).
ON_JAX = {
    "models": ["digits_cnn", "sequence_lstm"],
    "protocols": ["moons_l2_cv", "moons_bayes", "moons_hyperband", "moons_early_stopping", "moons_activity",
                  "moons_sgd_lr"],
}
#: Batches whose programs repeat (sequence_lstm's LSTM, called eagerly on each member, compiles the same ``scan``
#: each time): they keep JAX's compilation cache (:func:`on_jax.jax_environment`); the others would pay for it.
CACHED_ON_JAX = {"models"}

#: Runs named searches in one process under another backend (Keras picks its backend once, at import).
OTHER_BACKEND = """
import json, sys
import keras
from regsearch.cli import main
assert keras.backend.backend() == "jax", keras.backend.backend()
print(json.dumps({name: main(arguments) for name, arguments in json.loads(sys.argv[1]).items()}))
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("batch", ON_JAX)
def test_each_code_path_runs_end_to_end_on_jax(batch: str, tmp_path: Path, subtests: pytest.Subtests) -> None:
    arguments = {name: cli_arguments(name) for name in ON_JAX[batch]}
    env = jax_environment(tmp_path / "jax-cache" if batch in CACHED_ON_JAX else None)
    done = subprocess.run([sys.executable, "-c", OTHER_BACKEND, json.dumps(arguments)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ON_JAX[batch]:
        with subtests.test(search=name):
            assert codes[name] == 0, done.stderr[-3000:]
            check_outputs(tmp_path / "results" / name, name)


def test_an_unknown_search_name_prints_the_known_names_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no_such_search"]) == 2
    error = capsys.readouterr().err
    assert all(f"'{name}'" in error for name in SEARCHES)
