"""The sequential engine versus the population engine, side by side in one process.

Usage: python benchmarks/population.py [--sizes 1 3 10 39 100] [--epochs 4000] [--seeds 10] [--search moons_l2]
                                      [--threads 1 2]
       (KERAS_BACKEND=jax for the JAX backend; there the population runs in "loop" and "vmap" modes, each on
       one thread and on ``regsearch.population.THREADS``, the cores; TensorFlow takes one thread)

1. P moons members (Dense(500, relu) -> Dense(1, sigmoid), Adam, an L2
   strength per member between 1e-6 and 1e-1, seeds 0..P-1), every member
   trained ``--epochs`` epochs (no early stopping, so every member runs every
   epoch): one ``regsearch.fit`` per member, one after another (the
   sequential engine; each configuration traces its own loop), against one
   ``train_population`` call. A second population call on fresh models of
   the same structure reuses the compiled program: its time is the steady
   cost, and the first call minus it the cost of tracing and compiling.
2. ``--seeds`` seeds of one configuration against one seed, population engine.
3. A named search end to end, as ``python -m regsearch NAME`` runs it (in
   this process, so imports are paid once) with ``--engine sequential`` and
   with the default ``--engine population``; its top three configurations.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

import regsearch  # noqa: E402
from regsearch import population  # noqa: E402

X, Y = make_moons(100, noise=0.2, random_state=1)
TRAIN = (X[:30].astype("float32"), Y[:30].astype("float32"))
TEST = (X[30:].astype("float32"), Y[30:].astype("float32"))
#: The cores regsearch trains on by default (a population's threads).
CORES = population.THREADS


def moons_member(seed: int, strength: float) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(500, activation="relu", kernel_regularizer=keras.regularizers.L2(strength)),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def members(size: int) -> list[keras.Model]:
    return [moons_member(seed, strength) for seed, strength in enumerate(np.geomspace(1e-6, 1e-1, size))]


def sequential(size: int, epochs: int) -> float:
    start = time.perf_counter()
    for seed, model in enumerate(members(size)):
        regsearch.fit(model, *TRAIN, validation_data=TEST, epochs=epochs, batch_size=32, seed=seed)
    return time.perf_counter() - start


def together(models: list[keras.Model], epochs: int, mode: str | None, seeds: list[int] | None = None) -> float:
    start = time.perf_counter()
    population.train_population(models, TRAIN, TEST, epochs=epochs, batch_size=32,
                                seeds=seeds or list(range(len(models))), mode=mode)
    return time.perf_counter() - start


def population_costs(build: callable, epochs: int, mode: str | None, threads: int | None = None,
                     calls: int = 2) -> tuple[float, float]:
    """(first call, fastest steady call) seconds: a fresh program, then the kept one on fresh models."""
    population.THREADS = threads or CORES
    population._PROGRAMS.clear()
    first = together(build(), epochs, mode)
    steady = min(together(build(), epochs, mode) for _ in range(calls))
    population.THREADS = CORES
    return first, steady


def part_sizes(console: Console, sizes: list[int], epochs: int, modes: list[str | None], threads: list[int]) -> None:
    table = Table(title=f"P moons members x {epochs} epochs ({keras.backend.backend()}); steady: the fastest of "
                        f"2 calls on the kept program")
    for column in ("P", "engine", "first call s", "compile s", "steady us / member-epoch", "sequential / first call"):
        table.add_column(column, justify="right")
    for size in sizes:
        seq = sequential(size, epochs)
        table.add_row(str(size), "sequential (regsearch.fit per member)", f"{seq:.2f}", "",
                      f"{1e6 * seq / (size * epochs):.1f}", "")
        for mode in modes:
            for thread in threads:
                first, steady = population_costs(lambda: members(size), epochs, mode, thread)
                table.add_row("", f"population, {mode}, {thread} thread{'s' if thread > 1 else ''}", f"{first:.2f}",
                              f"{first - steady:.2f}", f"{1e6 * steady / (size * epochs):.1f}", f"{seq / first:.1f}x")
        console.print(f"P = {size} done")
    console.print(table)


def part_seeds(console: Console, seeds: int, epochs: int, modes: list[str | None]) -> None:
    table = Table(title=f"{seeds} seeds of one configuration (L2 1e-3) against one, {epochs} epochs")
    for column in ("mode", "1 seed: first s", "steady s", f"{seeds} seeds: first s", "steady s", "ratio first",
                   "ratio steady"):
        table.add_column(column, justify="right")
    for mode in modes:
        one_first, one_steady = population_costs(lambda: [moons_member(0, 1e-3)], epochs, mode)
        many_first, many_steady = population_costs(lambda: [moons_member(s, 1e-3) for s in range(seeds)], epochs, mode)
        table.add_row(str(mode), f"{one_first:.2f}", f"{one_steady:.2f}", f"{many_first:.2f}", f"{many_steady:.2f}",
                      f"{many_first / one_first:.2f}x", f"{many_steady / one_steady:.2f}x")
    console.print(table)


def part_search(console: Console, name: str) -> None:
    """The CLI's whole job in this process (search, tables, plots, best model), once per engine."""
    import pandas as pd

    from regsearch.cli import main as cli

    table = Table(title=f"python -m regsearch {name}, in this process (imports apart)")
    for column in ("engine", "seconds", "top three (strength: mean test accuracy)"):
        table.add_column(column)
    seconds = {}
    for engine in ("sequential", "population"):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            assert cli([name, "--results", folder, "--quiet", "--engine", engine]) == 0
            seconds[engine] = time.perf_counter() - start
            summary = pd.read_csv(Path(folder) / name / "summary.csv")
        top = ", ".join(f"{row.param_strength:.3g}: {row.mean_test_accuracy:.3f}" for row in summary.head(3).itertuples())
        table.add_row(engine, f"{seconds[engine]:.1f}", top)
    console.print(table)
    console.print(f"population is {seconds['sequential'] / seconds['population']:.1f}x faster end to end")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 3, 10, 39, 100])
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--search", default="moons_l2", help="a named search, or '' to skip part 3")
    parser.add_argument("--threads", type=int, nargs="*", help="threads per population (default: 1 and the cores "
                        "on JAX, where the backend splits a population; 1 on TensorFlow, where it does not)")
    args = parser.parse_args(argv)
    console = Console(width=160)  # wide tables in logs and pipes too
    jax = keras.backend.backend() == "jax"
    modes: list[str | None] = ["loop", "vmap"] if jax else ["loop"]
    threads = args.threads or (sorted({1, CORES}) if jax else [1])
    if args.sizes:
        part_sizes(console, args.sizes, args.epochs, modes, threads)
    if args.seeds:
        part_seeds(console, args.seeds, args.epochs, modes)
    if args.search:
        part_search(console, args.search)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
