"""A full or read-only disk (issue 28.4): one line naming the folder, what was recorded kept, a rerun resumes.

The full disk is a real one: a 48 KiB tmpfs mounted for the test (root may
mount one; CI runs as root), which the search fills while its trials train.
Where mounting is not allowed, the search runs under a file size limit instead
(``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored: a write past it fails with EFBIG),
which takes the same path through regsearch. The read-only folder is a
read-only bind mount (root ignores file permissions), or ``chmod a-w`` for
another user.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from regsearch.cli import main
from regsearch.damaged import check_table, read_json

TINY = """\
description = "a full disk"

[data]
dataset = "moons"
train_size = 30

[model]
hypermodel = "RegularizedMLP"
hidden = [8]

[space.regularizer]
kinds = ["l2"]
strengths = [1e-2, 1e-3, 1e-4]

[search]
repeats = 2

[training]
epochs = 2
"""


def mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def limit_file_size() -> None:
    """In the child: a write past 16 KiB fails with EFBIG (instead of SIGXFSZ killing it)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


@contextlib.contextmanager
def small_disk(root: Path, mechanism: str) -> Iterator[tuple[Path, Callable[[], None] | None, Callable[[], None]]]:
    """(a folder on a disk that fills up, the child's setup to run the search under, what makes room)."""
    disk = root / "disk"
    disk.mkdir()
    if mechanism == "tmpfs" and mount("-t", "tmpfs", "-o", "size=48k,mode=755", "tmpfs", str(disk)):
        try:
            yield disk, None, lambda: None if mount("-o", "remount,size=64m", str(disk)) else pytest.fail("remount")
        finally:
            unmount(disk)
    else:  # no mount here (not root): the same failure through a file size limit; the rerun has none
        yield disk, limit_file_size, lambda: None


def run_cli(argv: list[str], setup: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "regsearch", *argv], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, preexec_fn=setup)


def recorded(folder: Path) -> dict[Path, bytes]:
    """Every file the tuner recorded, each read back whole (a damaged one raises)."""
    found = {}
    for path in sorted(folder.glob("tuner/**/*.json")):
        read_json(path, "")
        found[path] = path.read_bytes()
    return found


def assert_no_temporaries(folder: Path) -> None:
    assert [p for p in folder.rglob(".*") if p.name != ".lock"] == []


@pytest.mark.slow
# A full tmpfs refuses every write from then on; a file size limit refuses the checkpoint (21 KiB) while the
# trial's runs.json (3 KiB) still fits, which must not record the runs as failed.
@pytest.mark.parametrize(("mechanism", "engine"), [("tmpfs", "population"), ("file size limit", "sequential")])
def test_a_disk_that_fills_up_ends_in_one_line_keeps_what_was_recorded_and_a_rerun_resumes(
        tmp_path: Path, mechanism: str, engine: str) -> None:
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY)
    with small_disk(tmp_path, mechanism) as (disk, setup, make_room):
        results = disk / "results"
        folder = results / "tiny"
        argv = [str(definition), "--results", str(results), "--quiet", "--engine", engine]
        full = run_cli(argv, setup)
        assert full.returncode == 1, full.stderr[-3000:]
        lines = full.stderr.splitlines()
        assert len(lines) == 1, full.stderr[-3000:]
        assert lines[0].startswith(f"regsearch: error: cannot write in {results}"), lines  # its folder, if known
        assert lines[0].endswith("what was recorded before is kept: free some space and run the same command "
                                 "again to resume"), lines
        before = recorded(folder)
        trials_before = sorted(p for p in before if p.name == "runs.json")
        assert len(trials_before) < 4, "the disk filled too late: every trial was recorded"
        assert not (folder / "trials.csv").exists()
        assert_no_temporaries(folder)

        make_room()
        assert main(argv) == 0  # the same command again (in this process: the full disk's process is gone)
        for path in trials_before:  # what was recorded is kept, not trained again
            assert path.read_bytes() == before[path]
        check_table(folder / "trials.csv", "")
        trials = pd.read_csv(folder / "trials.csv")
        assert len(trials) == 4 * 2  # three strengths and the baseline, two seeds each
        assert set(trials["status"]) == {"completed"}
        assert not trials.duplicated(["trial_id", "repeat"]).any()
        assert_no_temporaries(folder)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only: a read-only bind mount over it, or ``chmod a-w`` for another user than root."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    if not (mount("--bind", str(folder), str(folder)) and mount("-o", "remount,bind,ro", str(folder))):
        unmount(folder)
        pytest.skip("root without mount rights (no CAP_SYS_ADMIN here): a read-only folder cannot be made")
    try:
        yield
    finally:
        unmount(folder)


@pytest.mark.slow
def test_a_read_only_results_folder_is_refused_in_one_line_and_a_rerun_resumes_once_writable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY.replace("1e-4]", "1e-4]\n[evaluation]\nbaseline = false"))
    results = tmp_path / "results"
    folder = results / "tiny"
    argv = [str(definition), "--results", str(results), "--quiet"]
    assert main(argv) == 0
    runs = folder / "tuner/grid/trial_0002/runs.json"
    runs.unlink()  # a trial's runs lost: the rerun trains it again
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    capsys.readouterr()
    with read_only(folder):
        assert main(argv) == 2
        assert main(["report", "--results", str(results), "--quiet"]) == 2
        why = "is on a read-only filesystem" if os.geteuid() == 0 else "is not writable"
        line = (f"regsearch: error: command line: '--results' must be a folder regsearch can create and write; got "
                f"'{folder} ({folder} {why})'.")
        assert capsys.readouterr().err.splitlines() == [line, line]
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert main(argv) == 0  # writable again: the same command resumes, training only the trial left
    assert runs.is_file()
    assert {p: p.read_bytes() for p in folder.glob("tuner/grid/trial_000[01]/runs.json")} == {
        p: data for p, data in before.items() if p.name == "runs.json"}
    assert len(pd.read_csv(folder / "trials.csv")) == 3 * 2
