"""The full grid, regsearch's Hyperband and successive halving (rungs inside the population) and Keras Tuner's
Hyperband, side by side.

    python benchmarks/hyperband.py [--epochs 1350] [--patience 60] [--min-epochs 50] [--repeats 3] [--space l2]
                                   [--more-seeds 1 2 3 4]

Same space (``moons_hyperband``: 11 L2 strengths x no dropout or dropout 0.1,
0.3, 0.5), same data and the same protocol (the tutorial's: the test rows
validate and select), scaled down from 4000 epochs (patience 200, rungs from 150) by about three
so that the three finish in minutes on two cores.
For each it prints the member-epochs spent (epochs trained, summed over
runs), the wall time, the configuration it picks, that configuration's
selection score in the full grid and its rank there (ties share a rank).
``--more-seeds`` reruns the grid and regsearch's Hyperband under other search
seeds (they draw other brackets and other initial weights) and prints each
seed's share of the grid's member-epochs and its pick's rank: one draw of
brackets is luck, good or bad.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import keras
import keras_tuner as kt
import pandas as pd

from regsearch.definition import load_definition
from regsearch.definition.build import load_data, make_hypermodel
from regsearch.report import summary_frame, trials_frame
from regsearch.search import run_search

PARAMS = ["param_strength", "param_dropout_kind", "param_dropout_rate"]
SHARE = "hyperband member-epochs / grid's"


def definition(args: argparse.Namespace, strategy: str, seed: int | None = None):  # noqa: ANN201 - a SearchDefinition
    base = load_definition("moons_hyperband")
    space = base.space if args.space == "l2+dropout" else {"regularizer": base.space["regularizer"]}
    return dataclasses.replace(
        base, strategy=strategy, space=space, epochs=args.epochs, min_epochs=args.min_epochs, repeats=args.repeats,
        early_stopping={**base.early_stopping, "patience": args.patience},
        evaluation=dataclasses.replace(base.evaluation, baseline=False), seed=base.seed if seed is None else seed)


def regsearch_run(args: argparse.Namespace, strategy: str, folder: Path,
                  seed: int | None = None) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    result = run_search(definition(args, strategy, seed), folder, overwrite=True)
    seconds = time.perf_counter() - start
    return trials_frame(result.records), seconds


class EpochCounter(keras.callbacks.Callback):
    """Counts epochs trained; Keras Tuner deep-copies callbacks per execution, so the count is the class's."""

    epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        type(self).epochs += 1


def keras_tuner_hyperband(args: argparse.Namespace, folder: Path) -> tuple[dict, float, int]:
    """Keras Tuner's own Hyperband over the same space; each trial is the HyperModel's model under ``model.fit``."""
    search = definition(args, "grid")
    split = load_data(search)
    hypermodel = make_hypermodel(search, split)
    tuner = kt.Hyperband(hypermodel.build, objective=kt.Objective("val_accuracy", "max"), max_epochs=args.epochs,
                         factor=search.factor, seed=search.seed, directory=str(folder), project_name="kt",
                         overwrite=True, max_consecutive_failed_trials=100)
    hp = kt.HyperParameters()
    hypermodel.describe(hp)
    tuner.oracle.hyperparameters = hp  # the HyperModel's own values: strengths and dropout as regsearch declares them
    EpochCounter.epochs = 0
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    start = time.perf_counter()
    tuner.search(split.x_train, split.y_train, validation_data=(split.x_test, split.y_test),
                 batch_size=search.batch_size, callbacks=[stopping, EpochCounter()], verbose=0)
    seconds = time.perf_counter() - start
    best = tuner.oracle.get_best_trials(1)[0]
    trials = tuner.oracle.trials.values()
    print(f"keras-tuner Hyperband: {len(trials)} trials, the longest to {max(t.hyperparameters.get('tuner/epochs') for t in trials)} "
          f"epochs (it stops when its random sampling finds no untried configuration of a finite space)")
    return hypermodel.describe(best.hyperparameters), seconds, EpochCounter.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1350)
    parser.add_argument("--patience", type=int, default=60)
    parser.add_argument("--min-epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--space", choices=("l2+dropout", "l2"), default="l2+dropout",
                        help="moons_hyperband's space, or its L2 strengths alone (moons_l2's question)")
    parser.add_argument("--more-seeds", type=int, nargs="*", default=[],
                        help="search seeds to rerun the grid and regsearch's Hyperband under")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="regsearch-hyperband-"))
    objective, direction = definition(args, "grid").objective, definition(args, "grid").direction

    grid_trials, grid_seconds = regsearch_run(args, "grid", work / "grid")
    grid = summary_frame(grid_trials, objective, direction)
    band_trials, band_seconds = regsearch_run(args, "hyperband", work / "hyperband")
    band = summary_frame(band_trials, objective, direction)
    halving_trials, halving_seconds = regsearch_run(args, "successive_halving", work / "halving")
    halving = summary_frame(halving_trials, objective, direction)
    kt_values, kt_seconds, kt_epochs = keras_tuner_hyperband(args, work / "kt")

    def in_grid(params: dict, grid: pd.DataFrame = grid) -> pd.Series:
        mask = pd.Series(True, index=grid.index)
        for column in PARAMS:
            value = params.get(column.removeprefix("param_"))
            mask &= grid[column].isna() if value is None else grid[column].astype(object) == value
        return grid[mask].iloc[0]

    def picked(summary: pd.DataFrame) -> dict:
        row = summary.iloc[0]
        return {column.removeprefix("param_"): (None if pd.isna(row[column]) else row[column]) for column in PARAMS}

    grid_epochs = float(grid_trials["epochs_run"].sum())
    rows = []
    for name, params, epochs, seconds, seeds in (
        ("full grid", picked(grid), grid_epochs, grid_seconds, args.repeats),
        ("regsearch hyperband", picked(band), float(band_trials["epochs_run"].sum()), band_seconds, args.repeats),
        ("regsearch successive_halving", picked(halving), float(halving_trials["epochs_run"].sum()), halving_seconds,
         args.repeats),
        ("keras-tuner Hyperband (model.fit)", kt_values, float(kt_epochs), kt_seconds, 1),
    ):
        row = in_grid(params)
        rows.append({
            "method": name, "seeds per configuration": seeds, "member-epochs": int(epochs),
            "epochs / grid's": round(epochs / grid_epochs, 3), "seconds": round(seconds, 1),
            "picked": ", ".join(f"{k}={v}" for k, v in params.items() if v is not None),
            f"grid {objective}": round(float(row[f"mean_{objective}"]), 4), "grid rank": int(row["rank"]),
        })
    table = pd.DataFrame(rows)
    print(f"moons_hyperband space ({args.space}), {len(grid)} configurations, {args.epochs} epochs, early stopping patience "
          f"{args.patience}, rungs from {args.min_epochs} epochs, factor {definition(args, 'grid').factor}")
    print(table.to_string(index=False))
    print(f"keras-tuner trains one seed per trial (executions_per_trial=1); regsearch {args.repeats} seeds each.")
    per_seed = table["member-epochs"] / table["seeds per configuration"]
    print("member-epochs per seed / grid's: " + ", ".join(
        f"{m}: {v / per_seed.iloc[0]:.3f}" for m, v in zip(table["method"], per_seed)))
    print("wall time / grid's: " + ", ".join(
        f"{m}: {s / grid_seconds:.2f}" for m, s in zip(table["method"], table["seconds"])))

    if args.more_seeds:
        draws = [{"seed": definition(args, "grid").seed, SHARE: table["epochs / grid's"].iloc[1],
                  "grid rank": table["grid rank"].iloc[1]}]
        for seed in args.more_seeds:
            seed_trials, _ = regsearch_run(args, "grid", work / f"grid{seed}", seed)
            seed_band, _ = regsearch_run(args, "hyperband", work / f"hyperband{seed}", seed)
            row = in_grid(picked(summary_frame(seed_band, objective, direction)),
                          summary_frame(seed_trials, objective, direction))
            draws.append({"seed": seed, SHARE: round(
                float(seed_band["epochs_run"].sum()) / float(seed_trials["epochs_run"].sum()), 3),
                "grid rank": int(row["rank"])})
        per_seed = pd.DataFrame(draws)
        print("regsearch hyperband under each search seed (its own grid for the rank):")
        print(per_seed.to_string(index=False))
        print(f"mean share {per_seed[SHARE].mean():.3f}; picks in the grid's top three: "
              f"{(per_seed['grid rank'] <= 3).sum()} of {len(per_seed)}")


if __name__ == "__main__":
    main()
