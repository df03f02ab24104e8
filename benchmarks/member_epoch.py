"""Where a moons member-epoch goes: the population program with its parts taken away one at a time.

Usage: python benchmarks/member_epoch.py [--members 39] [--epochs 2000] [--calls 3] [--mode loop|vmap] [--threads N]
       (KERAS_BACKEND=jax for the JAX backend; ``--threads``: regsearch.population.THREADS, the cores by default)

The members are ``benchmarks/population.py``'s (Dense(500, relu) -> Dense(1,
sigmoid), Adam, an L2 strength each; 30 training rows in one batch of 32, 70
validation rows). Each variant trains the same P members for ``--epochs``
epochs and for twice as many (no member stops: patience above the epochs) in
one process, the fastest of ``--calls`` steady calls each (the program kept,
fresh models): the difference is the cost per member-epoch, and what is left of
the shorter call each member's setup and finish (its optimizer's variables,
stacking its state, writing its weights back). Every variant is compiled with
XLA, as a long search's program is. Variants, each the one before less one part:

- ``as a search runs it``: validation in batches of 32 (3 ``test_step`` calls),
  early stopping on ``val_loss`` (restoring the best weights, so the best
  weights are kept per epoch), the epoch's log row;
- ``validation in one batch``: ``validation_batch_size = 70`` (1 call);
- ``no early stopping``: no stopping step, no best weights kept;
- ``no validation``: the training step, the shuffle and the log row only.

The differences between rows are the parts' costs. On JAX two more rows give the floor: the same member
written by hand in ``jax.numpy`` (Dense layers, sigmoid cross-entropy, the L2 term, Adam as Keras computes
it, a shuffle per epoch) in one jitted loop over epochs, with and without a validation pass, one member
alone (``loop``) and the P members under ``vmap``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

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
                validation_batch_size: int | None, stopping: bool) -> tuple[float, float, float]:
    """(first call s, us per member-epoch, ms per member set up and finished).

    The fastest of ``calls`` steady calls at ``epochs`` and at twice as many: the difference is the epochs'
    cost alone, the rest each member's setup (its optimizer's variables, stacking its state) and finish.
    """
    population._PROGRAMS.clear()
    stop = (keras.callbacks.EarlyStopping(monitor="val_loss", patience=2 * epochs + 1, restore_best_weights=True)
            if stopping else None)

    def call(run_epochs: int) -> float:
        models = members(size)
        start = time.perf_counter()
        population.train_population(models, TRAIN, TEST if validation else None, epochs=run_epochs, batch_size=32,
                                    validation_batch_size=validation_batch_size, early_stopping=stop,
                                    seeds=list(range(size)), mode=mode)
        return time.perf_counter() - start

    first = call(epochs)
    call(2 * epochs)  # its own chunk's program
    short = min(call(epochs) for _ in range(calls))
    long = min(call(2 * epochs) for _ in range(calls))
    per_epoch = (long - short) / epochs
    return first, 1e6 * per_epoch / size, 1e3 * (short - epochs * per_epoch) / size


def hand_written_floor(size: int, epochs: int, calls: int) -> dict[str, float]:
    """Microseconds per member-epoch of the moons member written in ``jax.numpy``, no Keras (JAX only)."""
    from functools import partial

    import jax
    import jax.numpy as jnp

    x, y = (jnp.asarray(a, jnp.float32).reshape(len(a), -1) for a in TRAIN)
    xv, yv = (jnp.asarray(a, jnp.float32).reshape(len(a), -1) for a in TEST)

    def init(key: Any) -> list[Any]:
        k1, k2 = jax.random.split(key)
        uniform = jax.nn.initializers.glorot_uniform()
        return [uniform(k1, (2, 500)), jnp.zeros(500), uniform(k2, (500, 1)), jnp.zeros(1)]

    def loss(p: list[Any], x: Any, y: Any, l2: Any) -> Any:
        z = jax.nn.relu(x @ p[0] + p[1]) @ p[2] + p[3]
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))) + l2 * jnp.sum(p[0] ** 2)

    @partial(jax.jit, static_argnums=(2, 3))
    def run(p: list[Any], l2: Any, epochs: int, validate: bool) -> Any:
        def epoch(i: Any, carried: Any) -> Any:
            p, m, v, t, best = carried
            order = jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(0), i), len(x))
            g = jax.grad(loss)(p, x[order], y[order], l2)
            t = t + 1
            m = [0.9 * a + 0.1 * b for a, b in zip(m, g)]
            v = [0.999 * a + 0.001 * b * b for a, b in zip(v, g)]
            rate = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            p = [q - rate * a / (jnp.sqrt(b) + 1e-7) for q, a, b in zip(p, m, v)]
            if validate:
                best = jnp.minimum(best, loss(p, xv, yv, l2))
            return p, m, v, t, best

        zeros = [jnp.zeros_like(q) for q in p]
        return jax.lax.fori_loop(0, epochs, epoch, (p, zeros, zeros, 0.0, jnp.inf))

    costs = {}
    one = init(jax.random.PRNGKey(0))
    many = jax.vmap(init)(jax.random.split(jax.random.PRNGKey(1), size))
    strengths = jnp.geomspace(1e-6, 1e-1, size)
    for validate in (False, True):
        together = jax.jit(jax.vmap(lambda p, l2: run(p, l2, epochs, validate)))
        for name, call, members in ((f"one member{' + validation' if validate else ''}",
                                     lambda: run(one, 1e-3, epochs, validate), 1),
                                    (f"{size} members, vmap{' + validation' if validate else ''}",
                                     lambda: together(many, strengths), size)):
            jax.block_until_ready(call())
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                jax.block_until_ready(call())
                times.append(time.perf_counter() - start)
            costs[name] = 1e6 * min(times) / (members * epochs)
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=39)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--mode", choices=population.MODES, help="the backend's default where not given")
    parser.add_argument("--threads", type=int, default=population.THREADS,
                        help="threads per population where the backend splits one (JAX on a CPU)")
    args = parser.parse_args(argv)
    population.THREADS = args.threads
    console = Console()
    table = Table(title=f"{args.members} moons members x {args.epochs} epochs ({keras.backend.backend()}, {args.mode or 'default mode'}, "
                        f"{args.threads} thread(s)), "
                        f"fastest of {args.calls} steady calls")
    for column in ("variant", "first call s", "us / member-epoch", "part's cost us", "ms / member set up"):
        table.add_column(column, justify="right")
    previous = None
    for name, variant in VARIANTS.items():
        first, cost, setup = steady_cost(args.members, args.epochs, args.calls, args.mode, **variant)
        part = "" if previous is None else f"{previous - cost:.1f}"
        table.add_row(name, f"{first:.2f}", f"{cost:.1f}", part, f"{setup:.1f}")
        previous = cost
    console.print(table)
    if keras.backend.backend() == "jax":
        floor = Table(title="The same member written by hand in jax.numpy (no Keras): the floor")
        floor.add_column("variant")
        floor.add_column("us / member-epoch", justify="right")
        for name, cost in hand_written_floor(args.members, args.epochs, args.calls).items():
            floor.add_row(name, f"{cost:.1f}")
        console.print(floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
