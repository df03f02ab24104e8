"""Issue 26, items 3 and 6: nested cross-validation, and a split (or folds) drawn per seed."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regsearch.definition import load_definition
from regsearch.definition.build import make_folds as definition_folds
from regsearch.definition.build import make_outer_folds, outer_split
from regsearch.errors import SettingError
from regsearch.evaluation import Protocol, make_folds, outer_folds
from regsearch.evaluation.nested import assess_nested, outer_fold_table
from regsearch.report import trials_frame
import fake_hypermodel as fake

# 23 rows of three classes, 11 + 7 + 5: no fold count divides them evenly.
Y = np.array([0] * 11 + [1] * 7 + [2] * 5)


def class_counts(rows: np.ndarray) -> np.ndarray:
    return np.bincount(Y[rows], minlength=3)


# --- a split per seed ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [Protocol("holdout", validation_size=0.3, split_per_seed=True),
                                      Protocol("kfold", folds=4, split_per_seed=True)])
def test_each_seed_draws_its_own_stratified_split_the_same_seed_the_same(protocol: Protocol) -> None:
    folds = make_folds(protocol, Y, classification=True, seed=5, seeds=3)
    per_repeat = {r: [f for f in folds if f.repeat == r] for r in range(3)}
    assert sorted(per_repeat) == [0, 1, 2] and all(f.repeat in (0, 1, 2) for f in folds)
    # The first seed's split is the one a fixed split draws; the others are drawn with their own seeds.
    fixed = make_folds(dataclasses.replace(protocol, split_per_seed=False), Y, classification=True, seed=5)
    for mine, its in zip(per_repeat[0], fixed):
        assert np.array_equal(mine.validation, its.validation) and mine.index == its.index
    for r in (1, 2):
        alone = make_folds(dataclasses.replace(protocol, split_per_seed=False), Y, classification=True, seed=5 + r)
        assert all(np.array_equal(a.validation, b.validation) for a, b in zip(per_repeat[r], alone))
    assert not np.array_equal(per_repeat[0][0].validation, per_repeat[1][0].validation)
    again = make_folds(protocol, Y, classification=True, seed=5, seeds=3)
    assert all(np.array_equal(a.validation, b.validation) and np.array_equal(a.train, b.train)
               for a, b in zip(folds, again))
    for r, own in per_repeat.items():
        assert [f.index for f in own] == list(range(len(own)))
        for fold in own:
            assert set(fold.train).isdisjoint(fold.validation)
            assert sorted(np.concatenate([fold.train, fold.validation])) == list(range(len(Y)))
            # Stratified: every class in the held-out part, each within one row of its share.
            expected = np.bincount(Y) * len(fold.validation) / len(Y)
            assert (class_counts(fold.validation) > 0).all()
            assert np.all(np.abs(class_counts(fold.validation) - expected) < 1)
        if protocol.kind == "kfold":
            assert sorted(np.concatenate([f.validation for f in own])) == list(range(len(Y)))


def test_a_split_per_seed_never_holds_a_test_row(tmp_path: Path) -> None:
    """Folds index the training rows only: the test rows are not passed, and no index reaches them."""
    definition = load_definition(write(tmp_path, TINY + "[evaluation]\nsplit_per_seed = true\n"))
    from regsearch.definition.build import load_data

    split = load_data(definition)
    folds = definition_folds(definition, split)
    assert sorted({f.repeat for f in folds}) == list(range(definition.repeats))
    for fold in folds:
        assert max(fold.train.max(), fold.validation.max()) < split.n_train
        assert len(np.union1d(fold.train, fold.validation)) == split.n_train


class RowCounting(fake.FakeHyperModel):
    """Scores a run by the rows it was given: ``val_loss`` the sum of its validation rows' x."""

    def run(self, hp, model, x, y, **kwargs):
        result = super().run(hp, model, x, y, **kwargs)
        result.metrics = {**result.metrics, "val_loss": float(kwargs["validation_data"][0].sum()),
                          "train_loss": float(x.sum())}
        return result


def test_a_tuner_trains_each_seed_on_its_own_folds_only(tmp_path: Path) -> None:
    x = np.arange(len(Y), dtype="float32").reshape(-1, 1)
    folds = make_folds(Protocol("kfold", folds=3, split_per_seed=True), Y, classification=True, seed=7, seeds=2)
    tuner = fake.make_tuner("grid", RowCounting([50]), tmp_path, repeats=2, seed=7, folds=folds)
    tuner.search(x, Y.astype("float32"), epochs=1, verbose=0)
    from regsearch.tuners import read_runs

    records = read_runs(tuner)[0]
    assert [(r["repeat"], r["seed"], r["fold"]) for r in records] == [(r, 7 + r, f) for r in (0, 1) for f in range(3)]
    for record in records:
        fold = next(f for f in folds if f.repeat == record["repeat"] and f.index == record["fold"])
        assert record["val_loss"] == x[fold.validation].sum() and record["train_loss"] == x[fold.train].sum()
    with pytest.raises(SettingError, match="'folds' must be folds for every repeat 0 to 2"):
        fake.make_tuner("grid", RowCounting([50]), tmp_path / "other", repeats=3, seed=7, folds=folds)


# --- nested folds -------------------------------------------------------------------------------------------------


def test_outer_folds_partition_the_training_rows_stratified() -> None:
    outers = outer_folds(Protocol("nested", outer_folds=4), Y, classification=True, seed=2)
    assert [o.index for o in outers] == [0, 1, 2, 3]
    assert sorted(np.concatenate([o.assess for o in outers])) == list(range(len(Y)))  # each row assessed once
    for outer in outers:
        assert set(outer.train).isdisjoint(outer.assess)
        assert sorted(np.concatenate([outer.train, outer.assess])) == list(range(len(Y)))
        assert np.all(np.abs(class_counts(outer.assess) - np.bincount(Y) / 4) < 1)  # stratified
    again = outer_folds(Protocol("nested", outer_folds=4), Y, classification=True, seed=2)
    assert all(np.array_equal(a.assess, b.assess) for a, b in zip(outers, again))


@pytest.mark.parametrize("split_per_seed", [False, True])
def test_no_inner_fold_holds_a_row_of_its_outer_fold(tmp_path: Path, split_per_seed: bool) -> None:
    """By indices: an outer fold's search gets its training rows only, and its inner folds index into those."""
    from regsearch.definition.build import load_data
    from regsearch.search import evaluation_options

    text = TINY + f'[evaluation]\nprotocol = "nested"\nouter_folds = 3\nfolds = 2\nsplit_per_seed = ' \
                  f'{str(split_per_seed).lower()}\n'
    definition = load_definition(write(tmp_path, text))
    split = load_data(definition)
    inner_definition = dataclasses.replace(definition, evaluation=definition.evaluation.inner)
    outers = make_outer_folds(definition, split)
    assert len(outers) == 3
    for outer in outers:
        seen = outer_split(split, outer)
        assert np.array_equal(seen.x_train, split.x_train[outer.train])
        assert np.array_equal(seen.x_test, split.x_train[outer.assess])  # its "test" rows are the outer rows
        assert np.array_equal(seen.y_test, split.y_train[outer.assess])
        folds = evaluation_options(inner_definition, seen)["folds"]
        assert len(folds) == 2 * (definition.repeats if split_per_seed else 1)
        for fold in folds:
            for part in (fold.train, fold.validation):
                rows = outer.train[part]  # back to the rows of the whole training set
                assert set(rows).isdisjoint(outer.assess)
                assert set(rows) <= set(outer.train)
        assert "test_data" not in evaluation_options(inner_definition, seen)  # kfold: the folds never score


# --- the assessment -----------------------------------------------------------------------------------------------


def outer_runs(outer: int, scores: dict[str, tuple[float, list[float]]]) -> list[dict]:
    """Runs of one outer fold: per trial (kind, strength) its inner score and its refit's outer scores by seed."""
    records = []
    for trial, (inner, outer_scores) in scores.items():
        kind, strength = ("none", None) if trial == "base" else ("l2", float(trial))
        params = {"param_kind": kind, "param_strength": strength}
        phase = "baseline" if trial == "base" else "coarse"
        for seed in range(len(outer_scores)):
            for fold in range(2):
                records.append({"search": "s", "trial_id": f"{phase}-{trial}", "phase": phase, "repeat": seed,
                                "seed": seed, "fold": fold, "status": "completed", "reason": "", **params,
                                "val_accuracy": inner + (0.01 if fold else -0.01), "outer": outer})
            records.append({"search": "s", "trial_id": f"{phase}-{trial}", "phase": "refit", "repeat": seed,
                            "seed": seed, "fold": None, "status": "completed", "reason": "", **params,
                            "test_accuracy": outer_scores[seed], "outer": outer})
    return records


def test_the_assessment_gives_each_outer_folds_choice_scores_and_optimism() -> None:
    runs = trials_frame(
        outer_runs(0, {"0.01": (0.90, [0.80, 0.84]), "0.1": (0.85, []), "base": (0.80, [0.70, 0.74])})
        + outer_runs(1, {"0.01": (0.70, []), "0.1": (0.88, [0.90, 0.86]), "base": (0.75, [0.80, 0.80])})
        + outer_runs(2, {"0.01": (0.95, [0.90, 0.90]), "0.1": (0.60, []), "base": (0.70, [0.85, 0.85])}))
    table = outer_fold_table(runs, "val_accuracy", "max").set_index("outer")
    assert list(table["configuration"]) == ["kind=l2, strength=0.01", "kind=l2, strength=0.1",
                                            "kind=l2, strength=0.01"]
    assert table["inner"].tolist() == pytest.approx([0.90, 0.88, 0.95])
    assert table["outer_score"].tolist() == pytest.approx([0.82, 0.88, 0.90])
    assert table["baseline_score"].tolist() == pytest.approx([0.72, 0.80, 0.85])
    assert table["difference"].tolist() == pytest.approx([0.10, 0.08, 0.05])
    assert table["optimism"].tolist() == pytest.approx([0.08, 0.00, 0.05])
    nested = assess_nested(runs, "val_accuracy", "max")
    mean, std, low, high = nested.spread("outer_score")
    assert (mean, std, low, high) == pytest.approx((0.8667, np.std([0.82, 0.88, 0.90], ddof=1), 0.82, 0.90),
                                                   abs=1e-4)
    assert nested.choices.to_dict("records") == [
        {"configuration": "kind=l2, strength=0.01", "chosen": 2, "share": pytest.approx(2 / 3)},
        {"configuration": "kind=l2, strength=0.1", "chosen": 1, "share": pytest.approx(1 / 3)}]
    # A loss is better low: the optimism is then the outer loss minus the inner one.
    loss = runs.assign(val_loss=1 - runs["val_accuracy"], test_loss=1 - runs["test_accuracy"])
    by_loss = outer_fold_table(loss, "val_loss", "min")
    assert by_loss["optimism"].tolist() == pytest.approx([0.08, 0.00, 0.05])
    assert by_loss["configuration"].tolist() == list(table["configuration"])


def test_the_page_section_says_the_expected_score_choices_and_optimism() -> None:
    from regsearch.report.nested import nested_choice_table, nested_fold_table, nested_sentence

    runs = trials_frame(outer_runs(0, {"0.01": (0.90, [0.80, 0.84]), "base": (0.80, [0.70, 0.74])})
                        + outer_runs(1, {"0.01": (0.70, []), "base": (0.75, [0.80, 0.80])}))
    nested = assess_nested(runs, "val_accuracy", "max")
    sentence = nested_sentence(nested)
    assert "Each of 2 outer folds ran the whole search" in sentence
    assert "expected accuracy is 0.810 ± 0.014" in sentence  # (0.82 + 0.80) / 2; sd of the two
    assert "No regularization, retrained the same way, scores 0.760 ± 0.057: a difference of +0.050 ± 0.071" \
        in sentence
    assert "an optimism of +0.015 ± 0.092" in sentence  # (0.90 - 0.82 = 0.08, 0.75 - 0.80 = -0.05)
    assert "The outer folds chose 2 different configurations" in sentence
    folds = nested_fold_table(nested)
    assert folds.columns.tolist() == ["outer fold", "chosen", "inner val accuracy", "outer accuracy",
                                      "no regularization: outer accuracy", "difference", "optimism"]
    assert folds.iloc[1].tolist() == ["1", "no regularization", "0.750", "0.800", "0.800", "+0.000", "-0.050"]
    assert nested_choice_table(nested).to_dict("records") == [
        {"configuration": "kind=l2, strength=0.01", "chosen": "1 of 2", "share": "50%"},
        {"configuration": "no regularization", "chosen": "1 of 2", "share": "50%"}]


# --- end to end ---------------------------------------------------------------------------------------------------

TINY = """
description = "tiny"
[data]
dataset = "moons"
train_size = 30
[model]
hypermodel = "RegularizedMLP"
hidden = [4]
[space.regularizer]
kinds = ["l2"]
strengths = [1e-1, 1e-4]
[search]
repeats = 2
[training]
epochs = 3
[early_stopping]
patience = 1
"""


def write(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# 24 training rows, 12 of each class: every outer fold (12 rows) and inner fold (6) is of one size, so the
# engine compiles few programs; the grid holds the baseline (kind "none"), so no phase is added for it. Each
# seed draws its own inner folds (split_per_seed), so that path runs end to end too.
NESTED_TINY = TINY.replace('train_size = 30', 'train_size = 24\nn_samples = 60\nrandom_state = 7').replace(
    'kinds = ["l2"]\nstrengths = [1e-1, 1e-4]', 'kinds = ["none", "l2"]\nstrengths = [1e-1]') + \
    '[evaluation]\nprotocol = "nested"\nouter_folds = 2\nfolds = 2\nsplit_per_seed = true\n'


@pytest.fixture(scope="module")
def nested_search(tmp_path_factory: pytest.TempPathFactory):
    """A nested search (2 outer x 2 inner folds, 2 seeds, 3 epochs) run through the CLI, and every row it trained on.

    Every population the engine opens is recorded with the phase it ran in and the rows it trained and
    validated on, as indices into the training rows (found by their inputs, which are distinct); a row that
    is not a training row (a test row) is recorded as -1.
    """
    import regsearch.population as population
    from regsearch.cli import main
    from regsearch.definition.build import load_data

    root = tmp_path_factory.mktemp("nested")
    path = write(root, NESTED_TINY)
    definition = load_definition(path)
    split = load_data(definition)
    index = {tuple(row): i for i, row in enumerate(np.asarray(split.x_train))}
    assert len(index) == split.n_train and not set(index) & {tuple(row) for row in np.asarray(split.x_test)}
    seen: list[tuple[str, set[int], set[int]]] = []
    phase = ["none"]
    original = population.open_populations

    def spying(models, data, validation, **kwargs):
        train, held = ({index.get(tuple(row), -1) for row in np.asarray(part[0])} if part is not None else set()
                       for part in (data, validation))
        seen.append((phase[0], train, held))
        return original(models, data, validation, **kwargs)

    import regsearch.cli as cli

    started = cli._Progress.phase

    def on_phase(self, name, planned):
        phase[0] = name
        return started(self, name, planned)

    patch = pytest.MonkeyPatch()
    patch.setattr(population, "open_populations", spying)
    patch.setattr(cli._Progress, "phase", on_phase)
    try:
        assert main([str(path), "--results", str(root / "results")]) == 0
    finally:
        patch.undo()
    return definition, split, root / "results" / "tiny", seen


@pytest.mark.slow
def test_a_nested_search_end_to_end(nested_search, tmp_path: Path, subtests: pytest.Subtests) -> None:
    """One test over the module's nested search, so that it runs once (two test workers would each make it)."""
    for check in (nested_folds_never_let_an_outer_folds_rows_reach_its_search,
                  a_nested_search_reports_the_procedure_choices_and_optimism,
                  the_report_command_rebuilds_the_nested_section):
        with subtests.test(check=check.__name__):
            check(nested_search, tmp_path)


def nested_folds_never_let_an_outer_folds_rows_reach_its_search(nested_search, tmp_path: Path) -> None:
    definition, split, _, seen = nested_search
    outers = make_outer_folds(definition, split)
    assert {name for name, _, _ in seen} == {"outer0 grid", "outer1 grid", "grid"}
    for name, train, held in seen:
        assert -1 not in train | held  # no population ever trained or validated on a test row
        assert train.isdisjoint(held)
        if name.startswith("outer"):
            outer = outers[int(name.split()[0].removeprefix("outer"))]
            assert train and (train | held) <= set(outer.train) and (train | held).isdisjoint(outer.assess), name
    for k, outer in enumerate(outers):
        # The inner folds: each seed's two folds of the outer fold's training rows, drawn per seed.
        inner = [frozenset(held) for name, _, held in seen if name == f"outer{k} grid" and held]
        assert len(set(inner)) == 2 * definition.repeats
        # The refit, after the search's last phase: on all of the outer fold's training rows, validated on none.
        assert (set(outer.train), set()) in [(train, held) for name, train, held in seen if name == f"outer{k} grid"]
    assert (set(range(split.n_train)), set()) in [(train, held) for name, train, held in seen if name == "grid"]


def a_nested_search_reports_the_procedure_choices_and_optimism(nested_search, tmp_path: Path) -> None:
    definition, split, folder, _ = nested_search
    outers = make_outer_folds(definition, split)
    runs = pd.read_csv(folder / "nested_trials.csv")
    assert sorted(runs["outer"].unique()) == [0, 1]
    refit = runs[runs["phase"] == "refit"]
    assert refit["test_accuracy"].notna().all() and len(refit) >= 2 * definition.repeats
    # Each outer fold's refit scored its own outer rows: an accuracy is a multiple of one over their count.
    for k, outer in enumerate(outers):
        scores = refit.loc[refit["outer"] == k, "test_accuracy"].to_numpy() * len(outer.assess)
        assert np.allclose(scores, np.round(scores), atol=1e-4)
    assert runs.loc[runs["phase"] != "refit", "test_accuracy"].isna().all()  # the inner folds never score
    table = pd.read_csv(folder / "nested.csv")
    assert table["outer"].tolist() == [0, 1]
    assert np.allclose(table["optimism"], table["inner"] - table["outer_score"])
    page = (folder / "summary.md").read_text()
    assert "## Nested cross-validation: the search procedure on rows it never saw" in page
    assert "The search procedure's expected accuracy is" in page and "an optimism of" in page
    assert "How often each configuration was chosen:" in page
    html = (folder / "report.html").read_text()
    assert 'id="nested"' in html and "expected accuracy" in html
    # The page's answer is the search on every training row, assessed on the test rows (kfold's refit).
    trials = pd.read_csv(folder / "trials.csv")
    assert "outer" not in trials.columns and (trials["phase"] == "refit").any()
    assert trials.loc[trials["phase"] == "refit", "test_accuracy"].notna().all()


def the_report_command_rebuilds_the_nested_section(nested_search, tmp_path: Path) -> None:
    import shutil

    from regsearch.cli import main

    _, _, folder, _ = nested_search
    copy = tmp_path / "results" / "tiny"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("tuner"))  # what a clone has: the committed files
    before = pd.read_csv(folder / "nested.csv")
    (copy / "nested.csv").unlink()
    assert main(["report", "--results", str(tmp_path / "results"), "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(copy / "nested.csv"), before)
    assert "## Nested cross-validation" in (copy / "summary.md").read_text()


def test_a_nested_search_with_a_time_limit_or_distributed_is_refused(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from regsearch.cli import main

    path = write(tmp_path, NESTED_TINY)
    assert main([str(path), "--results", str(tmp_path / "r"), "--time-limit", "60"]) == 2
    assert "'--time-limit' must be left out for protocol 'nested'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert math.isclose(load_definition(path).evaluation.outer_folds, 2)
    from regsearch.search import run_search

    definition = dataclasses.replace(load_definition(path), time_limit=60.0)
    with pytest.raises(SettingError, match="'search.time_limit' must be left out for protocol 'nested'"):
        run_search(definition, tmp_path / "api")
    with pytest.raises(SettingError, match="'evaluation.protocol' must be a protocol other than 'nested' for a "
                                           "distributed search"):
        run_search(load_definition(path), tmp_path / "api", serve=lambda tuner, phase: None)
    assert not (tmp_path / "api").exists()
