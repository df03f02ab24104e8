"""``keras.callbacks.EarlyStopping`` as a rule (plain values) and as one member's array step.

The step is written with ``keras.ops`` only, so that the TensorFlow and the
JAX loop run the same decisions; it mirrors ``EarlyStopping.on_epoch_end``
(``min_delta``, ``baseline``, ``start_from_epoch``, ``restore_best_weights``,
which keeps the first monitored epoch's weights too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

__all__ = ["StoppingRule", "initial_state", "step"]


@dataclass(frozen=True)
class StoppingRule:
    """The decisions of an ``EarlyStopping``, patience apart (a member's own number)."""

    monitor: str
    minimize: bool
    min_delta: float  # signed as Keras uses it: negative when minimizing
    baseline: float | None
    start_from_epoch: int
    restore_best_weights: bool

    @classmethod
    def from_callback(cls, callback: keras.callbacks.EarlyStopping, model: keras.Model) -> StoppingRule:
        callback.set_model(model)
        if callback.monitor_op is None:
            # Keras resolves mode="auto" (and flips min_delta's sign) lazily, once; a private method.
            callback._set_monitor_op()
        return cls(
            monitor=callback.monitor,
            minimize=callback.monitor_op is keras.ops.less,
            min_delta=float(callback.min_delta),
            baseline=None if callback.baseline is None else float(callback.baseline),
            start_from_epoch=int(callback.start_from_epoch),
            restore_best_weights=bool(callback.restore_best_weights),
        )


def initial_state(weights: Any) -> dict[str, Any]:
    """``EarlyStopping.on_train_begin``: no best value yet; ``weights`` gives the kept weights' shapes."""
    return {
        "best": ops.zeros((), "float32"),
        "has_best": ops.zeros((), "bool"),
        "best_epoch": ops.zeros((), "int32"),
        "wait": ops.zeros((), "int32"),
        "stopped_epoch": ops.zeros((), "int32"),
        "has_best_weights": ops.zeros((), "bool"),
        "best_weights": weights,
    }


def step(rule: StoppingRule, state: dict[str, Any], patience: Any, epoch: Any, current: Any,
         weights: Any) -> tuple[dict[str, Any], Any]:
    """One ``on_epoch_end``: the new state and whether to stop."""

    def improves(value: Any, reference: Any) -> Any:
        shifted = value - rule.min_delta
        return ops.less(shifted, reference) if rule.minimize else ops.greater(shifted, reference)

    monitored = ops.greater_equal(epoch, rule.start_from_epoch)
    better = ops.logical_and(
        monitored, ops.logical_or(ops.logical_not(state["has_best"]), improves(current, state["best"]))
    )
    first = ops.logical_and(monitored, ops.logical_not(state["has_best_weights"]))
    keep = ops.logical_or(better, first) if rule.restore_best_weights else better
    wait = ops.where(monitored, state["wait"] + 1, state["wait"])
    if rule.baseline is None:
        reset = better
    else:
        reset = ops.logical_and(better, improves(current, ops.convert_to_tensor(rule.baseline, "float32")))
    wait = ops.where(reset, 0, wait)
    stop = ops.logical_and(
        ops.logical_and(monitored, ops.logical_not(better)),
        ops.logical_and(ops.greater_equal(wait, patience), ops.greater(epoch, 0)),
    )
    new = {
        "best": ops.where(better, current, state["best"]),
        "has_best": ops.logical_or(state["has_best"], better),
        "best_epoch": ops.where(keep, epoch, state["best_epoch"]),
        "wait": wait,
        "stopped_epoch": ops.where(stop, epoch, state["stopped_epoch"]),
        "has_best_weights": ops.logical_or(state["has_best_weights"], ops.logical_and(keep, rule.restore_best_weights)),
        "best_weights": state["best_weights"],
    }
    if rule.restore_best_weights:
        new["best_weights"] = ops.cond(keep, lambda: weights, lambda: state["best_weights"])
    return new, stop
