"""Output that works in a terminal and in a log (issue 25.2): progress on stderr as it happens, the answer on stdout."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from rich.console import Console

from regsearch.cli import LINE_SECONDS, _Progress
from regsearch.population.progress import PopulationProgress
from test_cli import TINY

PROGRESS_LINE = re.compile(r"\d\d:\d\d:\d\d tiny \[(grid|baseline)\] ")


def test_a_redirected_search_logs_progress_as_it_goes_and_answers_on_stdout(tmp_path: Path) -> None:
    """``python -m regsearch tiny.toml > out 2> err``: err grows while the search runs; out holds the answer."""
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY)
    results = tmp_path / "results"
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    seen_while_running: set[str] = set()
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "regsearch", str(definition), "--results", str(results)],
                                   stdout=out, stderr=err, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        while True:
            lines = err_path.read_text().splitlines()
            if process.poll() is not None:
                break
            seen_while_running.update(lines)  # read, and the process had not ended yet
            time.sleep(0.05)
    assert process.returncode == 0, err_path.read_text()[-3000:]

    # Each phase's start and end was in the log before the search ended, not written all at once at the end.
    for phase, what in (("grid", "started: 2 configurations x 1 run"), ("grid", "done: 2/2 runs in "),
                        ("baseline", "started: 1 configuration x 1 run")):
        assert any(f"tiny [{phase}] {what}" in line for line in seen_while_running), (phase, what, seen_while_running)
    err_lines = err_path.read_text().splitlines()
    assert [line for line in err_lines if not PROGRESS_LINE.match(line)] == []  # nothing but progress
    assert any("tiny [baseline] done: 1/1 runs" in line for line in err_lines)

    answer = re.search(r"^\*\*(.+)\*\*$", (results / "tiny" / "summary.md").read_text(), re.MULTILINE).group(1)
    stdout = out_path.read_text()
    assert "tiny: best configurations by val_accuracy" in stdout  # the table
    assert answer in stdout
    assert stdout.rstrip().endswith(f"results in {results / 'tiny'}/")
    assert answer not in err_path.read_text() and str(results) not in err_path.read_text()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_progress_is_a_line_every_few_seconds_at_most() -> None:
    definition = types.SimpleNamespace(name="toy", repeats=2, objective="val_accuracy", direction="max",
                                       evaluation=types.SimpleNamespace(runs_per_seed=1))
    log, clock = io.StringIO(), Clock()
    with _Progress(Console(file=log, width=80), definition, clock=clock) as progress:
        progress.phase("grid", 4)  # 8 runs
        for step in range(1, 41):  # a population reporting every 0.5 s for 20 s, 2 epochs a member each time
            clock.now = step * 0.5
            progress.population(PopulationProgress(members=8, alive=8, epochs_done=16 * step, epochs=100,
                                                   runs_done=8 * step * 2 / 100))
        for accuracy in [0.7] * 7 + [0.9]:
            clock.now += 0.25
            progress.run({"status": "completed", "val_accuracy": accuracy})
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 + 20 / LINE_SECONDS, lines  # started, one line per LINE_SECONDS, done
    assert all(re.match(r"\d\d:\d\d:\d\d toy \[grid\] ", line) for line in lines)
    assert lines[0].endswith("toy [grid] started: 4 configurations x 2 runs")
    # while training: runs done (in part), members and epochs, the best so far, the time left at this pace
    assert lines[1].endswith("toy [grid] 1.6/8 runs, 8/8 training, 160/800 epochs, best -, about 20 s left")
    assert lines[-1].endswith("toy [grid] done: 8/8 runs in 22 s, best val_accuracy=0.9000")


def test_in_a_terminal_progress_is_a_bar_and_no_lines() -> None:
    definition = types.SimpleNamespace(name="toy", repeats=1, objective="val_accuracy", direction="max",
                                       evaluation=types.SimpleNamespace(runs_per_seed=1))
    screen = io.StringIO()
    with _Progress(Console(file=screen, force_terminal=True, width=120), definition) as progress:
        assert not progress.lines
        progress.phase("grid", 2)
        progress.run({"status": "completed", "val_accuracy": 0.5})
    assert "started:" not in screen.getvalue() and "toy [grid]" in screen.getvalue()


def test_library_code_logs_and_the_command_line_writes_the_logs_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from regsearch import cli

    package = Path(cli.__file__).parent
    printing = [f"{path.relative_to(package)}:{number}: {line.strip()}"
                for path in sorted(package.rglob("*.py")) if path.name != "cli.py"
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if re.search(r"(?<![\w.])print\(|sys\.std(out|err)\.write\(", line)]
    assert printing == []
    with cli._library_logs(quiet=True):
        logging.getLogger("regsearch.distributed").error("search failed: %s", "the chief is gone")
        logging.getLogger("regsearch.tuners").info("not shown under --quiet")
    with cli._library_logs(quiet=False):
        logging.getLogger("regsearch.tuners").info("shown")
    logging.getLogger("regsearch.tuners").info("not shown once the command is over")
    assert capsys.readouterr().err == "regsearch: search failed: the chief is gone\nregsearch: shown\n"


def test_the_console_answer_is_the_pages_answer_with_its_interval_over_rows() -> None:
    """The answer printed at the end of a search is the one summary.md opens with (the committed main job's)."""
    from regsearch.cli import _print_best
    from regsearch.results import saved_definition

    folder = Path(__file__).resolve().parent.parent / "results" / "moons_l2"
    page = re.search(r"^\*\*(.+)\*\*$", (folder / "summary.md").read_text(), re.MULTILINE).group(1)
    assert "over the test rows" in page  # an interval from the per-row outcomes, not the seed-only fallback
    out = io.StringIO()
    _print_best(Console(file=out, width=400), folder, saved_definition(folder), seconds=1.0)
    assert page in out.getvalue().replace("\n", " ")
