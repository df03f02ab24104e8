"""What a command-line search's exit costs, with its objects frozen (``regsearch.cli.command``) and without.

Usage: python benchmarks/exit.py [--runs 3] [--backend tensorflow|jax]

Runs the same small search (moons, one L2 strength, 20 epochs, the whole report) as fresh processes, alternately
through ``regsearch.cli.command`` (what ``python -m regsearch`` and the ``regsearch`` script run: ``main``, then
``gc.freeze()``) and through ``regsearch.cli.main`` alone. Each process notes the time in its last exit handler
(registered first, so it runs after the others, TensorFlow's included); its exit is the time from there to the
process's end as this script sees it: Python's final garbage collection and the modules' teardown. Prints the
median of ``--runs`` per variant, the whole process's wall time beside it, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEARCH = """description = "exit benchmark: one small search"
[data]
dataset = "moons"
train_size = 30
[model]
hypermodel = "RegularizedMLP"
hidden = [16]
[space.regularizer]
kinds = ["l2"]
strengths = [1e-3]
[search]
strategy = "grid"
repeats = 1
[training]
epochs = 20
[evaluation]
baseline = false
"""

#: The child: stamps the time in its first-registered (so last-run) exit handler, then runs the command line.
CHILD = """
import atexit, sys, time
atexit.register(lambda: sys.stderr.write("EXITING AT %r\\n" % time.time()))
from regsearch.cli import command, main
sys.argv[0] = "regsearch"
raise SystemExit(command() if VARIANT == "frozen" else main())
"""


def one_run(variant: str, definition: Path, results: Path, backend: str) -> tuple[float, float]:
    """(exit seconds, whole process seconds) of one fresh process."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD.replace("VARIANT", repr(variant)), str(definition), "--results",
                           str(results), "--quiet", "--overwrite"], env=env, capture_output=True, text=True)
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"the {variant} run failed ({done.returncode}): {done.stderr[-2000:]}")
    stamp = float(done.stderr.rsplit("EXITING AT ", 1)[1].split()[0])
    return end - stamp, end - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="regsearch-exit-") as folder:
        definition = Path(folder) / "exit_search.toml"
        definition.write_text(SEARCH)
        times: dict[str, list[tuple[float, float]]] = {"frozen": [], "collected": []}
        for _ in range(args.runs):
            for variant in times:  # alternately, so that the machine's load falls on both alike
                times[variant].append(one_run(variant, definition, Path(folder) / variant, args.backend))
    print(f"{args.backend}, {args.runs} runs each (median seconds):")
    print("| variant | exit | whole process |\n|---|---:|---:|")
    medians = {}
    for variant, rows in times.items():
        medians[variant] = statistics.median(e for e, _ in rows), statistics.median(w for _, w in rows)
        print(f"| {variant} | {medians[variant][0]:.2f} | {medians[variant][1]:.2f} |")
    print(f"exit: collected / frozen = {medians['collected'][0] / medians['frozen'][0]:.1f}x; "
          f"saved {medians['collected'][0] - medians['frozen'][0]:.2f} s of {medians['collected'][1]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
