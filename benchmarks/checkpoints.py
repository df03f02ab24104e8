"""What population checkpoints cost on the moons model: one checkpoint, and a run with each interval.

Usage: python benchmarks/checkpoints.py [--members 20] [--epochs 4000] [--intervals 300 1 0.1] [--repeats 5]
                                        [--runs 2]
       (KERAS_BACKEND=jax for the JAX backend)

1. One checkpoint of ``--members`` moons members (Dense(500, relu) ->
   Dense(1, sigmoid), Adam; early stopping restoring the best weights, so the
   best weights are written too): the median seconds of ``--repeats`` writes
   (atomic: a temporary file, fsync, rename) and the file's size.
2. The members trained ``--epochs`` epochs (patience beyond the epochs: every
   member runs every epoch) without checkpoints, then with each of
   ``--intervals`` seconds (300 is the default of ``[search] checkpoint_seconds``):
   wall seconds (the fastest of ``--runs``), checkpoints written, and the cost
   against no checkpoints. The program is compiled once before, so the times
   are the steady cost. At an interval longer than the run no checkpoint is
   written: the cost of the default is one checkpoint's time per 300 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from regsearch.population import Population, checkpoints, train_population  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from population import TEST as VALIDATION  # noqa: E402  (benchmarks/population.py: the same moons members and rows)
from population import TRAIN, members  # noqa: E402


def stopping(epochs: int) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs, restore_best_weights=True)


def train(size: int, epochs: int) -> float:
    models = members(size)
    start = time.perf_counter()
    train_population(models, TRAIN, VALIDATION, epochs=epochs, batch_size=32, early_stopping=stopping(epochs),
                     seeds=list(range(size)))
    return time.perf_counter() - start


def one_checkpoint(size: int, epochs: int, repeats: int, folder: Path) -> tuple[float, int]:
    """Median seconds of one checkpoint of a population that trained a few epochs, and its size in bytes."""
    with checkpoints.checkpointing(folder, every=3600):
        population = Population(members(size), TRAIN, VALIDATION, epochs=epochs, batch_size=32,
                                 early_stopping=stopping(epochs), seeds=list(range(size)))
        population.advance(min(epochs, 10))
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            population.checkpoint()
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), population.checkpoint_path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--intervals", type=float, nargs="*", default=[300.0, 1.0, 0.1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    console = Console()
    console.print(f"backend {keras.backend.backend()}, {args.members} moons members, {args.epochs} epochs")
    with tempfile.TemporaryDirectory() as folder:
        seconds, size = one_checkpoint(args.members, args.epochs, args.repeats, Path(folder) / "one")
        console.print(f"one checkpoint: {seconds * 1000:.1f} ms (median of {args.repeats}), {size / 1e6:.2f} MB")
        train(args.members, args.epochs)  # compiles the program the runs below share
        table = Table("checkpoint every", "seconds", "checkpoints", "cost")
        plain = min(train(args.members, args.epochs) for _ in range(args.runs))
        table.add_row("none", f"{plain:.2f}", "0", "")
        for every in args.intervals:
            times, counts = [], []
            for run in range(args.runs):
                with checkpoints.checkpointing(Path(folder) / f"every{every}-{run}", every=every) as written:
                    times.append(train(args.members, args.epochs))
                    counts.append(written.writes)
            seconds = min(times)
            table.add_row(f"{every:g} s", f"{seconds:.2f}", str(max(counts)), f"{(seconds / plain - 1) * 100:+.1f}%")
        console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
