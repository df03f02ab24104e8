"""A TensorFlow population's first call (trace and compile) with its steps traced once and one trace for every
share, against a trace per call site and a trace per share.

Usage: python benchmarks/first_call.py [--rows lstm,cnn,tabular] [--rounds 2] [--members 8] [--epochs 3]
       (TensorFlow backend; the cores this process may use make the shares)

For each of ``benchmarks/peers.py``'s user models (its data generator, ``--quick`` sizes), trains ``--members``
members of four L2 strengths for ``--epochs`` epochs as a long run (``XLA_MIN_STEPS`` 0: XLA where the model
allows it, a share per core), with the kept programs dropped before each call, so each call traces and compiles
its program anew. Three variants, interleaved round by round, each ``--rounds`` times:

- ``now``: each step traced once per program (``_traced_once``); the shares run the first share's trace on
  their own templates (``Backend.shared``);
- ``a trace per call site``: the step traced again wherever the program takes it (the first batch, the loop,
  the smaller last batch; validation likewise);
- ``... and a trace per share``: every share's program traced and compiled on its own template too (what the
  shares did before one trace served them all).

Printed per row: the median seconds of a whole call (the first call's trace and compile, the members' building,
the epochs and scoring) per variant and the ratio to ``now``. The epochs are the same work in every variant.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402

import peers  # noqa: E402
from regsearch import population  # noqa: E402
from regsearch.population import _tensorflow  # noqa: E402

STRENGTHS = (1e-2, 1e-3, 1e-4, 1e-5)


def step_traced_at_each_site(step, state, batch):  # noqa: ANN001, ANN201 - _traced_once's signature
    return step(state, batch)


def a_program_per_share(self, program, share_backend, compile_on):  # noqa: ANN001, ANN201 - Backend.shared's
    return compile_on(share_backend())


#: Per variant, what it replaces in ``regsearch.population._tensorflow``: a dotted name there -> its stand-in.
VARIANTS = {
    "now": {},
    "a trace per call site": {"_traced_once": step_traced_at_each_site},
    "... and a trace per share": {"_traced_once": step_traced_at_each_site, "Backend.shared": a_program_per_share},
}


def one_call(row: peers.Row, data: tuple, members: int, epochs: int, variant: dict[str, Any]) -> float:
    """Seconds of one population call on fresh programs, with ``variant``'s stand-ins in ``_tensorflow``."""
    with contextlib.ExitStack() as patches:
        for name, stand_in in variant.items():
            *owner, attribute = name.split(".")
            target = functools.reduce(getattr, owner, _tensorflow)
            patches.enter_context(mock.patch.object(target, attribute, stand_in))
        population._PROGRAMS.clear()
        x_train, y_train, x_val, y_val = data
        models = []
        for k in range(members):
            keras.utils.set_random_seed(k)
            models.append(peers.architecture(row.name, STRENGTHS[k % len(STRENGTHS)], tuple(x_train.shape[1:])))
        start = time.perf_counter()
        population.train_population(models, (x_train, y_train), (x_val, y_val), epochs=epochs, batch_size=32,
                                    seeds=list(range(members)), evaluate=True)
        return time.perf_counter() - start


def medians_by_row(rows: str, variants: dict[str, dict[str, Any]], members: int, epochs: int,
                   rounds: int) -> Iterator[tuple[str, dict[str, float]]]:
    """Each row of ``rows`` (comma-separated peers rows, ``--quick`` data) and its median seconds per variant,
    the variants interleaved round by round."""
    for name in rows.split(","):
        row = peers.quick(peers.FULL[name])
        with tempfile.TemporaryDirectory() as folder:
            peers.prepare(row, Path(folder))
            data = peers.read_data(row, Path(folder))
        one_call(row, data, 2, 1, {})  # the row's first program in this process: warms Keras and TensorFlow alike
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for variant, stand_ins in variants.items():
                seconds[variant].append(one_call(row, data, members, epochs, stand_ins))
        yield name, {v: statistics.median(s) for v, s in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="lstm,cnn,tabular")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("first_call.py measures the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    population.XLA_MIN_STEPS = 0  # a long run: XLA where the model allows it, a share per core
    print(f"{population.THREADS} cores; {args.members} members, {args.epochs} epochs; median of {args.rounds}")
    print("| row | " + " | ".join(VARIANTS) + " | ratios to now |")
    print("|---|" + "---:|" * (len(VARIANTS) + 1))
    for name, medians in medians_by_row(args.rows, VARIANTS, args.members, args.epochs, args.rounds):
        ratios = " / ".join(f"{medians[v] / medians['now']:.2f}" for v in VARIANTS)
        print(f"| {name} | " + " | ".join(f"{medians[v]:.2f}" for v in VARIANTS) + f" | {ratios} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
