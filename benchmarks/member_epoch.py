"""Where a moons member-epoch goes: the population program with its parts taken away one at a time.

Usage: python benchmarks/member_epoch.py [--members 39] [--epochs 2000] [--calls 3] [--mode loop|vmap]
       (KERAS_BACKEND=jax for the JAX backend)

The members are ``benchmarks/population.py``'s (Dense(500, relu) -> Dense(1,
sigmoid), Adam, an L2 strength each; 30 training rows in one batch of 32, 70
validation rows). Each variant trains the same P members for ``--epochs``
epochs (no member stops: patience above the epochs) in one process; the cost
is the fastest of ``--calls`` steady calls (the program kept, fresh models),
per member-epoch, every variant compiled with XLA as a long search's program is. Variants, each the one before less one part:

- ``as a search runs it``: validation in batches of 32 (3 ``test_step`` calls),
  early stopping on ``val_loss`` (restoring the best weights, so the best
  weights are kept per epoch), the epoch's log row;
- ``validation in one batch``: ``validation_batch_size = 70`` (1 call);
- ``no early stopping``: no stopping step, no best weights kept;
- ``no validation``: the training step, the shuffle and the log row only.

The differences between rows are the parts' costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from population import TEST, TRAIN, members  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from regsearch import population  # noqa: E402

population.XLA_MIN_STEPS = 0  # every variant under XLA, as a long search runs (fewer steps would run a plain graph)

VARIANTS = {
    "as a search runs it": dict(validation=True, validation_batch_size=32, stopping=True),
    "validation in one batch": dict(validation=True, validation_batch_size=70, stopping=True),
    "no early stopping": dict(validation=True, validation_batch_size=70, stopping=False),
    "no validation": dict(validation=False, validation_batch_size=None, stopping=False),
}


def steady_cost(size: int, epochs: int, calls: int, mode: str | None, validation: bool,
                validation_batch_size: int | None, stopping: bool) -> tuple[float, float]:
    """(first call s, fastest steady call us per member-epoch)."""
    population._PROGRAMS.clear()
    stop = (keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs + 1, restore_best_weights=True)
            if stopping else None)
    times = []
    for _ in range(calls + 1):
        models = members(size)
        start = time.perf_counter()
        population.train_population(models, TRAIN, TEST if validation else None, epochs=epochs, batch_size=32,
                                    validation_batch_size=validation_batch_size, early_stopping=stop,
                                    seeds=list(range(size)), mode=mode)
        times.append(time.perf_counter() - start)
    return times[0], 1e6 * min(times[1:]) / (size * epochs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=39)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--mode", choices=population.MODES, help="the backend's default where not given")
    args = parser.parse_args(argv)
    console = Console()
    table = Table(title=f"{args.members} moons members x {args.epochs} epochs ({keras.backend.backend()}, {args.mode or 'default mode'}), "
                        f"fastest of {args.calls} steady calls")
    for column in ("variant", "first call s", "us / member-epoch", "part's cost us"):
        table.add_column(column, justify="right")
    previous = None
    for name, variant in VARIANTS.items():
        first, cost = steady_cost(args.members, args.epochs, args.calls, args.mode, **variant)
        part = "" if previous is None else f"{previous - cost:.1f}"
        table.add_row(name, f"{first:.2f}", f"{cost:.1f}", part)
        previous = cost
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
