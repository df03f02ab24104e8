"""Warnings under the answer (issue 25, item 4): each fires on its own, none on a well-trained multi-seed search."""

from __future__ import annotations

import io
import math
import types
from pathlib import Path

import pandas as pd
import pytest

from regsearch.evaluation import compare
from regsearch.evaluation.caveats import caveats
from regsearch.report import summary_frame, trials_frame

STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1)


def records(*, best: float = 1e-3, seeds: int = 5, best_epoch: int = 80, epochs_run: int = 101,
            failed: int = 0, diverged: int = 0) -> list[dict]:
    """An L2 grid plus the baseline; ``best`` scores highest on every seed."""
    rows = []
    configurations = [("none", math.nan)] + [("l2", s) for s in STRENGTHS]
    for number, (kind, strength) in enumerate(configurations):
        for seed in range(seeds):
            score = 0.9 if strength == best else 0.8 - 0.01 * number
            rows.append({"search": "s", "trial_id": f"grid-{number:04d}", "phase": "grid", "repeat": seed,
                         "seed": seed, "status": "completed", "reason": "", "param_kind": kind,
                         "param_strength": strength, "train_accuracy": 1.0, "test_accuracy": score + 0.001 * seed,
                         "val_accuracy": score + 0.002 * seed, "train_loss": 0.1, "test_loss": 1 - score,
                         "val_loss": 1 - score, "best_epoch": best_epoch if strength == best else 50,
                         "epochs_run": epochs_run if strength == best else 71, "diverged": False, "seconds": 1.0})
    for k in range(failed + diverged):
        status = "failed" if k < failed else "diverged"
        rows.append({"search": "s", "trial_id": f"grid-{9 + k:04d}", "phase": "grid", "repeat": 0, "seed": 0,
                     "status": status, "reason": "ValueError: no" if status == "failed" else "the loss became NaN",
                     "param_kind": "l2", "param_strength": 10.0 + k, "diverged": status == "diverged"})
    return rows


def warnings_of(rows: list[dict], **options) -> list[str]:
    trials = trials_frame(rows)
    summary = summary_frame(compare.selection_rows(trials), "val_accuracy", "max")
    return caveats(trials, summary, epochs=200, **options)


def test_a_well_trained_multi_seed_search_gets_no_warning() -> None:
    assert warnings_of(records()) == []


def test_a_best_epoch_at_the_last_epoch_says_raise_epochs() -> None:
    found = warnings_of(records(best_epoch=195, epochs_run=200))
    assert found == ["The selected configuration's best epoch is at or near the last one (196 of 200 on average): "
                     "it may still have been improving, so raise [training] epochs."]
    assert warnings_of(records(best_epoch=170, epochs_run=200)) == []  # 171 < 0.9 * 200
    # Without early stopping every run's best epoch is its last: that says nothing.
    assert warnings_of(records(best_epoch=199, epochs_run=200), early_stopping=False) == []


@pytest.mark.parametrize(("best", "expected"), [
    (1e-1, "The selected strength 0.1 is the largest of the 4 values tried (0.0001 to 0.1): widen the range upward "
           "to see whether the best lies beyond it."),
    (1e-4, "The selected strength 0.0001 is the smallest of the 4 values tried (0.0001 to 0.1): widen the range "
           "downward to see whether the best lies beyond it."),
])
def test_a_strength_at_the_edge_of_the_range_says_widen_it(best: float, expected: str) -> None:
    assert warnings_of(records(best=best)) == [expected]


@pytest.mark.parametrize(("seeds", "expected"), [
    (1, "The selected configuration ran 1 seed, which gives no confidence interval: set [search] repeats to 3 or "
        "more."),
    (2, "The selected configuration ran 2 seeds, which gives a confidence interval too wide to tell much: set "
        "[search] repeats to 3 or more."),
])
def test_too_few_seeds_say_raise_repeats(seeds: int, expected: str) -> None:
    assert warnings_of(records(seeds=seeds)) == [expected]
    assert warnings_of(records(seeds=3)) == []


def test_failed_and_diverged_runs_are_counted() -> None:
    assert warnings_of(records(failed=2, diverged=1)) == [
        "Of 28 runs, 2 failed and 1 diverged: the answer rests on the others (the reasons are in the reason column "
        "of trials.csv)."]


def test_the_warnings_appear_in_summary_md_report_html_and_the_console(tmp_path: Path) -> None:
    from rich.console import Console

    from regsearch.cli import _print_best
    from regsearch.report import write_report

    rows = records(best=1e-1, seeds=1, failed=1)
    write_report(tmp_path, rows, {}, search_name="s", rerun_command="x", objective="val_accuracy", protocol="holdout",
                 epochs=200, tensorboard=False)
    expected = warnings_of(rows)
    assert len(expected) == 3
    markdown, page = (tmp_path / "summary.md").read_text(), (tmp_path / "report.html").read_text()
    for sentence in expected:
        assert f"> - {sentence}" in markdown
        assert f"<li>{sentence}</li>" in page
    assert markdown.index("> - ") < markdown.index("## Best configuration")

    definition = types.SimpleNamespace(
        name="s", objective="val_accuracy", direction="max", epochs=200, early_stopping={"patience": 20},
        evaluation=types.SimpleNamespace(kind="holdout", baseline=True, selects_on_test=False))
    output = io.StringIO()
    _print_best(Console(file=output, width=400), tmp_path, definition, 1.0)
    printed = output.getvalue().splitlines()
    assert [line for line in printed if line.startswith("warning: ")] == [f"warning: {s}" for s in expected]
    assert pd.read_csv(tmp_path / "summary.csv")["rank"].iloc[0] == 1
