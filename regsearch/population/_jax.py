"""The JAX backend: the model's own stateless ``train_step``/``test_step`` under ``jit``.

Members run one after another inside one ``lax.fori_loop`` (``"loop"``: on a
CPU a stopped member costs nothing and a vectorized step is no faster per
member) or side by side under ``vmap`` (``"vmap"``: a GPU's width). On a CPU
each core runs a share of the members through the same program
(:data:`regsearch.population.THREADS`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import jax
import jax.numpy as jnp
import keras

from regsearch.population.loop import custom_step, epoch_logs

__all__ = ["Backend", "dropout"]


def dropout(inputs: Any, rate: Any, noise_shape: Any, seed_generator: Any) -> Any:
    """``keras.random.dropout`` of the JAX backend (same key, same mask) for a traced rate."""
    keep = 1.0 - rate
    shape = [inputs.shape[i] if d is None else d for i, d in enumerate(noise_shape)] if noise_shape else inputs.shape
    mask = jnp.broadcast_to(jax.random.bernoulli(seed_generator.next(), p=keep, shape=shape), inputs.shape)
    return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))


class Backend:
    def __init__(self, model: keras.Model, set_row: Callable[[Any], None]) -> None:
        self.model, self.bind_numbers = model, set_row

    def default_mode(self) -> str:
        return "loop" if jax.default_backend() == "cpu" else "vmap"

    @staticmethod
    def shared(program: Callable[..., Any], share_backend: Callable[[], Any], compile_on: Callable[[Any], Any]) -> Any:
        """``program`` itself: its steps are stateless, so one program serves every share (no template per share)."""
        return program

    @staticmethod
    def threads(cores: int, once: bool) -> int:
        """Threads that may run shares of a population: each core on a CPU, one on a GPU."""
        return cores if jax.default_backend() == "cpu" else 1

    def train_step(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return self._logged("train_step", *self.model.train_step(state, batch))

    def test_step(self, state: Any, batch: Any) -> tuple[Any, Any]:
        return self._logged("test_step", *self.model.test_step(state, batch))

    def _logged(self, step: str, logs: Any, state: Any) -> tuple[Any, Any]:
        """The step's logs as model.fit keeps them (:func:`epoch_logs`), the metrics read from ``state``."""
        if not custom_step(self.model, step):
            return logs, state

        def results() -> dict[str, Any]:
            with keras.StatelessScope(state_mapping=list(zip(self.model.metrics_variables, state[-1]))):
                return self.model.get_metrics_result()

        return epoch_logs(logs, results), state

    def log_specs(self, step: str, state: Any, batch: Any) -> dict[str, tuple[int, ...]]:
        from regsearch.population.loop import checked_logs

        logs, _ = jax.eval_shape(getattr(self, step), state, batch)
        return {name: tuple(spec.shape) for name, spec in checked_logs(step, logs).items()}

    @staticmethod
    def permutation(seed: Any, epoch: Any, n: int) -> Any:
        return jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(seed), epoch), n)

    @staticmethod
    def blank_logs(step: Callable[[Any, Any], tuple[Any, Any]], state: Any, batch: Any) -> Any:
        """Zeros shaped as the logs ``step(state, batch)`` returns, traced but not run: a batch loop's first logs."""
        return jax.tree.map(lambda spec: jnp.zeros(spec.shape, spec.dtype), jax.eval_shape(step, state, batch)[0])

    @staticmethod
    def take_rows(data: Any, start: Any, size: int) -> Any:
        return jax.tree.map(lambda t: jax.lax.dynamic_slice_in_dim(t, start, size, 0), data)

    @staticmethod
    def put_row(rows: Any, i: Any, row: Any) -> Any:
        return rows.at[i].set(row)

    def compile(self, member_chunk: Callable[..., Any], size: int, mode: str, rows_shape: tuple[int, ...],
                once: bool = False) -> Callable[..., Any]:
        """``(members, data, val, metrics_init) -> (members, rows)`` over the member axis, jitted (``once`` too)."""
        if mode == "vmap":
            return _compiled_once(jax.jit(jax.vmap(member_chunk, in_axes=(0, None, None, None))))

        def population(members: Any, data: Any, val: Any, metrics_init: Any) -> Any:
            def body(k: Any, carried: Any) -> Any:
                members, rows = carried
                member, chunk_rows = member_chunk(jax.tree.map(lambda a: a[k], members), data, val, metrics_init)
                members = jax.tree.map(lambda a, b: a.at[k].set(b), members, member)
                return members, rows.at[k].set(chunk_rows)

            rows = jnp.zeros((size, *rows_shape), jnp.float32)
            return jax.lax.fori_loop(0, size, body, (members, rows))

        return _compiled_once(jax.jit(population))


def _compiled_once(jitted: Any) -> Callable[..., Any]:
    """``jitted``, traced and compiled by the first call alone, then run to the end of its work by each call.

    Threads run shares of a population through one program side by side
    (:data:`regsearch.population.THREADS`): tracing reads and sets the
    template model's Python objects, so one thread traces while the others
    wait, and each waits for its own share (JAX dispatches asynchronously,
    and a CPU runs the calls of one thread one after another).
    """
    lock = threading.Lock()
    compiled = None

    def run(*args: Any) -> Any:
        nonlocal compiled
        with lock:
            if compiled is None:
                compiled = jitted.lower(*args).compile()
        return jax.block_until_ready(compiled(*args))

    return run
