"""A damaged results folder (issue 28.3): each file cut short, emptied or overwritten is detected.

The run falls back to the last good state (a trial trained again, the tuner's
state rebuilt, a report file written anew) or ends in one line naming the file
and what to do, exit code 2; never a traceback, never a table read as if whole.
One tiny search runs once for the module; each case damages a copy of its folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from regsearch.cli import main
from regsearch.damaged import DamagedFileError, check_table, read_json
from regsearch.results import open_results

TINY = """\
description = "a damaged folder"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-2, 1e-3]

[search]
repeats = 2

[training]
epochs = 2
"""

#: Columns that differ between two runs of the same trials (wall time, the process).
UNSTABLE = ["seconds", "worker"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished tiny search: (its definition, its results folder)."""
    root = tmp_path_factory.mktemp("damaged")
    definition = root / "tiny.toml"
    definition.write_text(TINY)
    assert main([str(definition), "--results", str(root / "results"), "--quiet"]) == 0
    return definition, root / "results"


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "cut":  # a copy or a sync cut short
        path.write_bytes(data[: len(data) // 2])
    elif how == "last line cut":
        assert data.endswith(b"\n")
        path.write_bytes(data[:-7])
    elif how == "zero bytes":
        path.write_bytes(b"")
    elif how == "overwritten":
        path.write_bytes(b"\x00\x9f garbage " * 20)
    else:
        raise ValueError(how)


def files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def trials(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "trials.csv").drop(columns=UNSTABLE)


def copy_of(results: Path, tmp_path: Path) -> tuple[Path, Path]:
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    return copy, copy / "tiny"


# (file, damage, command, without the tuner's state): refused in one line, exit 2, nothing changed.
REFUSED = [
    ("trials.csv", "last line cut", "report", True),
    ("trials.csv", "zero bytes", "report", True),
    ("provenance.json", "cut", "report", False),
    ("search.toml", "cut", "report", False),
    ("best_model.keras", "cut", "report", False),
    ("baseline_model.keras", "overwritten", "report", False),
    ("tuner/grid/trial_0001/runs.json", "cut", "report", False),
    ("tuner/grid/trial_0000/trial.json", "zero bytes", "report", False),
    ("tuner/settings.json", "cut", "search", False),
    ("outcomes.npz", "overwritten", "report", True),
    ("tuner/grid/trial_0001/rows.npz", "cut", "report", False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "how", "command", "no_tuner"), REFUSED)
def test_a_damaged_file_that_cannot_be_rebuilt_is_refused_in_one_line(
        finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, how: str,
        command: str, no_tuner: bool) -> None:
    definition, results = finished
    copy, folder = copy_of(results, tmp_path)
    if no_tuner:  # a fresh clone: the tuner's state is not committed
        shutil.rmtree(folder / "tuner")
    damage(folder / name, how)
    before = files(copy)
    capsys.readouterr()
    argv = ["report"] if command == "report" else [str(definition)]
    assert main([*argv, "--results", str(copy), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"regsearch: error: {folder / name} is damaged (")
    assert ("restore it" in err or "trains that trial again" in err or "--overwrite" in err), err
    assert files(copy) == before  # nothing lost, nothing half-rewritten: the damaged file is left for the user


# (file, damage, command, trials trained again): the run falls back to the last good state and ends as if whole.
REBUILT = [
    ("tuner/grid/trial_0001/runs.json", "zero bytes", "search", ["grid/trial_0001"]),
    ("tuner/grid/trial_0000/trial.json", "cut", "search", ["grid/trial_0000"]),
    ("tuner/baseline/trial_0000/checkpoint.weights.h5", "cut", "search", ["baseline/trial_0000"]),
    ("tuner/grid/trial_0000/rows.npz", "zero bytes", "search", ["grid/trial_0000"]),
    ("tuner/grid/oracle.json", "cut", "search", []),
    ("tuner/grid/tuner0.json", "zero bytes", "search", []),
    ("trials.csv", "last line cut", "search", []),
    ("trials.csv", "last line cut", "report", []),
    ("provenance.json", "zero bytes", "search", []),
    ("search.toml", "cut", "search", []),
    ("best_model.keras", "cut", "search", []),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "how", "command", "retrained"), REBUILT)
def test_a_damaged_file_is_rebuilt_from_the_last_good_state(
        finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, how: str,
        command: str, retrained: list[str]) -> None:
    definition, results = finished
    copy, folder = copy_of(results, tmp_path)
    damage(folder / name, how)
    runs_before = {p: p.read_bytes() for p in folder.glob("tuner/*/trial_*/runs.json")}
    capsys.readouterr()
    argv = ["report"] if command == "report" else [str(definition)]
    assert main([*argv, "--results", str(copy)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if name.startswith("tuner/"):  # the fallback is said in one line
        assert [line for line in err.splitlines() if "is damaged" in line] == [
            line for line in err.splitlines() if line.startswith(f"regsearch: {folder / name} is damaged (")]
        assert len([line for line in err.splitlines() if "is damaged" in line]) == 1, err
    # Only the damaged trial trained again; every other run is the one recorded before.
    changed = sorted(str(p.parent.relative_to(folder / "tuner")) for p, data in runs_before.items()
                     if p.read_bytes() != data)
    assert changed == retrained
    for path in folder.glob("tuner/*/trial_*/*.json"):
        read_json(path, "")
    check_table(folder / "trials.csv", "")
    pd.testing.assert_frame_equal(trials(folder), trials(results / "tiny"))
    assert open_results(folder).best == open_results(results / "tiny").best
    if name.startswith("tuner/"):  # a second rerun finds nothing to repair or train
        runs_after = {p: p.read_bytes() for p in folder.glob("tuner/*/trial_*/runs.json")}
        assert main([str(definition), "--results", str(copy)]) == 0
        assert "damaged" not in capsys.readouterr().err
        assert {p: p.read_bytes() for p in folder.glob("tuner/*/trial_*/runs.json")} == runs_after


@pytest.mark.slow
def test_a_damaged_trial_json_without_its_settings_elsewhere_is_refused(
        finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition, results = finished
    copy, folder = copy_of(results, tmp_path)
    runs = folder / "tuner/grid/trial_0001/runs.json"
    saved = json.loads(runs.read_text())
    del saved["hyperparameters"]  # as regsearch wrote runs.json before it kept them
    runs.write_text(json.dumps(saved))
    damage(folder / "tuner/grid/trial_0001/trial.json", "cut")
    before = files(copy)
    capsys.readouterr()
    assert main([str(definition), "--results", str(copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"regsearch: error: {folder}/tuner/grid/trial_0001/trial.json is damaged (cut short); the trial's settings "
        f"are saved nowhere else: delete {folder}/tuner/grid to train that phase again, or pass --overwrite to "
        "start the search afresh"]
    assert files(copy) == before


@pytest.mark.slow
def test_open_results_and_the_index_name_a_damaged_table(finished: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    definition, results = finished
    copy, folder = copy_of(results, tmp_path)
    damage(folder / "trials.csv", "last line cut")
    with pytest.raises(DamagedFileError, match=r"trials.csv is damaged \(its last line is cut short\); restore it"):
        open_results(folder)
    # Another search of the same results folder still gets its report; the index says what it left out.
    other = copy / "other"
    shutil.copytree(results / "tiny", other)
    capsys.readouterr()
    assert main(["report", "other", "--results", str(copy)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"regsearch: {folder}/trials.csv is damaged (its last line is cut short); restore it "
                                "(from git or a backup) or run the search again, which resumes and writes it anew; "
                                "left out of index.html"]
    assert "other/report.html" in (copy / "index.html").read_text()
    assert "tiny/report.html" not in (copy / "index.html").read_text()


@pytest.mark.parametrize(("text", "problem"), [
    ("a,b\n1,2\n", None),
    ("a,b\n1,2", "its last line is cut short"),
    ("a,b\n1\n", "line 2 has 1 field, its header 2"),
    ("", "empty"),
    ('a,b\n1,2\n"3,4\n', "line 3 has 1 field, its header 2"),  # a quoted field cut short
])
def test_check_table(tmp_path: Path, text: str, problem: str | None) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    if problem is None:
        assert check_table(path, "fix it") == 1
    else:
        with pytest.raises(DamagedFileError) as caught:
            check_table(path, "fix it")
        assert str(caught.value) == f"{path} is damaged ({problem}); fix it"


@pytest.mark.parametrize(("text", "problem"), [
    ('{"a": 1}', None),
    ('{"a": [1, 2', "cut short"),
    ('{"a": 1}}', "not valid JSON at line 1 column 9"),
    ("[1]", "a JSON list where an object belongs"),
    (" \n", "blank"),
])
def test_read_json(tmp_path: Path, text: str, problem: str | None) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    if problem is None:
        assert read_json(path, "fix it") == {"a": 1}
    else:
        with pytest.raises(DamagedFileError, match=rf"^{path} is damaged \({problem}\); fix it$"):
            read_json(path, "fix it")


@pytest.mark.slow
def test_an_oracle_rebuilt_while_a_trial_was_running_trains_that_trial_again(
        finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition, results = finished
    copy, folder = copy_of(results, tmp_path)
    trial = folder / "tuner/grid/trial_0001"
    (trial / "runs.json").unlink()  # killed mid-trial: Keras Tuner had it running, nothing recorded yet
    (trial / "trial.json").write_text(json.dumps({**json.loads((trial / "trial.json").read_text()),
                                                  "status": "RUNNING", "score": None}))
    damage(folder / "tuner/grid/oracle.json", "zero bytes")
    capsys.readouterr()
    assert main([str(definition), "--results", str(copy)]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "damaged" in line] == [
        f"regsearch: {folder}/tuner/grid/oracle.json is damaged (empty); rebuilt from the 2 trials saved beside it"]
    assert (trial / "runs.json").is_file()
    assert sorted(p.parent.name for p in (folder / "tuner/grid").glob("trial_*/trial.json")) == [
        "trial_0000", "trial_0001"]  # trained again under its own id, not a new one
    pd.testing.assert_frame_equal(trials(folder), trials(results / "tiny"))
