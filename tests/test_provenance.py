"""Provenance (issue 25, item 6): versions, backend, device, command, times; a rerun command that works as written."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from regsearch.cli import main
from regsearch.provenance import rerun_command

SEARCH = """\
description = "provenance test"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [4]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-2, 1e-3]

[search]
repeats = 1
"""


def test_a_named_search_reruns_by_name_and_a_file_by_its_absolute_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert rerun_command("moons_l2") == "python -m regsearch moons_l2"
    assert rerun_command("moons_l2", results="out", options={"--epochs": 5, "--repeats": None}) == (
        f"python -m regsearch moons_l2 --results {tmp_path / 'out'} --epochs 5")
    (tmp_path / "my search.toml").write_text(SEARCH)
    assert rerun_command("my search.toml", results="results") == f"python -m regsearch '{tmp_path / 'my search.toml'}'"


@pytest.mark.slow
def test_the_written_rerun_command_resumes_the_same_folder(tmp_path: Path, monkeypatch) -> None:
    import keras

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    (work / "mine.toml").write_text(SEARCH)
    monkeypatch.chdir(work)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    assert main(["mine.toml", "--results", "out", "--epochs", "2", "--quiet"]) == 0
    folder = work / "out" / "mine"

    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["command"] == "python -m regsearch mine.toml --results out --epochs 2 --quiet"
    assert provenance["rerun"] == f"python -m regsearch {work / 'mine.toml'} --results {work / 'out'} --epochs 2"
    assert provenance["backend"] == keras.backend.backend()
    assert provenance["device"].startswith(("CPU: ", "GPU: "))
    assert provenance["versions"]["keras"] == keras.__version__
    assert {"regsearch", "keras-tuner", "tensorflow", "jax", "python"} <= set(provenance["versions"])
    assert before <= datetime.datetime.fromisoformat(provenance["started"]) <= datetime.datetime.now(datetime.timezone.utc)
    assert 0 < provenance["wall_seconds"] < 600
    for page in ("summary.md", "report.html"):
        text = (folder / page).read_text()
        for shown in (provenance["device"], f"Keras {keras.__version__}", provenance["started"], provenance["rerun"]):
            assert shown in text, (page, shown)

    # Run as written, from another folder: it resumes the same results folder, with nothing left to train.
    trials = pd.read_csv(folder / "trials.csv")
    runs = {p: p.stat().st_mtime_ns for p in folder.rglob("runs.json")}
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # `python`: this one
    done = subprocess.run(provenance["rerun"], shell=True, cwd=elsewhere, capture_output=True, text=True,
                          env={**os.environ, "PATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"results in {folder}/" in done.stdout + done.stderr
    assert list(elsewhere.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("runs.json")} == runs
    pd.testing.assert_frame_equal(pd.read_csv(folder / "trials.csv"), trials)
    assert json.loads((folder / "provenance.json").read_text())["rerun"] == provenance["rerun"]
    assert shlex.split(provenance["rerun"])[:3] == ["python", "-m", "regsearch"]
