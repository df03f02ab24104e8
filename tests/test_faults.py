"""A search SIGKILLed at random instants (issue 28, item 2): every file reads whole, every resume equals the run.

``benchmarks/faults.py`` forks the command line's search from one process per backend (imports paid once),
kills it at instants drawn over an uninterrupted run's duration (start-up, training, checkpoints, records, the
report), reruns it, and checks after each kill that every file of the results folder reads whole and that the rows
of ``trials.csv`` already written are the uninterrupted run's, and after each rerun that ends that its
``trials.csv`` equals the uninterrupted run's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "faults.py"


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "search"), [("tensorflow", "grid-small"), ("jax", "hyperband-small")])
def test_a_search_killed_at_20_random_instants_resumes_to_the_uninterrupted_result(backend: str, search: str) -> None:
    """A grid on TensorFlow; on JAX, Hyperband, whose kills fall mid-bracket too (between and inside rungs).

    The benchmark's small searches (the same phases, rungs, checkpoints, records and report as its recorded ones):
    20 kills cost about 10 uninterrupted runs and their resumes. Half the instants fall inside the populations'
    training, where a uniform draw over a run that is mostly start-up and report would seldom land.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(FAULTS), "--instants", "20", "--search", search, "--seed", "28"],
                          env=env, capture_output=True, text=True, timeout=1200)
    print(done.stdout)  # the uninterrupted run's seconds, the kills and resumes (pytest -rP shows them)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = re.search(r"(\d+) kills at random instants; (\d+) of (\d+) resumes equal", done.stdout)
    assert found, done.stdout
    kills, matched, resumes = map(int, found.groups())
    assert kills == 20 and matched == resumes >= 1
    # Half the instants are drawn inside the training windows: some kills land while a population trains.
    training = re.search(r"(\d+) of the kills at instants drawn inside .*?; (\d+) while a population trained", done.stdout)
    assert training and int(training.group(1)) >= 5 and int(training.group(2)) >= 1, done.stdout
    assert "FAILED" not in done.stdout
