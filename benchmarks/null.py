"""How often does the answer claim that regularization helps when it does not? (issue 26)

Usage: python benchmarks/null.py [--searches 5] [--kinds signal noise] [--protocols holdout kfold]
       [--repeats 5] [--epochs 150] [--hidden 64] [--new-rows 5000] [--seed 0] [--csv FILE]
       python benchmarks/null.py --from-csv FILE [FILE ...]   (the table of runs kept with --csv, pooled)

The defaults (5 draws: 20 searches, 10 of them reruns on new rows) take about 12 minutes on 2 idle cores; a
search costs about 10 s (noise, holdout) to 70 s (signal, k-fold, with its rerun).

Each search draws its data afresh from a source (a claim is about the source,
not one sample) and runs as ``python -m regsearch`` would run it: L2 on the
hidden layer of a small MLP, the decades 1e-6 ... 1e-1 against no
regularization, ``--repeats`` seeds each, early stopping on the validation
loss, 30 training rows and 70 test rows. Its answer is read the way the report
reads it (:func:`regsearch.evaluation.compare.claims_improvement`): does the
selected configuration beat no regularization beyond noise, with the
family-wise correction the pages use and without it?

Two sources:

- ``noise``: moons features, labels drawn independently of them. No
  configuration can help: every claim is false.
- ``signal``: moons with ``noise = 0.35``, where the decades differ from no
  regularization by less than 70 test rows can resolve. The truth comes from
  ``--new-rows`` fresh rows of the same source: the same search runs a second
  time with them as its test rows (the same training rows, split and seeds, so
  the same trained models: the script checks their validation scores agree),
  and a claim is false when the selected configuration does not beat the
  baseline on the new rows; an interval is honest when it holds the new-row
  difference.

Protocols: ``holdout`` and ``kfold`` (the test rows never train or select, so
new test rows leave the models as they were). ``tutorial`` is not measured:
its test rows drive early stopping, so new rows would train other models.

Prints, per source and protocol: searches, claims with and without the
correction, false claims, and how often the claimed intervals held the new-row
difference; ``--csv`` keeps one row per search.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

TRAIN_ROWS, TEST_ROWS = 30, 70
SIGNAL_NOISE = 0.35

SEARCH = """\
description = "null simulation: {kind}, {protocol}, draw {draw}"

[data]
file = "{file}"

[model]
hypermodel = "RegularizedMLP"
hidden = [{hidden}]
activation = "relu"
optimizer = "adam"
learning_rate = 0.01

[space.regularizer]
kinds = ["l2"]
strengths = {{ decades = [1e-1, 1e-6] }}
target = "kernel"

[search]
strategy = "grid"
repeats = {repeats}
seed = {draw}

[training]
epochs = {epochs}
batch_size = 32

[early_stopping]
monitor = "val_loss"
patience = {patience}
restore_best_weights = true

[evaluation]
protocol = "{protocol}"
{protocol_keys}
"""


def draw_rows(kind: str, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` rows of the source: moons features, labels from the moons (``signal``) or coin flips (``noise``)."""
    x, y = make_moons(rows, noise=SIGNAL_NOISE, random_state=int(rng.integers(2**31 - 1)))
    if kind == "noise":
        y = rng.integers(0, 2, rows)
    return x.astype("float32"), y.astype("int64")


def run_one(folder: Path, kind: str, protocol: str, draw: int, x_train: np.ndarray, y_train: np.ndarray,
            x_test: np.ndarray, y_test: np.ndarray, args: argparse.Namespace) -> tuple[pd.DataFrame, dict, Any]:
    """One search on these rows; its trials table, per-row outcomes and (resolved) definition."""
    from regsearch.definition import load_definition
    from regsearch.report.tables import trials_frame
    from regsearch.search import run_search

    folder.mkdir(parents=True)
    np.savez(folder / "rows.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    keys = "folds = 3" if protocol == "kfold" else "validation_size = 0.3"
    (folder / "search.toml").write_text(SEARCH.format(
        kind=kind, protocol=protocol, draw=draw, file=folder / "rows.npz", hidden=args.hidden, repeats=args.repeats,
        epochs=args.epochs, patience=max(1, args.epochs // 10), protocol_keys=keys))
    result = run_search(load_definition(folder / "search.toml"), folder / "results")
    return trials_frame(result.records), result.outcomes, result.definition


def one_search(root: Path, kind: str, protocol: str, draw: int, args: argparse.Namespace) -> dict:
    from regsearch.evaluation.compare import claims_improvement

    rng = np.random.default_rng([args.seed, draw])
    x, y = draw_rows(kind, TRAIN_ROWS + TEST_ROWS, rng)
    x_new, y_new = draw_rows(kind, args.new_rows, rng)
    started = time.perf_counter()
    trials, outcomes, definition = run_one(root / f"{kind}-{protocol}-{draw}", kind, protocol, draw, x[:TRAIN_ROWS],
                               y[:TRAIN_ROWS], x[TRAIN_ROWS:], y[TRAIN_ROWS:], args)
    found = claims_improvement(trials, outcomes, objective=definition.objective,
                               direction=definition.direction, protocol=protocol)
    row = {"kind": kind, "protocol": protocol, "draw": draw, **{k: found[k] for k in (
        "selected", "is_baseline", "difference", "claims", "claims_uncorrected", "comparisons")},
        "ci_low": found["ci"][0], "ci_high": found["ci"][1],
        "ci_low_uncorrected": found["ci_uncorrected"][0], "ci_high_uncorrected": found["ci_uncorrected"][1]}
    if kind == "noise":
        row["new_difference"] = 0.0  # labels independent of the features: no model beats another on new rows
    elif not found["is_baseline"]:
        again, _, _ = run_one(root / f"{kind}-{protocol}-{draw}-new", kind, protocol, draw, x[:TRAIN_ROWS],
                           y[:TRAIN_ROWS], x_new, y_new, args)
        row["new_difference"] = new_row_difference(trials, again, found["selected"], protocol)
    row["seconds"] = time.perf_counter() - started
    return row


def new_row_difference(trials: pd.DataFrame, again: pd.DataFrame, selected: str, protocol: str) -> float:
    """The selected configuration minus the baseline, mean test accuracy over seeds, on the new rows.

    ``again`` is the same search scored on the new rows: its runs must be the same runs (same validation scores).
    """
    from regsearch.evaluation.compare import REFIT_PHASE, baseline_mask, selection_rows

    keys = ["phase", "trial_id", "repeat", "fold"]
    first = selection_rows(trials).set_index(keys)["val_loss"].sort_index()
    second = selection_rows(again).set_index(keys)["val_loss"].sort_index()
    if not np.allclose(first.to_numpy(), second.to_numpy(), rtol=1e-5, equal_nan=True):
        raise AssertionError("the search on new test rows trained other models: its validation losses differ")
    scored = again[again["phase"].astype(str) == REFIT_PHASE] if protocol == "kfold" else selection_rows(again)
    chosen = scored[scored["trial_id"] == selected]
    if protocol == "kfold":  # the refit of the chosen configuration and of the baseline
        baseline = scored[baseline_mask(scored)]
    else:
        baseline = scored[baseline_mask(scored) & (scored["phase"].astype(str) == "baseline")]
        baseline = baseline if len(baseline) else scored[baseline_mask(scored)]
    return float(chosen["test_accuracy"].mean() - baseline["test_accuracy"].mean())


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per source and protocol: claims with and without the correction, false claims (a claim where the new rows
    show no gain; their share of all searches), and how often the corrected interval held the new-row difference."""
    out = []
    for (kind, protocol), group in frame.groupby(["kind", "protocol"], sort=False):
        truth = group["new_difference"]
        false = group["claims"] & ~(truth > 0)
        false_raw = group["claims_uncorrected"] & ~(truth > 0)
        held = (group["ci_low"] <= truth) & (truth <= group["ci_high"])
        out.append({"source": kind, "protocol": protocol, "searches": len(group),
                    "claims": int(group["claims"].sum()),
                    "claims uncorr.": int(group["claims_uncorrected"].sum()),
                    "false claims": f"{int(false.sum())} ({false.mean():.1%})",
                    "false uncorr.": f"{int(false_raw.sum())} ({false_raw.mean():.1%})",
                    "claims' CI holds truth": f"{int(held[group['claims']].sum())}/{int(group['claims'].sum())}",
                    "all CIs hold truth": f"{held[truth.notna()].mean():.1%}" if truth.notna().any() else "-",
                    "s/search": f"{group['seconds'].mean():.1f}"})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=5, help="searches per source and protocol")
    parser.add_argument("--kinds", nargs="+", default=["signal", "noise"], choices=["signal", "noise"])
    parser.add_argument("--protocols", nargs="+", default=["holdout", "kfold"], choices=["holdout", "kfold"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--new-rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, help="write one row per search here")
    parser.add_argument("--from-csv", type=Path, nargs="+", help="print the table of earlier runs' --csv files")
    args = parser.parse_args()
    if args.from_csv:
        pooled = pd.concat([pd.read_csv(path) for path in args.from_csv], ignore_index=True)
        print_summary(Console(width=160), pooled, f"{', '.join(map(str, args.from_csv))}")
        return

    import logging

    logging.getLogger("regsearch").setLevel(logging.WARNING)
    console = Console(width=160)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for draw in range(args.searches):
            for kind in args.kinds:
                for protocol in args.protocols:
                    rows.append(one_search(Path(scratch), kind, protocol, draw, args))
            frame = pd.DataFrame(rows)
            console.print(f"draw {draw + 1}/{args.searches}: {len(frame)} searches, "
                          f"{int(frame['claims'].sum())} claims corrected, "
                          f"{int(frame['claims_uncorrected'].sum())} uncorrected, "
                          f"{time.perf_counter() - started:.0f} s")
            if args.csv:
                frame.to_csv(args.csv, index=False)
    print_summary(console, pd.DataFrame(rows), f"{args.searches} searches per source and protocol, "
                                                f"{args.repeats} seeds, {args.epochs} epochs")
    console.print(f"{time.perf_counter() - started:.0f} s in all")


def print_summary(console: Console, frame: pd.DataFrame, title: str) -> None:
    table = Table(title=f"Claims that regularization helps ({title})")
    found = summary(frame)
    for column in found.columns:
        table.add_column(column, justify="right")
    for _, row in found.iterrows():
        table.add_row(*[str(v) for v in row])
    console.print(table)


if __name__ == "__main__":
    main()
