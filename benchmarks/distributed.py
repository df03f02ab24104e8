"""One process against a chief with each count of workers (one and two by default), on loopback, side by side in one run.

    python benchmarks/distributed.py [--search moons_l2] [--epochs 300] [--repeats 2]
                                     [--engine sequential population] [--workers 1 2]

Runs the README's distributed recipe (``--chief --workers W`` and W
``--worker`` processes, one results folder) for each W of ``--workers``, and the same
search in one process, for each engine; prints each one's wall time (from
start to the chief's exit), where it went (start-up until the first trial
began, the span from the first trial's start to the last one's end, and
the report after it, from the trials' saved run times and file times), the
ratios, and whether its trials.csv equals the single process's (the seconds
and worker columns aside).
"""

from __future__ import annotations

import argparse
import json
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


def run(folder: Path, args: argparse.Namespace, workers: int, engine: str) -> float:
    """Seconds from the first start to the last exit; ``workers = 0``: one process."""
    folder.mkdir(parents=True)
    common = [args.search, "--epochs", str(args.epochs), "--repeats", str(args.repeats), "--engine", engine,
              "--results", "results", "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    commands = [common]
    if workers:
        port = str(free_port())
        commands = [[*common, "--chief", "--workers", str(workers), "--oracle-port", port]]
        commands += [[*common, "--worker", "--tuner-id", f"w{i}", "--oracle-port", port] for i in range(workers)]
    start = time.perf_counter()
    (folder / "started").write_text(str(time.time()))
    started = [subprocess.Popen([sys.executable, "-m", "regsearch", *command], cwd=folder, env=env,
                                stdout=open(folder / f"{i}.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
               for i, command in enumerate(commands)]
    codes = [process.wait(timeout=3600) for process in started]
    seconds = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"{folder}: exit codes {codes}; see the logs there")
    return seconds


def timeline(folder: Path, search: str) -> tuple[float, float, float]:
    """Seconds from the start to the first trial's start, from there to the last trial's end, and after it."""
    begun = float((folder / "started").read_text())
    spans = []
    for path in (folder / "results" / search / "tuner").glob("*/trial_*/runs.json"):
        ended = path.stat().st_mtime - begun
        spans.append((ended - sum(run["seconds"] for run in json.loads(path.read_text())["runs"]), ended))
    outputs = max(path.stat().st_mtime for path in (folder / "results" / search).iterdir()) - begun
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return first, last - first, outputs - last


def trials(folder: Path, search: str) -> pd.DataFrame:
    frame = pd.read_csv(folder / "results" / search / "trials.csv")
    columns = [c for c in frame.columns if c not in IGNORED and c != "worker"]
    return frame[columns].sort_values(["phase", "trial_id", "repeat"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", default="moons_l2")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engine", nargs="+", default=["sequential", "population"], choices=("sequential", "population"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="the worker counts beside the chief")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="regsearch-distributed-"))
    variants = {"one process": 0, **{f"chief + {w} worker{'s' * (w > 1)}": w for w in args.workers}}
    print(f"{args.search} --epochs {args.epochs} --repeats {args.repeats} ({os.cpu_count()} cores); folders in {work}")
    for engine in args.engine:
        seconds = {name: run(work / engine / str(workers), args, workers, engine) for name, workers in variants.items()}
        reference = trials(work / engine / "0", args.search)
        print(f"--engine {engine}")
        for name, workers in variants.items():
            folder = work / engine / str(workers)
            same = trials(folder, args.search).equals(reference)
            first, span, after = timeline(folder, args.search)
            print(f"{name:>18}: {seconds[name]:6.1f} s  (start-up {first:5.1f}, trials {span:5.1f}, report {after:4.1f})"
                  f"   trials.csv equals the single process's: {same}")
        single = seconds["one process"]
        print("   ".join(f"{name} / one process: {seconds[name] / single:.2f}" for name in variants if name != "one process"))


if __name__ == "__main__":
    main()
