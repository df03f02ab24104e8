"""The command line: bad input (issue 5.5), one writer (5.3), report (issue 4), safe-mode models (5.8)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from regsearch.cli import build_parser, command, main
from regsearch.definition import known_searches

TINY = """\
description = "tiny search for CLI tests"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-2, 1e-3]
target = "kernel"

[space.dropout]
kinds = ["dropout"]
rates = [0.2]

[search]
strategy = "grid"
repeats = 1  # bookkeeping tests: one seed keeps them cheap (the default is 5)

[training]
epochs = 3

[early_stopping]
patience = 1
"""


def edited(old: str, new: str) -> str:
    assert old in TINY
    return TINY.replace(old, new, 1)


# Each case: the TOML text (None: the tiny one), extra arguments, then what the one-line message must hold:
# where, the setting, the allowed values, what was received.
BAD_INPUT = {
    "unknown search name": (None, ["no_such_search"],
                            ["command line: 'search' must be one of", "'moons_l2'", "got 'no_such_search'."]),
    "malformed TOML": (edited("train_size = 30", "train_size = = 30"), [],
                       ["tiny.toml: 'line 5, column 14' must be valid TOML", "got 'Invalid value'."]),
    "unknown key": (edited("train_size", "train_sise"), [],
                    ["tiny.toml: 'data.train_sise' must be a known key of [data] (nearest: 'train_size')",
                     "'dataset'", "got 'train_sise'."]),
    "unknown top-level key": (edited("description", "descripton"), [],
                              ["tiny.toml: 'descripton' must be a known key of the top level "
                               "(nearest: 'description')", "got 'descripton'."]),
    "unknown dataset": (edited('"moons"', '"moon"'), [],
                        ["tiny.toml: 'data.dataset' must be one of 'moons'", "(nearest: 'moons')", "got 'moon'."]),
    "wrong type": (edited("epochs = 3", 'epochs = "ten"'), [],
                   ["tiny.toml: 'training.epochs' must be an integer >= 1; got 'ten'."]),
    "wrong type of a model key": (edited("hidden = [8]", 'hidden = "8"'), [],
                                  ["tiny.toml: 'model.hidden' must be a non-empty list", "got '8'."]),
    "negative strength": (edited("1e-3]", "-1e-3]"), [],
                          ["tiny.toml: 'space.regularizer.strengths' must be positive; got -0.001."]),
    "dropout rate >= 1": (edited("rates = [0.2]", "rates = [1.0]"), [],
                          ["tiny.toml: 'space.dropout.rates' must be below 1.0; got 1.0."]),
    "patience < 0": (edited("patience = 1", "patience = -1"), [],
                     ["tiny.toml: 'early_stopping.patience' must be an integer >= 0; got -1."]),
    "epochs < 1 in the file": (edited("epochs = 3", "epochs = 0"), [],
                               ["tiny.toml: 'training.epochs' must be an integer >= 1; got 0."]),
    "epochs < 1 on the command line": (None, ["--epochs", "0"],
                                       ["command line: '--epochs' must be an integer >= 1; got 0."]),
    "epochs not a number": (None, ["--epochs", "x"], ["command line: '--epochs' must be an integer; got 'x'."]),
    "split larger than the data": (edited("train_size = 30", "train_size = 500"), [],
                                   ["tiny.toml: 'data.train_size' must be an int in [1, 99] or a fraction",
                                    "of 100 rows; got 500."]),
    "results folder under a file": (None, ["--results", "{tmp}/tiny.toml/results"],
                                    ["command line: '--results' must be a folder regsearch can create and write",
                                     "tiny.toml is not a folder)'."]),
    "unknown option": (None, ["--bogus"],
                       ["command line: 'option' must be one of --", "--epochs, --help, --lease, --max-trials", "--results",
                        "; got '--bogus'."]),
    "repeats < 1": (None, ["--repeats", "0"], ["command line: '--repeats' must be an integer >= 1; got 0."]),
    "max trials on a grid": (None, ["--max-trials", "3"],
                             ["command line: '--max-trials' must be left out for strategy 'grid'", "got 3."]),
    "a model too large for memory": (edited("hidden = [8]", "hidden = [200000000]"), [],
                                     ["tiny.toml: 'model' must be a model whose training run fits in the ",
                                      " GiB available (make it or batch_size smaller); got 'a run needing about ",
                                      " GiB (weights 3.0 GiB, optimizer state 6.0 GiB, activations of 70 rows "]),
    "two search names": (None, ["moons_l1"],
                         ["command line: 'arguments' must be one search name", "got ['moons_l1']."]),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, extra, expected = BAD_INPUT[case]
    monkeypatch.chdir(tmp_path)
    definition = tmp_path / "tiny.toml"
    definition.write_text(text if text is not None else TINY)
    command = [] if extra and extra[0] == "no_such_search" else [str(definition)]
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if "--results" not in arguments:
        arguments += ["--results", str(tmp_path / "results")]

    code = main([*command, *arguments])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("regsearch: error: ")
    for part in expected:
        assert part in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]  # nothing written


def test_bad_input_from_a_fresh_process_is_one_line_on_stderr(tmp_path: Path) -> None:
    # A fresh process imports TensorFlow to validate, which logs to stderr unless told otherwise.
    definition = tmp_path / "tiny.toml"
    definition.write_text(edited("1e-3]", "-1e-3]"))
    completed = subprocess.run([sys.executable, "-m", "regsearch", str(definition), "--results",
                                str(tmp_path / "results")], capture_output=True, text=True,
                               env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        f"regsearch: error: {definition}: 'space.regularizer.strengths' must be positive; got -0.001."
    ]
    assert not (tmp_path / "results").exists()


def test_unknown_search_name_lists_every_known_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["moons_l3"]) == 2
    error = capsys.readouterr().err
    for name in known_searches():
        assert f"'{name}'" in error
    assert "(did you mean 'moons_l2'?)" in error


def test_list_shows_every_named_search(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in known_searches():
        assert name in out


def test_the_command_runs_main_on_its_arguments_and_leaves_what_is_alive_to_the_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``regsearch`` and ``python -m regsearch``: main's exit code, then every object frozen (Python's last
    collection at exit skips them; ``benchmarks/exit.py`` measures the second it saves)."""
    monkeypatch.setattr(sys, "argv", ["regsearch", "moons_l3"])
    frozen = gc.get_freeze_count()
    alive = [object() for _ in range(3)], {"a": [1]}  # tracked objects created after any earlier freeze
    assert command() == 2
    assert "'moons_l3'" in capsys.readouterr().err
    assert gc.get_freeze_count() > frozen and not any(o is alive for o in gc.get_objects())  # not collectable


def test_parser_options() -> None:
    options = {o for action in build_parser()._actions for o in action.option_strings}
    assert {"--results", "--epochs", "--max-trials", "--overwrite", "--quiet"} <= options


# --- one tiny search, shared by the tests below ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    definition = root / "tiny.toml"
    definition.write_text(TINY)
    assert main([str(definition), "--results", str(root / "results"), "--quiet"]) == 0
    return root / "results"


def test_a_search_writes_its_outputs_and_a_copy_of_its_definition(tiny_results: Path) -> None:
    folder = tiny_results / "tiny"
    for name in ("trials.csv", "summary.csv", "summary.md", "report.html", "accuracy_vs_strength.png",
                 "learning_curves.png", "differences_to_baseline.png", "decision_boundary.png", "best_model.keras",
                 "baseline_model.keras", "search.toml"):
        assert (folder / name).is_file(), name
    assert (folder / "search.toml").read_text() == TINY
    assert len([p for p in (folder / "tensorboard").iterdir() if p.is_dir()]) == len(pd.read_csv(folder / "trials.csv"))
    # Every search run updates the index of its results folder.
    index = (tiny_results / "index.html").read_text()
    assert '<a href="tiny/report.html">tiny</a>' in index and "tiny search for CLI tests" in index
    assert "[tiny](tiny/summary.md)" in (tiny_results / "README.md").read_text()  # and its README.md, alike


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_the_baseline_model_is_the_unregularized_one(tiny_results: Path) -> None:
    baseline = keras.saving.load_model(tiny_results / "tiny" / "baseline_model.keras", safe_mode=True)
    best = keras.saving.load_model(tiny_results / "tiny" / "best_model.keras", safe_mode=True)

    def strengths(model: keras.Model) -> list[float | None]:
        return [None if layer.kernel_regularizer is None else pytest.approx(layer.kernel_regularizer.l2)
                for layer in model.layers if isinstance(layer, keras.layers.Dense)]

    def dropout_rates(model: keras.Model) -> list[float]:
        return [pytest.approx(layer.rate) for layer in model.layers if isinstance(layer, keras.layers.Dropout)]

    assert strengths(baseline) == [None, None] and dropout_rates(baseline) == []
    # best_model.keras is the configuration ranked first, whichever it is (the baseline too can win).
    first = pd.read_csv(tiny_results / "tiny" / "summary.csv").iloc[0]
    if first["phase"] == "baseline":
        assert strengths(best) == [None, None] and dropout_rates(best) == []
    else:
        assert strengths(best) == [first["param_strength"], None] and dropout_rates(best) == [0.2]  # the hidden layer


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_best_model_loads_in_safe_mode(tiny_results: Path) -> None:
    model = keras.saving.load_model(tiny_results / "tiny" / "best_model.keras", safe_mode=True)
    predictions = model.predict(np.zeros((3, 2), dtype="float32"), verbose=0)
    assert predictions.shape == (3, 1)


def test_a_second_writer_is_refused_while_the_folder_is_locked(
    tiny_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tiny_results / "tiny"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from regsearch.atomic import ResultsLock; "
         "ResultsLock(sys.argv[1]).acquire(); print('locked', flush=True); sys.stdin.read()", str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
        definition = tiny_results.parent / "tiny.toml"

        assert main([str(definition), "--results", str(tiny_results)]) == 2
        errors = capsys.readouterr().err.splitlines()
        message = (f"regsearch: error: command line: '--results' must be a folder no other regsearch run is "
                   f"writing to (wait for that run to finish, or pass another --results); "
                   f"got '{folder}, locked by pid {holder.pid}'.")
        assert errors == [message]
        # report neither waits nor writes there: it says how far the search holding the lock got.
        assert main(["report", "tiny", "--results", str(tiny_results)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"{folder}/: a search is running there (pid {holder.pid}), 3 runs of 3 "
                                 "configurations recorded so far, best run val_accuracy=")
        assert out[0].endswith("; it writes the report when it ends (nothing rewritten here)")
        assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    finally:
        holder.stdin.close()
        holder.wait()


def test_report_rebuilds_from_saved_runs_without_training(
    tiny_results: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import regsearch.search

    def no_training(*args, **kwargs):
        raise AssertionError("report must not run a search")

    monkeypatch.setattr(regsearch.search, "run_search", no_training)
    folder = tiny_results / "tiny"
    trials = pd.read_csv(folder / "trials.csv")
    tuner_files = {p: p.stat().st_mtime_ns for p in (folder / "tuner").rglob("*") if p.is_file()}
    rebuilt = ("summary.csv", "summary.md", "report.html", "accuracy_vs_strength.png", "learning_curves.png",
               "decision_boundary.png")
    for name in ("trials.csv", *rebuilt):
        (folder / name).unlink()
    (tiny_results / "index.html").unlink()

    # The names may come after the options too, as in `regsearch report --results DIR tiny`.
    assert main(["report", "--results", str(tiny_results), "--quiet", "tiny"]) == 0

    pd.testing.assert_frame_equal(pd.read_csv(folder / "trials.csv"), trials)
    for name in rebuilt:  # the decision boundary from the saved models, over the data generated again
        assert (folder / name).is_file(), name
    assert '<a href="tiny/report.html">tiny</a>' in (tiny_results / "index.html").read_text()
    assert {p: p.stat().st_mtime_ns for p in (folder / "tuner").rglob("*") if p.is_file()} == tuner_files

    assert main(["report", "--results", str(tiny_results)]) == 0
    index = (tiny_results / "README.md").read_text()
    assert "[tiny](tiny/summary.md)" in index
    assert "tiny search for CLI tests" in index
    assert f"wrote {tiny_results / 'README.md'}" in capsys.readouterr().out


def test_report_in_a_fresh_clone_rebuilds_every_search_from_trials_csv(
    tiny_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What git holds (tuner/ is ignored): trials.csv, search.toml, the pages and models. Nothing is lost."""
    import shutil

    results = tmp_path / "results"
    for name in ("tiny", "other"):  # two searches, neither with tuner state
        shutil.copytree(tiny_results / "tiny", results / name, ignore=shutil.ignore_patterns("tuner", "tensorboard"))
    before = {name: pd.read_csv(results / name / "summary.csv") for name in ("tiny", "other")}
    (results / "other" / "summary.csv").unlink()
    (results / "other" / "report.html").unlink()
    curves = (results / "tiny" / "learning_curves.png").read_bytes()

    assert main(["report", "--results", str(results)]) == 0

    readme, index = (results / "README.md").read_text(), (results / "index.html").read_text()
    for name in ("tiny", "other"):
        assert f"[{name}]({name}/summary.md)" in readme and f'<a href="{name}/report.html">{name}</a>' in index
        pd.testing.assert_frame_equal(pd.read_csv(results / name / "summary.csv"), before[name])
        # The learning curves (trials.csv has no epochs) stay on the page as they were drawn.
        assert 'id="learning_curves.png"' in (results / name / "report.html").read_text()
        assert "](learning_curves.png)" in (results / name / "summary.md").read_text()
    assert (results / "tiny" / "learning_curves.png").read_bytes() == curves
    assert capsys.readouterr().out.splitlines()[:2] == [f"rebuilt {results / 'other'}/", f"rebuilt {results / 'tiny'}/"]

    # Rebuilding one search keeps both indexes listing both.
    assert main(["report", "tiny", "--results", str(results), "--quiet"]) == 0
    assert "[other](other/summary.md)" in (results / "README.md").read_text()
    assert '<a href="other/report.html">other</a>' in (results / "index.html").read_text()


def test_a_user_readme_in_the_results_folder_is_left_alone(tiny_results: Path, tmp_path: Path) -> None:
    import shutil

    from regsearch.report import write_index

    shutil.copytree(tiny_results / "tiny", tmp_path / "tiny", ignore=shutil.ignore_patterns("tuner", "tensorboard"))
    (tmp_path / "README.md").write_text("# my project\n")
    write_index(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# my project\n"
    assert '<a href="tiny/report.html">tiny</a>' in (tmp_path / "index.html").read_text()


def test_report_of_an_unknown_search_exits_2(tiny_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "no_such", "--results", str(tiny_results)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"regsearch: error: command line: 'report name' must be a search with saved runs in {tiny_results}/: tiny; "
        "got 'no_such'."
    ]


def test_report_without_saved_runs_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--results", str(tmp_path / "results")]) == 2
    assert "'--results' must be a folder with saved searches" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_the_progress_bar_counts_a_population_in_training_and_then_its_runs() -> None:
    import io
    import types

    from rich.console import Console

    from regsearch.cli import _Progress
    from regsearch.population.progress import PopulationProgress

    definition = types.SimpleNamespace(name="toy", repeats=2, objective="test_accuracy", direction="max",
                                       evaluation=types.SimpleNamespace(runs_per_seed=1))
    with _Progress(Console(file=io.StringIO()), definition) as progress:
        progress.phase("grid", 3)  # 3 trials x 2 repeats
        task = progress.progress.tasks[0]
        assert task.total == 6
        progress.population(PopulationProgress(members=6, alive=4, epochs_done=700, epochs=300, runs_done=2.5))
        assert task.completed == 2.5 and task.fields["training"] == "4/6 training, 700/1800 epochs"
        for accuracy in (0.8, 0.9, 0.85):
            progress.run({"status": "completed", "test_accuracy": accuracy})
        assert task.completed == 3 and task.fields["training"] == "" and task.fields["best"] == "test_accuracy=0.9000"
