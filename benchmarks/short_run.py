"""A short TensorFlow population run (a plain graph, run once) without Grappler's rewrites, against with them.

Usage: python benchmarks/short_run.py [--rows moons,cnn,lstm,tabular] [--rounds 3] [--members 8] [--epochs 3]
       (TensorFlow backend)

A run shorter than ``XLA_MIN_STEPS`` planned batches per member runs its population program as a plain graph,
once per population; TensorFlow instantiates a graph on its first call, and Grappler's rewrites (constant
folding, arithmetic and layout rewrites, op fusion) are part of that. For each of ``benchmarks/peers.py``'s
models (its data generator, ``--quick`` sizes), trains ``--members`` members of four L2 strengths for
``--epochs`` epochs, with the kept programs dropped before each call, so each call traces and instantiates its
programs (training and scoring) anew. Two variants, interleaved round by round, each ``--rounds`` times:

- ``now``: the programs of a short run instantiated without Grappler's rewrites
  (``regsearch.population._tensorflow._graph_rewrites_skipped``);
- ``with Grappler``: instantiated with them, as before.

Printed per row: the median seconds of a whole call (trace, instantiation, the members' building, the epochs
and scoring) per variant and the ratio to ``now``. Where the tests' searches spend their time, this is it: a
few epochs on a few rows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402

from first_call import medians_by_row  # noqa: E402

#: Per variant, what it replaces in ``regsearch.population._tensorflow`` (``first_call.one_call``).
VARIANTS = {"now": {}, "with Grappler": {"_graph_rewrites_skipped": contextlib.nullcontext}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="moons,cnn,lstm,tabular")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("short_run.py measures the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    print(f"{args.members} members, {args.epochs} epochs (a short run: a plain graph); median of {args.rounds}")
    print("| row | " + " | ".join(VARIANTS) + " | ratio to now |")
    print("|---|" + "---:|" * (len(VARIANTS) + 1))
    for name, medians in medians_by_row(args.rows, VARIANTS, args.members, args.epochs, args.rounds):
        print(f"| {name} | " + " | ".join(f"{medians[v]:.2f}" for v in VARIANTS)
              + f" | {medians['with Grappler'] / medians['now']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
