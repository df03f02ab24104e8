"""One member's epochs, written once in ``keras.ops`` over a backend's pure steps.

A backend (``_jax.py``, ``_tensorflow.py``) supplies ``train_step(state,
batch) -> (logs, state)`` and ``test_step`` in the form of Keras's JAX
trainer, a seeded permutation, and indexing into the member axis; this module
runs a chunk of epochs for one member (shuffling, minibatches, validation,
the early-stopping step, divergence) and a chunk for the whole population,
member after member (``"loop"``, where a stopped member costs nothing) or all
at once (``"vmap"``, for wide devices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from keras import ops, tree

from regsearch.population import stopping

__all__ = ["Layout", "Settings", "checked_logs", "flat_logs", "member_chunk", "member_scores"]


@dataclass(frozen=True)
class Layout:
    """The columns of a member's per-epoch log rows: train logs, then ``val_`` logs, flattened and sorted."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def width(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def column(self, name: str) -> int | None:
        if name not in self.names:
            return None
        index = self.names.index(name)
        if math.prod(self.shapes[index]) != 1:
            raise ValueError(f"fit: the early-stopping monitor '{name}' must be one number per epoch; "
                             f"got shape {self.shapes[index]}.")
        return sum(math.prod(shape) for shape in self.shapes[:index])

    def history(self, rows: Any) -> dict[str, list[Any]]:
        history, offset = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = math.prod(shape)
            block = rows[:, offset: offset + size]
            offset += size
            history[name] = [float(v[0]) for v in block] if size == 1 else [v.reshape(shape) for v in block]
        return dict(sorted(history.items()))


def flat_logs(logs: dict[str, Any]) -> dict[str, Any]:
    """Keras's ``pythonify_logs`` without the conversion: sorted by name, nested dicts merged in."""
    flat: dict[str, Any] = {}
    for name, value in sorted(logs.items()):
        flat.update(flat_logs(value) if isinstance(value, dict) else {name: value})
    return flat


def checked_logs(step: str, logs: Any) -> dict[str, Any]:
    """The flat logs a model's ``train_step``/``test_step`` returned; refuses what ``model.fit`` cannot log."""
    if not isinstance(logs, dict):
        raise ValueError(f"fit: 'model.{step}' must return a dict of logs, as model.fit needs; "
                         f"got {type(logs).__name__}.")
    return flat_logs(logs)


def custom_step(model: Any, step: str) -> bool:
    """Whether ``model`` overrides ``step`` (or ``compute_metrics``): its logs may then differ from its metrics'."""
    import keras

    return any(getattr(type(model), name) is not getattr(keras.Model, name) for name in (step, "compute_metrics"))


def epoch_logs(logs: Any, metric_results: Callable[[], dict[str, Any]]) -> Any:
    """The logs ``model.fit`` keeps of a step: its metrics' results when the step returns exactly their names.

    Keras's ``Trainer._get_metrics_result_or_logs``: a custom step that
    returns other keys is logged as it returned them.
    """
    results = metric_results()
    return results if isinstance(logs, dict) and set(logs) == set(results) else logs


@dataclass(frozen=True)
class Settings:
    """What the traced program bakes in: shapes and the rules shared by the group."""

    chunk: int
    batch_size: int
    val_batch_size: int
    shuffle: bool
    rule: stopping.StoppingRule | None
    layout: Layout
    monitor: int | None


def _batches(step: Callable, state: Any, data: Any, batch_size: int, take_rows: Callable,
             blank_logs: Callable | None = None) -> tuple[Any, Any]:
    """Calls ``step`` on consecutive minibatches (the last possibly smaller); returns the last logs and state.

    With ``blank_logs`` (``(step, state, batch) -> logs`` of zeros shaped as the step's), every full batch runs
    inside one loop, so that the program holds the step twice (the loop's and the smaller last batch's), not
    three times: compiling the step is most of a short run's time. Without it, the first batch runs before the
    loop, to give the loop its logs.
    """
    n_rows = int(tree.flatten(data)[0].shape[0])
    n_full, remainder = divmod(n_rows, batch_size)
    logs = None

    def body(i: Any, carried: tuple[Any, Any]) -> tuple[Any, Any]:
        return step(carried[1], take_rows(data, i * batch_size, batch_size))

    if blank_logs is not None and n_full >= 2:
        first = tree.map_structure(lambda t: t[:batch_size], data)
        logs, state = ops.fori_loop(0, n_full, body, (blank_logs(step, state, first), state))
    elif n_full <= 2:
        for i in range(n_full):
            logs, state = step(state, tree.map_structure(lambda t: t[i * batch_size:(i + 1) * batch_size], data))
    else:
        first, state = step(state, tree.map_structure(lambda t: t[:batch_size], data))
        logs, state = ops.fori_loop(1, n_full, body, (first, state))
    if remainder:
        logs, state = step(state, tree.map_structure(lambda t: t[n_full * batch_size:], data))
    return logs, state


def member_chunk(settings: Settings, backend: Any, member: dict[str, Any], data: Any, val: Any,
                 metrics_init: Any) -> tuple[dict[str, Any], Any]:
    """Runs up to ``settings.chunk`` epochs of one member; returns its new state and the chunk's log rows.

    ``member`` holds ``model`` (trainable, non-trainable, optimizer variables),
    ``stopping`` (see :mod:`stopping`), ``epoch`` (the next one), ``until``
    (the epoch to pause before), ``alive``, ``ended`` (stopped early or
    diverged), ``diverged``, ``done`` (epochs run in this chunk), ``numbers``,
    ``patience`` and ``seed``.
    """
    layout = settings.layout
    n_train = int(tree.flatten(data)[0].shape[0])
    shuffles = settings.shuffle and n_train > settings.batch_size

    def epoch_body(i: Any, carried: tuple[dict[str, Any], Any]) -> tuple[dict[str, Any], Any]:
        m, rows = carried
        backend.bind_numbers(m["numbers"])
        tv, ntv, ov = m["model"]
        batches = data
        if shuffles:
            order = backend.permutation(m["seed"], m["epoch"], n_train)
            batches = tree.map_structure(lambda t: ops.take(t, order, axis=0), data)
        train_logs, (tv, ntv, ov, _) = _batches(backend.train_step, (tv, ntv, ov, metrics_init), batches,
                                                settings.batch_size, backend.take_rows, backend.blank_logs)
        values = list(flat_logs(train_logs).values())
        if val is not None:
            val_logs, _ = _batches(backend.test_step, (tv, ntv, metrics_init), val, settings.val_batch_size,
                                   backend.take_rows, backend.blank_logs)
            values += list(flat_logs(val_logs).values())
        row = ops.concatenate([ops.reshape(ops.cast(v, "float32"), [-1]) for v in values], axis=0)
        rows = backend.put_row(rows, i, row)
        loss = flat_logs(train_logs).get("loss")
        diverged = ops.zeros((), "bool") if loss is None else ops.logical_not(ops.all(ops.isfinite(loss)))
        stop = diverged
        es = m["stopping"]
        if settings.monitor is not None:
            es, stopped = stopping.step(settings.rule, es, m["patience"], m["epoch"], row[settings.monitor],
                                        (tv, ntv))
            stop = ops.logical_or(stop, stopped)
        epoch = m["epoch"] + 1
        alive = ops.logical_and(ops.logical_not(stop), ops.less(epoch, m["until"]))
        new = {**m, "model": (tv, ntv, ov), "stopping": es, "epoch": epoch, "alive": alive, "diverged": diverged,
               "ended": ops.logical_or(m["ended"], stop), "done": m["done"] + 1}
        return new, rows

    def keep_going(m: dict[str, Any], rows: Any) -> Any:
        return ops.logical_and(m["alive"], ops.less(m["done"], settings.chunk))

    def body(m: dict[str, Any], rows: Any) -> tuple[dict[str, Any], Any]:
        return epoch_body(m["done"], (m, rows))

    start = ({**member, "done": ops.zeros((), "int32")}, ops.zeros((settings.chunk, layout.width), "float32"))
    member, rows = ops.while_loop(keep_going, body, start, maximum_iterations=settings.chunk)
    return member, rows


def member_scores(backend: Any, member: dict[str, Any], data: Any, val: Any | None, metrics_init: Any,
                  batch_size: int) -> tuple[dict[str, Any], Any]:
    """One member's ``test_step`` logs over all of ``data``, then all of ``val`` (zeros without it), as one row.

    ``member`` holds ``weights`` (trainable, non-trainable) and ``numbers``:
    what ``model.evaluate`` computes for the trained model, batch by batch.
    """
    backend.bind_numbers(member["numbers"])
    tv, ntv = member["weights"]
    parts = []
    for rows in (data, val):
        if rows is None:
            parts.append(ops.zeros_like(parts[0]))
            continue
        size = min(batch_size, int(tree.flatten(rows)[0].shape[0]))
        logs, _ = _batches(backend.test_step, (tv, ntv, metrics_init), rows, size, backend.take_rows,
                           backend.blank_logs)
        parts.append(ops.concatenate([ops.reshape(ops.cast(v, "float32"), [-1]) for v in flat_logs(logs).values()],
                                     axis=0))
    return member, ops.concatenate(parts, axis=0)
