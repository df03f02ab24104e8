"""regsearch.fit as a population of one, against the retired sequential loop, side by side in one process.

Usage:
    git show f588d36:regsearch/_loop.py > /tmp/old_loop.py   # the last commit with the old loop
    python benchmarks/one_engine.py [--epochs 2000] [--repeats 5] [--old-loop /tmp/old_loop.py]

The tutorials' moons model (Dense(500, relu) -> Dense(1, sigmoid), Adam), 30
training rows, validation on 70 rows in batches of 32, no early stopping. For
each engine it prints the first call's extra cost (tracing and compiling),
the call for the next model of the same structure (the next trial of a
search), and the steady cost per epoch (minimum and median over
``--repeats`` calls on the same model, the engines alternating so that a busy
machine slows both alike). The old loop runs with ``jit_compile=True`` (XLA)
and as Keras's ``"auto"`` (a plain graph on a CPU); the population of one
decides XLA itself (XLA here).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

import regsearch  # noqa: E402
from regsearch.engine.checks import packed  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine import moons_model  # noqa: E402  (benchmarks/engine.py: the same moons model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old-loop", help="a copy of the retired regsearch/_loop.py to compare with")
    args = parser.parse_args(argv)

    x, y = make_moons(n_samples=100, noise=0.2, random_state=1)
    x, y = x.astype("float32"), y.astype("float32")
    train, test = (x[:30], y[:30]), (x[30:], y[30:])
    epochs = args.epochs

    def population_of_one(model: keras.Model) -> None:
        regsearch.fit(model, *train, validation_data=test, epochs=epochs, batch_size=32, seed=0)

    engines = {"population of one": (population_of_one, "auto")}
    if args.old_loop:
        spec = importlib.util.spec_from_file_location("old_loop", args.old_loop)
        old_loop = importlib.util.module_from_spec(spec)
        sys.modules["old_loop"] = old_loop  # its dataclasses look their module up
        spec.loader.exec_module(old_loop)

        def old(model: keras.Model) -> None:
            old_loop.train(model, packed(*train, None), packed(*test, None), epochs=epochs,
                           initial_epoch=0, batch_size=32, validation_batch_size=32, shuffle=True,
                           early_stopping=None, seed=0)

        engines = {"old loop, XLA": (old, True), "old loop, graph": (old, "auto"), **engines}

    models, first, following = {}, {}, {}
    steady: dict[str, list[float]] = {name: [] for name in engines}
    for name, (run, jit_compile) in engines.items():
        model = moons_model(jit_compile)
        start = time.perf_counter()
        run(model)
        first[name] = time.perf_counter() - start
        models[name] = model
        start = time.perf_counter()
        run(moons_model(jit_compile))
        following[name] = time.perf_counter() - start
    for _ in range(args.repeats):
        for name, (run, _) in engines.items():
            start = time.perf_counter()
            run(models[name])
            steady[name].append((time.perf_counter() - start) / epochs)
    print(f"moons, {epochs} epochs, batch 32, validation on 70 rows; steady over {args.repeats} calls")
    for name in engines:
        best, median = min(steady[name]), statistics.median(steady[name])
        print(f"{name:18s}  first call extra {first[name] - best * epochs:5.2f} s  next model {following[name]:5.2f} s"
              f"  steady {best * 1e6:6.0f} us/epoch (median {median * 1e6:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
