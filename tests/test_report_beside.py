"""Two processes, one folder (issue 28.5): ``report`` beside a running search neither blocks nor reads half a file.

The search holds its folder's lock; ``report`` takes no lock it would wait for:
it says in one line how many runs the search has recorded so far and leaves
the folder to the search, which writes the report when it ends. Every file it
reads there was written whole (renamed into place), so each report parses
what it reads, whatever instant it runs at.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from regsearch.cli import main
from regsearch.damaged import read_json

SEARCH = """\
description = "report beside a search"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-1, 1e-3, 1e-5]

[search]
repeats = 2

[training]
epochs = 20

[early_stopping]
patience = "none"
"""

class OpenedUnder:
    """Every file this process opens under ``folder`` while in a ``with`` block: [path, mode, flags] each.

    An audit hook cannot be removed once added, so one hook serves every block and records only inside one.
    The mode is None where the file was opened with ``os.open``.
    """

    _recording: list[tuple[str, list[list[Any]]]] = []
    _hooked = False

    def __init__(self, folder: Path) -> None:
        self.folder, self.opened = str(folder), []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        if event == "open" and cls._recording and isinstance(args[0], str):
            folder, opened = cls._recording[-1]
            if args[0].startswith(folder):
                opened.append([args[0], args[1], args[2]])

    def __enter__(self) -> list[list[Any]]:
        if not OpenedUnder._hooked:
            sys.addaudithook(OpenedUnder._hook)
            OpenedUnder._hooked = True
        OpenedUnder._recording.append((self.folder, self.opened))
        return self.opened

    def __exit__(self, *exc: object) -> None:
        OpenedUnder._recording.pop()


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def runs_recorded(folder: Path) -> int:
    return sum(len(read_json(p, "")["runs"]) for p in folder.glob("tuner/*/trial_*/runs.json"))


@pytest.mark.slow
def test_report_beside_a_running_search_answers_at_once_from_whole_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = tmp_path / "beside.toml"
    definition.write_text(SEARCH)
    results = tmp_path / "results"
    folder = results / "beside"
    search = subprocess.Popen([sys.executable, "-m", "regsearch", str(definition), "--results", str(results),
                               "--quiet", "--engine", "sequential"],  # one trial at a time: runs.json files one by one
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reports = []
    try:
        # Reports one after the other while the search runs, until three have found runs recorded.
        while search.poll() is None and sum(r[2] > 0 for r in reports) < 3:
            low = runs_recorded(folder) if folder.is_dir() else 0
            capsys.readouterr()
            with OpenedUnder(results) as opened:  # in this process: the search's is another one
                code = main(["report", "--results", str(results)])
            out, err = capsys.readouterr()
            report = subprocess.CompletedProcess(["report"], code, out, err)
            high = runs_recorded(folder) if folder.is_dir() else 0
            running = search.poll() is None
            reports.append((report, opened, low, high, running))
            time.sleep(0.2)  # a report costs little in this process: leave the cores to the search
        search.wait(timeout=600)
    finally:
        if search.poll() is None:
            search.kill()
        _, search_err = search.communicate()
    assert search.returncode == 0, search_err[-3000:]

    seen = []  # the runs each report beside the running search counted
    for report, opened, low, high, running in reports:
        assert "Traceback" not in report.stderr and "damaged" not in report.stderr, report.stderr[-3000:]
        if report.returncode == 2:  # before the search's first trial: nothing to report yet, said in one line
            assert report.stderr.splitlines() == [
                f"regsearch: error: command line: '--results' must be a folder with saved searches (run one first: "
                f"python -m regsearch NAME); got '{results} (no saved runs)'."]
            continue
        assert report.returncode == 0, report.stderr[-3000:]
        first = report.stdout.splitlines()[0]
        said = re.fullmatch(rf"{folder}/: a search is running there \(pid {search.pid}\), (no run|(\d+) runs?) "
                            r"(of \d+ configurations? )?recorded (yet|so far); it writes the report when it ends "
                            r"\(nothing rewritten here\)", first)
        if said is None:  # the search ended while this report ran: it rebuilt the report from the finished runs
            assert first == f"rebuilt {folder}/" and not running, report.stdout
            continue
        seen.append(int(said.group(2) or 0))
        assert low <= seen[-1] <= high  # every run whose runs.json had been renamed into place, and no other
        if seen[-1]:
            assert any(path.endswith("/runs.json") for path, _, _ in opened)  # it read the search's own files
        # Nothing opened for writing in the search's folder but the lock it asked for.
        written = [path for path, mode, flags in opened if path.startswith(f"{folder}/") and not path.endswith(
            "/.lock") and ((mode and set(mode) & set("wax+")) or flags & (os.O_WRONLY | os.O_RDWR))]
        assert written == []
    assert len(seen) >= 2 and max(seen) > 0, [r[0].stdout for r in reports]
