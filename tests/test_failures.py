"""Failed trials (issue 5.4) and half-written files (5.2).

A run that raises or diverges is recorded with its status and reason and the
search goes on, past Keras Tuner's limit of consecutive failed trials; a search
whose every run failed exits 1 with a clear message, and still writes
trials.csv with the reasons.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from fake_hypermodel import FakeHyperModel, make_tuner, search
from regsearch import cli
from regsearch.cli import main
from regsearch.results import saved_runs
from regsearch.tuners import read_runs

VALUES = list(range(1, 11))


def records_by_value(tuner) -> dict[int, dict]:
    records, _ = read_runs(tuner)
    return {r["param_value"]: r for r in records}


def test_raising_runs_are_recorded_and_the_search_goes_past_the_consecutive_failure_limit(tmp_path: Path) -> None:
    # Five failures in a row: Keras Tuner's default limit (3) would end the search.
    hypermodel = FakeHyperModel(VALUES, fail_build=(2, 3, 4, 5, 6))
    tuner = make_tuner("grid", hypermodel, tmp_path)
    search(tuner)

    records = records_by_value(tuner)
    assert sorted(records) == VALUES
    for value in (2, 3, 4, 5, 6):
        assert records[value]["status"] == "failed"
        assert records[value]["reason"] == f"ValueError: cannot build a model for value {value}"
        assert tuner.oracle.trials[records[value]["trial_id"].split("-")[1]].status == "FAILED"
    assert {records[v]["status"] for v in (1, 7, 8, 9, 10)} == {"completed"}
    assert tuner.oracle.get_best_trials()[0].hyperparameters.get("value") == 10


def test_diverged_runs_are_recorded_with_their_reason(tmp_path: Path) -> None:
    tuner = make_tuner("grid", FakeHyperModel(VALUES, diverge=(4, 5, 6, 7)), tmp_path)
    search(tuner)
    records = records_by_value(tuner)
    assert sorted(records) == VALUES
    assert {records[v]["status"] for v in (4, 5, 6, 7)} == {"diverged"}
    assert records[4]["reason"] == "the loss became NaN or infinite"


def test_a_trial_failing_outside_its_runs_is_recorded_from_keras_tuner(tmp_path: Path) -> None:
    tuner = make_tuner("grid", FakeHyperModel(VALUES, fail_describe=(3,)), tmp_path / "tuner")
    search(tuner)
    records = records_by_value(tuner)
    assert sorted(records) == VALUES
    assert records[3]["status"] == "failed"
    assert records[3]["reason"] == "RuntimeError: describe cannot handle value 3"
    # `regsearch report` finds the same record in the saved files
    saved, _ = saved_runs(tmp_path)
    assert [(r["trial_id"], r["status"], r["reason"]) for r in saved if r["param_value"] == 3] == [
        (records[3]["trial_id"], "failed", records[3]["reason"])
    ]


def test_failed_trials_print_no_traceback(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    search(make_tuner("grid", FakeHyperModel(VALUES[:4], fail_build=(2, 3)), tmp_path))
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err


# --- through the CLI ---------------------------------------------------------------------------

LEARNING_RATES = """\
description = "SGD with a learning rate that diverges, and one that does not"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]
optimizer = "sgd"
learning_rate = {rates}

[search]
strategy = "grid"
repeats = 1

[training]
epochs = 5

[early_stopping]
patience = "none"
"""


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    definition = tmp_path / "diverging.toml"
    definition.write_text(LEARNING_RATES.format(rates="[1e30, 0.01]"))
    assert main([str(definition), "--results", str(tmp_path / "results"), "--quiet"]) == 0

    folder = tmp_path / "results" / "diverging"
    trials = pd.read_csv(folder / "trials.csv").set_index("param_learning_rate")
    assert trials.loc[1e30, "status"] == "diverged"
    assert trials.loc[1e30, "reason"] == "the loss became NaN or infinite"
    assert pd.isna(trials.loc[1e30, "test_accuracy"])  # NaN weights give no accuracy to rank
    assert trials.loc[0.01, "status"] == "completed"
    summary = pd.read_csv(folder / "summary.csv")
    assert summary.iloc[0]["param_learning_rate"] == 0.01
    assert (folder / "best_model.keras").is_file()


@pytest.mark.slow
def test_a_search_whose_every_run_fails_exits_1_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definition = tmp_path / "all_diverge.toml"
    definition.write_text(LEARNING_RATES.format(rates="[1e30, 1e31]"))
    results = tmp_path / "results"

    assert main([str(definition), "--results", str(results), "--quiet"]) == 1

    error = capsys.readouterr().err.strip()
    folder = results / "all_diverge"
    assert error == (
        "regsearch: search failed: every run of search 'all_diverge' failed (2 runs): "
        f"the loss became NaN or infinite; the reasons are in {folder / 'trials.csv'}"
    )
    trials = pd.read_csv(folder / "trials.csv")
    assert list(trials["status"]) == ["diverged", "diverged"]
    assert "every run failed" in (folder / "summary.md").read_text()
    assert not (folder / "best_model.keras").exists()


# --- no half-written files -----------------------------------------------------------------------


class BrokenModel:
    def save(self, path: str) -> None:
        Path(path).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")


def test_a_failing_model_save_keeps_the_old_best_model_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "best_model.keras"
    target.write_bytes(b"the old model")
    with pytest.raises(OSError):
        cli._save_model_atomic(BrokenModel(), target)
    assert target.read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model.keras"]


def test_keras_tuner_state_files_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from keras_tuner.src import utils

    from regsearch.kt_internals import atomic_keras_tuner_state

    path = tmp_path / "oracle.json"
    with atomic_keras_tuner_state():
        utils.save_json(str(path), {"state": "old"})

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError), atomic_keras_tuner_state():
        utils.save_json(str(path), {"state": "new"})
    assert utils.load_json(str(path)) == {"state": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle.json"]


def test_a_new_run_removes_temporaries_a_killed_run_left(tmp_path: Path) -> None:
    folder = tmp_path / "search"
    (folder / "tuner" / "grid" / "trial_0003").mkdir(parents=True)
    stale = [folder / ".trials.csv.k2j3h.tmp", folder / "tuner" / "grid" / "trial_0003" / ".runs.json.x8y.tmp",
             folder / ".best_model.1234.keras"]
    for path in stale:
        path.write_text("half")
    kept = folder / "trials.csv"
    kept.write_text("whole")
    cli._remove_stale_temporaries(folder)
    assert [p for p in stale if p.exists()] == []
    assert kept.read_text() == "whole"


SOURCES = Path(cli.__file__).parent
WRITES = re.compile(r"\.write_text\(|\.write_bytes\(|\bopen\([^)]*['\"][wa]|\.to_csv\(|\.savefig\(|json\.dump\(|\.save\(")


def test_every_file_the_package_writes_goes_through_regsearch_atomic() -> None:
    allowed = {
        ("atomic.py", "df.to_csv"),  # into a string, then written atomically
        ("atomic.py", "fig.savefig"),  # into memory, then written atomically
        ("cli.py", "model.save(temporary)"),  # to a temporary file, then os.replace
        ("distributed.py", "tuner.save()"),  # Keras Tuner's state, under kt_internals.atomic_keras_tuner_state
        ("tuners.py", "super().save()"),  # the same, in the tuner's own save
        ("tensorboard.py", 'open(folder / name, "wb")'),  # into a new folder that then replaces the old one whole
    }
    found = []
    for path in sorted(SOURCES.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITES.search(line) and not line.lstrip().startswith("#"):
                if not any(path.name == name and text in line for name, text in allowed):
                    found.append(f"{path.relative_to(SOURCES)}:{number}: {line.strip()}")
    assert found == []
