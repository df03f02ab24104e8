"""What nested cross-validation costs against k-fold: ``moons_l2_nested`` beside ``moons_l2_cv``.

    python benchmarks/nested_cost.py [--epochs 100] [--patience 10] [--repeats 2]
    python benchmarks/nested_cost.py --from-results results     # the committed full runs

Both searches are the same search (coarse decades, fine grid, baseline, 5
folds of the 30 training rows, then the refit); ``moons_l2_nested`` runs it in
each of 5 outer folds (on 24 rows) and then on every training row. Scaled
down (``--epochs``, ``--patience``, ``--repeats``), both run here, one after
the other, in this process; ``--from-results`` reads a results folder where
both ran in full (``python -m regsearch moons_l2_cv`` and ``moons_l2_nested``)
instead. For each it prints the training runs, the member-epochs (epochs
trained, summed over every run, refits included), the wall time and the
ratio of each to k-fold's; for the nested search, the procedure's expected
test score over outer folds, the choices and the optimism.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

SEARCHES = ("moons_l2_cv", "moons_l2_nested")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100, help="epochs per run (the search files: 4000)")
    parser.add_argument("--patience", type=int, default=10, help="early stopping's patience (the files: 200)")
    parser.add_argument("--repeats", type=int, default=2, help="seeds per configuration (the files: 10)")
    parser.add_argument("--from-results", type=Path, default=None,
                        help="read both searches' finished runs from this results folder instead of running them")
    return parser.parse_args(argv)


def run(name: str, args: argparse.Namespace, folder: Path) -> tuple[list[dict], list[dict], float]:
    """One search scaled down, run in this process: its records, its outer folds' records, its wall time."""
    from regsearch.definition import load_definition
    from regsearch.search import run_search

    base = load_definition(name)
    definition = dataclasses.replace(base, epochs=args.epochs, repeats=args.repeats,
                                     early_stopping={**base.early_stopping, "patience": args.patience})
    start = time.perf_counter()
    result = run_search(definition, folder / name, overwrite=True)
    return result.records, result.nested, time.perf_counter() - start


def read(name: str, results: Path) -> tuple[list[dict], list[dict], float]:
    """One finished search's records, its outer folds' records and its wall time (``provenance.json``)."""
    folder = results / name
    nested = folder / "nested_trials.csv"
    seconds = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))["wall_seconds"]
    return (pd.read_csv(folder / "trials.csv").to_dict("records"),
            pd.read_csv(nested).to_dict("records") if nested.is_file() else [], float(seconds))


def cost_row(name: str, records: list[dict], nested: list[dict], seconds: float) -> dict:
    runs = pd.DataFrame.from_records(records + nested)
    return {"search": name, "runs": len(runs), "member-epochs": int(runs["epochs_run"].fillna(0).sum()),
            "wall s": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    rows, outer_runs = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for name in SEARCHES:
            records, nested, seconds = (read(name, args.from_results) if args.from_results is not None
                                        else run(name, args, Path(scratch)))
            rows.append(cost_row(name, records, nested, seconds))
            outer_runs = nested or outer_runs
    table = pd.DataFrame(rows).set_index("search")
    for column in ("runs", "member-epochs", "wall s"):
        table[f"{column} / kfold"] = (table[column] / table.loc["moons_l2_cv", column]).round(2)
    scale = f"read from {args.from_results}" if args.from_results is not None else (
        f"epochs {args.epochs}, patience {args.patience}, {args.repeats} seeds")
    print(f"Nested cross-validation against k-fold on moons_l2 ({scale}):")
    print(table.to_string())
    if outer_runs:
        from regsearch.evaluation.nested import assess_nested
        from regsearch.report.nested import nested_choice_table, nested_sentence
        from regsearch.report.tables import trials_frame

        assessment = assess_nested(trials_frame(outer_runs), "val_accuracy", "max")
        print()
        print(nested_sentence(assessment))
        print(nested_choice_table(assessment).to_string(index=False))


if __name__ == "__main__":
    main()
