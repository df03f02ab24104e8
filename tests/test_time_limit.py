"""A time budget (issue 25.7): no new work once it is spent, a report of what finished, and a rerun resumes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import regsearch
from fake_hypermodel import FakeHyperModel, make_tuner, search
from regsearch.cli import main
from test_cli import TINY
from test_distributed import same_runs
from test_resume import trained_values

VALUES = list(range(1, 21))  # the first 8 searched: Bayesian optimization draws from all 20
SEQUENTIAL = ["--engine", "sequential"]


# --- the tuners' stop_when ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["grid", "bayesian"])
def test_stop_when_ends_a_search_between_trials_and_the_next_search_resumes(tmp_path: Path, kind: str) -> None:
    first = FakeHyperModel(VALUES)
    tuner = make_tuner(kind, first, tmp_path, max_trials=8, stop_when=lambda: len(first.trained) >= 3)
    search(tuner)
    assert len(first.trained) == 3 and tuner.stopped_early
    assert len(tuner.oracle.trials) == 3  # the trial not started was never asked for

    second = FakeHyperModel(VALUES)
    resumed = make_tuner(kind, second, tmp_path, max_trials=8, stop_when=lambda: False)
    search(resumed)
    assert len(second.trained) == 5 and not resumed.stopped_early
    assert len(resumed.oracle.trials) == 8 and trained_values(resumed) == sorted(first.trained + second.trained)
    if kind == "grid":  # each of the first 8 values once
        assert sorted(first.trained + second.trained) == VALUES[:8]


def test_a_finished_search_is_not_stopped_early_whatever_stop_when_says(tmp_path: Path) -> None:
    search(make_tuner("grid", FakeHyperModel(VALUES[:4]), tmp_path))
    again = FakeHyperModel(VALUES[:4])
    tuner = make_tuner("grid", again, tmp_path, stop_when=lambda: True)
    search(tuner)
    assert again.trained == [] and not tuner.stopped_early  # nothing was left: nothing was stopped


def test_stop_when_must_be_callable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'stop_when' must be a function of no arguments"):
        make_tuner("grid", FakeHyperModel(VALUES), tmp_path, stop_when=3600)


# --- bad values, refused by name -------------------------------------------------------------

BAD = {
    "--time-limit 0": ([], ["--time-limit", "0"], "command line: '--time-limit' must be a number of seconds > 0; got 0.0."),
    "--time-limit -5": ([], ["--time-limit", "-5"], "'--time-limit' must be a number of seconds > 0; got -5.0."),
    "--time-limit nan": ([], ["--time-limit", "nan"], "'--time-limit' must be a number of seconds > 0; got nan."),
    "--time-limit inf": ([], ["--time-limit", "inf"], "'--time-limit' must be a number of seconds > 0; got inf."),
    "--time-limit ten": ([], ["--time-limit", "ten"], "command line: '--time-limit' must be a number; got 'ten'."),
    "time_limit = 0": (["time_limit = 0"], [], "tiny.toml: 'search.time_limit' must be a number of seconds > 0; got 0."),
    "time_limit = 'ten'": (['time_limit = "ten"'], [], "'search.time_limit' must be a number of seconds > 0; got 'ten'."),
    "time_limit = true": (["time_limit = true"], [], "'search.time_limit' must be a number of seconds > 0; got True."),
    "with --chief": ([], ["--time-limit", "60", "--chief"],
                     "command line: '--time-limit' must be left out for a distributed search"),
    "in the file, with --worker": (["time_limit = 60"], ["--worker"],
                                   "tiny.toml: 'search.time_limit' must be left out for a distributed search"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_time_limit_is_refused_by_name(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines, arguments, message = BAD[case]
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY.replace('strategy = "grid"', '\n'.join(['strategy = "grid"', *lines])))
    assert main([str(definition), "--results", str(tmp_path / "results"), *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "results").exists()


# --- through the command line ----------------------------------------------------------------


@pytest.mark.slow
def test_a_search_stopped_by_its_time_limit_reports_and_a_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One run at a time, the limit falls between the grid's two trials; the baseline phase is not started."""
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY)
    results, folder = tmp_path / "results", tmp_path / "results" / "tiny"
    stopped = "Stopped by the time limit (0.001 s) after 1 of 3 configurations; rerun the same command to continue."

    assert main([str(definition), "--results", str(results), "--time-limit", "0.001", *SEQUENTIAL]) == 0
    out = capsys.readouterr().out
    assert stopped in out and out.rstrip().endswith(f"results in {folder}/")
    assert stopped in (folder / "summary.md").read_text() and stopped in (folder / "report.html").read_text()
    assert list(pd.read_csv(folder / "trials.csv")["trial_id"]) == ["grid-0000"]
    assert not (folder / "tuner" / "baseline").exists()
    assert main(["report", "tiny", "--results", str(results), "--quiet"]) == 0  # a rebuild says it again
    assert stopped in (folder / "summary.md").read_text() and stopped in (folder / "report.html").read_text()
    opened = regsearch.open_results(folder)
    assert opened.stopped == stopped and opened.answer.endswith(stopped)

    assert main([str(definition), "--results", str(results), *SEQUENTIAL]) == 0  # the same command, no limit
    assert "Stopped" not in capsys.readouterr().out and "Stopped" not in (folder / "summary.md").read_text()
    assert main(["report", "tiny", "--results", str(results), "--quiet"]) == 0
    assert "Stopped" not in (folder / "summary.md").read_text()
    opened = regsearch.open_results(folder)
    assert opened.stopped is None and "Stopped" not in opened.answer
    assert main([str(definition), "--results", str(tmp_path / "uninterrupted"), "--quiet", *SEQUENTIAL]) == 0
    same_runs(folder, tmp_path / "uninterrupted" / "tiny")


@pytest.mark.slow
def test_a_time_limit_in_the_search_file_stops_a_population_between_phases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The population engine trains the grid phase as one population: the limit stops the search before the baseline."""
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY.replace('strategy = "grid"', 'strategy = "grid"\ntime_limit = 0.001'))
    folder = tmp_path / "results" / "tiny"
    assert main([str(definition), "--results", str(tmp_path / "results")]) == 0
    assert ("Stopped by the time limit (0.001 s) after 2 of 3 configurations; rerun the same command to continue."
            in capsys.readouterr().out)
    grid = pd.read_csv(folder / "trials.csv")
    assert set(grid["phase"]) == {"grid"}

    definition.write_text(TINY)  # without the limit, a rerun resumes: the baseline trains, the grid does not again
    assert main([str(definition), "--results", str(tmp_path / "results"), "--quiet"]) == 0
    trials = pd.read_csv(folder / "trials.csv")
    assert list(trials["phase"]) == ["grid", "grid", "baseline"]
    pd.testing.assert_frame_equal(trials[trials["phase"] == "grid"], grid)  # seconds included: the same runs
