"""One process against a chief with one and with two workers, on loopback, side by side in one run.

    python benchmarks/distributed.py [--search moons_l2] [--epochs 300] [--repeats 2] [--engine sequential]

Runs the README's distributed recipe (``--chief --workers W`` and W
``--worker`` processes, one results folder) for W = 1 and 2, and the same
search in one process; prints each one's wall time (from start to the
chief's exit), the ratios, and whether its trials.csv equals the single
process's (seconds and the worker columns aside).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

IGNORED = ("seconds",)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(folder: Path, args: argparse.Namespace, workers: int) -> float:
    """Seconds from the first start to the last exit; ``workers = 0``: one process."""
    folder.mkdir(parents=True)
    common = [args.search, "--epochs", str(args.epochs), "--repeats", str(args.repeats), "--engine", args.engine,
              "--results", "results", "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    commands = [common]
    if workers:
        port = str(free_port())
        commands = [[*common, "--chief", "--workers", str(workers), "--oracle-port", port]]
        commands += [[*common, "--worker", "--tuner-id", f"w{i}", "--oracle-port", port] for i in range(workers)]
    start = time.perf_counter()
    started = [subprocess.Popen([sys.executable, "-m", "regsearch", *command], cwd=folder, env=env,
                                stdout=open(folder / f"{i}.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
               for i, command in enumerate(commands)]
    codes = [process.wait(timeout=3600) for process in started]
    seconds = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"{folder}: exit codes {codes}; see the logs there")
    return seconds


def trials(folder: Path, search: str) -> pd.DataFrame:
    frame = pd.read_csv(folder / "results" / search / "trials.csv")
    columns = [c for c in frame.columns if c not in IGNORED and c != "worker"]
    return frame[columns].sort_values(["phase", "trial_id", "repeat"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", default="moons_l2")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engine", default="sequential", choices=("sequential", "population"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="regsearch-distributed-"))
    single = run(work / "one_process", args, 0)
    one = run(work / "one_worker", args, 1)
    two = run(work / "two_workers", args, 2)
    reference = trials(work / "one_process", args.search)
    print(f"{args.search} --epochs {args.epochs} --repeats {args.repeats} --engine {args.engine} ({os.cpu_count()} cores)")
    for name, seconds in (("one process", single), ("chief + 1 worker", one), ("chief + 2 workers", two)):
        folder = {"one process": "one_process", "chief + 1 worker": "one_worker", "chief + 2 workers": "two_workers"}
        same = trials(work / folder[name], args.search).equals(reference)
        print(f"{name:>18}: {seconds:6.1f} s   trials.csv equals the single process's: {same}")
    print(f"2 workers / 1 worker: {two / one:.2f}   1 worker / one process: {one / single:.2f}")


if __name__ == "__main__":
    main()
