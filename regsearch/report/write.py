"""Writes the report of one search to its results folder: the only place that writes."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from regsearch.atomic import save_figure_atomic, write_bytes_atomic, write_csv_atomic, write_text_atomic
from regsearch.damaged import REWRITTEN, DamagedFileError, read_table
from regsearch.report.html import PlotImage, index_html, report_html
from regsearch.report.markdown import index_markdown, summary_markdown
from regsearch.report.boundary import plot_decision_boundaries
from regsearch.report.study_plots import (
    heatmap_axes,
    plot_activation_sparsity,
    plot_learning_curves_against_baseline,
    plot_paired_differences,
    plot_score_heatmap,
)
from regsearch.report.tensorboard import write_hparams
from regsearch.report.plots import (
    DPI,
    plot_accuracy_vs_strength,
    plot_learning_curves,
    plot_optimization_history,
    plot_rungs,
)
from regsearch.evaluation import compare
from regsearch.evaluation.caveats import caveats
from regsearch.outcomes import OUTCOMES_FILE, Outcomes, load_outcomes, outcomes_bytes, run_key
from regsearch.provenance import PROVENANCE_FILE, STOPPED
from regsearch.report.tables import (
    best_configuration,
    format_params,
    summary_frame,
    whole_budget_runs,
    trials_frame,
)

__all__ = ["INDEX_PAGE", "REPORT_FILES", "REPORT_PAGE", "best_history", "index_row", "report_settings", "write_index",
           "write_report"]

REPORT_FILES = (
    "trials.csv",
    "summary.csv",
    "comparison.csv",
    "summary.md",
    "report.html",
    "accuracy_vs_strength.png",
    "learning_curves.png",
)


REPORT_PAGE = "report.html"
TENSORBOARD_FOLDER = "tensorboard"
INDEX_PAGE = "index.html"
INDEX_MARKDOWN = "README.md"
INDEX_TITLE = "regsearch results"

#: What each plot shows, as its caption on the page.
CAPTIONS = {
    "accuracy_vs_strength.png": "Accuracy against regularization strength, training and held-out rows "
                                "(mean and standard deviation over repeats)",
    "learning_curves.png": "Learning curves of the best configuration (and of no regularization, when the search "
                           "has a baseline), first run of each",
    "score_heatmap.png": "Mean selection score over the two settings the search varies, the best cell outlined",
    "differences_to_baseline.png": "Each configuration minus no regularization, paired by seed, with its "
                                   "family-wise 95% interval (the one the verdicts use)",
    "activation_sparsity.png": "Activation sparsity of the regularized layer against strength: fraction of zeros "
                               "and mean activation",
    "decision_boundary.png": "Decision boundary of no regularization and of the best configuration over the "
                             "training and test points",
    "rungs.png": "Score at each rung: configurations dropped at a rung end there",
    "optimization_history.png": "Optimization history: each trial's score and the best so far",
}

#: What the validation curve of a learning-curve plot measured, by protocol.
VALIDATION_ROWS = {"holdout": "held-out training rows", "kfold": "held-out fold", "nested": "held-out fold",
                   "tutorial": "test data"}
#: A nested search's outer folds: every run of their searches, and one row per outer fold.
NESTED_TRIALS_FILE = "nested_trials.csv"
NESTED_FILE = "nested.csv"


def with_stopped(answer: str | None, stopped: str | None) -> str | None:
    """The answer sentence followed by why the search stopped early (``SearchResult.stopped``), if it did."""
    if not stopped:
        return answer
    return f"{answer} {stopped}" if answer else stopped


def answer_of(trials: pd.DataFrame, summary: pd.DataFrame, protocol: str,
              baseline: bool = True, outcomes: Outcomes | None = None) -> tuple[str | None, compare.Assessment | None]:
    """The one-line answer and the assessment of the selected configuration; None when nothing completed.

    ``baseline=False``: the search has no unregularized baseline, and the answer compares nothing.
    ``outcomes``: each run's per-row outcomes (:mod:`regsearch.outcomes`); without them the intervals are over
    seeds only.
    """
    try:
        best = best_configuration(summary)
    except Exception:  # noqa: BLE001 - SearchFailedError: every run failed, the page says so
        return None, None
    varying = [c for c in summary.columns if c.startswith("param_") and summary[c].nunique(dropna=False) > 1]
    named = {k: v for k, v in best["params"].items() if f"param_{k}" in varying} or best["params"]
    # A nested search's page answers with its search on every training row: kfold's refit on the test rows.
    assessment = compare.assess(trials, best, "kfold" if protocol == "nested" else protocol, baseline, outcomes)
    return compare.answer_line(assessment, format_params(named)), assessment


def best_history(
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    histories: Mapping[str, Mapping[str, Sequence[float]]],
) -> tuple[Mapping[str, Sequence[float]], str] | None:
    """Finds the history of the best configuration's first completed run.

    Args:
        trials: A table from ``trials_frame``.
        summary: Its ``summary_frame``.
        histories: Histories keyed by ``"<trial_id>/<repeat>"`` or by
            ``trial_id`` (then taken as that configuration's first run).

    Returns:
        The history and a title describing the run, or None if there is none.
    """
    if summary.empty or summary["n_failed"].iloc[0] == summary["n_runs"].iloc[0]:
        return None
    best = summary.iloc[0]
    runs = trials[(trials["phase"] == best["phase"]) & (trials["trial_id"] == best["trial_id"])]
    runs = runs[runs["status"].astype(str) == "completed"].sort_values("repeat", kind="stable")
    # Only what varies names the configuration; the fixed settings are in summary.md.
    varying = [c for c in summary.columns if c.startswith("param_") and summary[c].nunique(dropna=False) > 1]
    params = {c: best[c] for c in varying}
    for _, run in runs.iterrows():
        for key in (f"{run['trial_id']}/{run['repeat']}", str(run["trial_id"])):
            if key in histories and histories[key]:
                title = (
                    f"{run['search']}: best configuration {format_params(params)} "
                    f"(trial {run['trial_id']}, repeat {run['repeat']})"
                )
                return histories[key], title
    return None


def baseline_history(
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    histories: Mapping[str, Mapping[str, Sequence[float]]],
) -> tuple[Mapping[str, Sequence[float]], str] | None:
    """The history of the first completed run of the best configuration's baseline (as ``best_history``).

    None when there is none, or when the best configuration is its own baseline.
    """
    if summary.empty or summary["n_failed"].iloc[0] == summary["n_runs"].iloc[0]:
        return None
    best = summary.iloc[0]
    baselines = compare.baselines_of(summary, best)
    if baselines.empty or (baselines["phase"].iloc[0], baselines["trial_id"].iloc[0]) == (best["phase"],
                                                                                          best["trial_id"]):
        return None
    return best_history(trials, baselines.reset_index(drop=True), histories)


def _regularizes_activity(trials: pd.DataFrame) -> bool:
    """An activity-regularization search: some completed run penalizes activity, and sparsity was measured."""
    if "param_target" not in trials or "zero_fraction" not in trials:
        return False
    completed = trials["status"].astype(str) == "completed"
    return bool((completed & (trials["param_target"].astype(str) == "activity")
                 & trials["zero_fraction"].notna()).any())


def _two_features(data: Any) -> bool:
    """2-D binary classification data, whose decision boundary can be drawn."""
    return (data is not None and tuple(getattr(data, "input_shape", ())) == (2,)
            and getattr(data, "task", None) == "binary")


def write_report(
    out_dir: str | os.PathLike[str],
    records: Iterable[Mapping[str, Any]],
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    search_name: str,
    rerun_command: str,
    objective: str = "test_accuracy",
    direction: str = "max",
    definition_text: str | None = None,
    description: str | None = None,
    x: str = "param_strength",
    hue: str | None = None,
    protocol: str = "tutorial",
    baseline: bool = True,
    rungs: Iterable[Mapping[str, Any]] | None = None,
    tensorboard: bool = True,
    best_model: Any = None,
    baseline_model: Any = None,
    data: Any = None,
    stopped: str | None = None,
    kept_figures: Sequence[str] = (),
    epochs: int | None = None,
    early_stopping: bool = True,
    provenance: Mapping[str, Any] | None = None,
    outcomes: Outcomes | None = None,
    nested: Iterable[Mapping[str, Any]] | None = None,
    split_per_seed: bool = False,
) -> list[Path]:
    """Writes trials.csv, summary.csv, comparison.csv, summary.md, report.html and the plots, each atomically.

    Bayesian searches also get ``optimization_history.png``.

    A plot without data (no completed run, or no history for the best run)
    is skipped rather than drawn empty; summary.md links only what exists.

    Args:
        out_dir: The search's results folder; created if missing.
        records: Trial records, one per run.
        histories: Per-run histories keyed by ``"<trial_id>/<repeat>"`` or
            ``trial_id`` (see ``best_history``).
        search_name: The search, e.g. ``moons_l2``.
        rerun_command: The shell command that reruns it.
        objective: The metric to rank by.
        direction: ``max`` or ``min``.
        definition_text: The search definition (TOML), copied into summary.md and report.html.
        description: One line on what the search asks, under the page's title.
        x: The parameter column on the accuracy plot's x axis.
        hue: The parameter column that splits its lines (default: the varying ones).
        protocol: The evaluation protocol the runs followed (``holdout``, ``kfold``, ``nested``, ``tutorial``):
            what the page says selected and what assessed, and which rows the plot shows.
        baseline: False for a search without an unregularized baseline: no comparison is written.
        rungs: Each run's score at each rung (``successive_halving``, ``hyperband``): written
            to ``rungs.csv`` and drawn in ``rungs.png``.
        best_model: The best configuration's trained model (its first run), for the decision boundary.
        baseline_model: Its baseline's (no regularization), beside it.
        data: The :class:`regsearch.datasets.Split` the runs trained on: with two features and two
            classes, ``decision_boundary.png`` shows both models' boundaries over its points.
        stopped: Why the search ended before its plan did (``SearchResult.stopped``): a sentence
            added to the answer, and saved in ``provenance.json`` (key ``stopped``) when ``provenance`` is given.
        tensorboard: Write TensorBoard's HParams summaries, one run per training run, to
            ``tensorboard/`` (:func:`regsearch.report.tensorboard.write_hparams`).
        epochs: The epoch budget of a run (``[training] epochs``), which the warnings
            (:func:`regsearch.evaluation.caveats.caveats`) compare the best epoch with, and whether
            the runs stopped early (else their best epoch is their last).
        provenance: What produced the runs (:func:`regsearch.provenance.collect`): written to
            ``provenance.json`` and shown on both pages.
        outcomes: Each run's outcome on each row that scored it (:mod:`regsearch.outcomes`): written to
            ``outcomes.npz`` (the runs of ``records`` only), and the intervals resample the rows.
            None or empty: the intervals are over seeds only, and the pages say so (an
            ``outcomes.npz`` already in ``out_dir`` is left as it is).
        nested: ``nested``: every run of the outer folds' searches (``SearchResult.nested``), written to
            ``nested_trials.csv``; ``nested.csv`` and the page's nested section give, per outer fold, the
            choice and its scores (:func:`regsearch.evaluation.nested.assess_nested`).
        split_per_seed: Whether each seed drew its own validation split or folds (``[evaluation]``): the
            comparison's note says whether its intervals cover that choice (not under ``tutorial``).
        kept_figures: Plots of these same runs that this call cannot draw (a rebuild from
            ``trials.csv`` has no per-epoch histories; a moved data file, no points): when
            not drawn, the file already in ``out_dir`` stays and the page shows it.

    Returns:
        The written files, in the order of ``REPORT_FILES``.

    Raises:
        SettingError: For an unknown objective or direction (nothing is written).
    """
    folder = Path(out_dir)
    everything = trials_frame(records)
    trials = compare.selection_rows(everything)  # kfold's refit assesses; it does not compete
    summary = summary_frame(trials, objective, direction)
    keys = {run_key(record) for record in everything.to_dict("records")}
    outcomes = {key: value for key, value in (outcomes or {}).items() if key in keys}
    comparison = compare.paired_differences(everything, objective, outcomes) if baseline else pd.DataFrame()
    written = [
        write_csv_atomic(everything, folder / "trials.csv"),
        write_csv_atomic(summary, folder / "summary.csv"),
    ]
    if outcomes:
        written.append(write_bytes_atomic(folder / OUTCOMES_FILE, outcomes_bytes(outcomes)))
    if not comparison.empty:
        written.append(write_csv_atomic(comparison, folder / "comparison.csv"))
    answer, assessment = answer_of(everything, summary, protocol, baseline, outcomes)
    sure = None
    if not comparison.empty:
        chosen = comparison[~comparison["baseline"].astype(bool)]
        if not summary.empty:
            top = summary.iloc[0]
            chosen = chosen[(chosen["phase"] == top["phase"]) & (chosen["trial_id"] == top["trial_id"])]
        sure = compare.how_sure(comparison, float(chosen["difference"].iloc[0]) if len(chosen) == 1 else math.nan)
    answer = with_stopped(answer, stopped)
    outer_runs = trials_frame(nested) if nested else pd.DataFrame()
    procedure = None
    if not outer_runs.empty:
        from regsearch.evaluation.nested import assess_nested

        procedure = assess_nested(outer_runs, objective, direction)
        written.append(write_csv_atomic(outer_runs, folder / NESTED_TRIALS_FILE))
        written.append(write_csv_atomic(procedure.folds, folder / NESTED_FILE))
    warnings = caveats(everything, summary, epochs=epochs, early_stopping=early_stopping)
    if provenance:
        # The stop is saved with what produced the runs, so that a rebuild (``report``) says it again.
        saved = {key: value for key, value in provenance.items() if key != STOPPED}
        if stopped:
            saved[STOPPED] = stopped
        written.append(write_text_atomic(folder / PROVENANCE_FILE, json.dumps(saved, indent=1) + "\n"))
    rung_rows = pd.DataFrame.from_records(list(rungs or []))
    if not rung_rows.empty:
        written.append(write_csv_atomic(rung_rows, folder / "rungs.csv"))

    figures: list[Path] = []
    plotted = (
        trials[["train_accuracy", "test_accuracy", "train_loss", "test_loss"]].notna().any(axis=1)
    )
    whole = whole_budget_runs(trials)
    plotted, shown = plotted & whole, trials[whole]
    if (plotted & (trials["status"].astype(str) != "failed")).any():
        ax = plot_accuracy_vs_strength(shown, x=x, hue=hue, held_out="test" if protocol == "tutorial" else "val")
        figures.append(
            save_figure_atomic(ax.get_figure(), folder / "accuracy_vs_strength.png", dpi=DPI)
        )
    found = best_history(trials, summary, histories)
    baseline_found = baseline_history(trials, summary, histories) if baseline else None
    if found is not None and baseline_found is not None:
        figure_axes = list(Figure(figsize=(10, 8.5), dpi=DPI, layout="constrained").subplots(2, 1, sharex=True))
        labels = ("best configuration", "no regularization")
        for ax, metric in zip(figure_axes, ("accuracy", "loss")):
            if metric in found[0] and metric in baseline_found[0]:
                plot_learning_curves_against_baseline(found[0], baseline_found[0], metric=metric, labels=labels,
                                                      validation=VALIDATION_ROWS[protocol], ax=ax)
            else:
                ax.set_visible(False)
        figure_axes[0].get_figure().suptitle(found[1])
        figures.append(save_figure_atomic(figure_axes[0].get_figure(), folder / "learning_curves.png", dpi=DPI))
    elif found is not None:
        history, title = found
        axes = plot_learning_curves(history, title=title, validation=VALIDATION_ROWS[protocol])
        figures.append(
            save_figure_atomic(axes[0].get_figure(), folder / "learning_curves.png", dpi=DPI)
        )
    pair = heatmap_axes(summary)
    if pair is not None and summary[f"mean_{objective}"].notna().any():
        ax = plot_score_heatmap(summary, score=objective, x=pair[0], y=pair[1], direction=direction)
        figures.append(save_figure_atomic(ax.get_figure(), folder / "score_heatmap.png", dpi=DPI))
    if not comparison.empty and (~comparison["baseline"].astype(bool) & comparison["difference"].notna()).any():
        ax = plot_paired_differences(comparison, metric=objective)
        figures.append(save_figure_atomic(ax.get_figure(), folder / "differences_to_baseline.png", dpi=DPI))
    if _regularizes_activity(shown):
        axes = plot_activation_sparsity(shown, x=x)
        figures.append(save_figure_atomic(axes[0].get_figure(), folder / "activation_sparsity.png", dpi=DPI))
    models = {"no regularization": baseline_model, "best configuration": best_model}
    if _two_features(data) and all(model is not None for model in models.values()):
        axes = plot_decision_boundaries(models, data.x_train, data.y_train, data.x_test, data.y_test)
        figures.append(save_figure_atomic(axes[0].get_figure(), folder / "decision_boundary.png", dpi=DPI))
    if not rung_rows.empty:
        best = best_configuration(summary) if summary[f"mean_{objective}"].notna().any() else None
        ax = plot_rungs(rung_rows, score=objective,
                        selected=None if best is None else (best["phase"], best["trial_id"]))
        figures.append(save_figure_atomic(ax.get_figure(), folder / "rungs.png", dpi=DPI))
    if (trials["phase"].astype(str) == "bayesian").any() and trials[objective].notna().any():
        # A Bayesian search is read by how fast it found its best: optuna's history plot.
        ax = plot_optimization_history(trials, objective=objective, direction=direction)
        figures.append(
            save_figure_atomic(ax.get_figure(), folder / "optimization_history.png", dpi=DPI)
        )

    drawn = {path.name for path in figures}
    figures += [folder / name for name in kept_figures if name not in drawn and (folder / name).is_file()]
    order = list(CAPTIONS)
    figures.sort(key=lambda path: order.index(path.name) if path.name in order else len(order))

    split_note = None if protocol == "tutorial" else split_per_seed  # the tutorial's test rows validate: no split
    text = summary_markdown(
        summary,
        search_name=search_name,
        rerun_command=rerun_command,
        definition_text=definition_text,
        objective=objective,
        figures=[path.name for path in figures],
        answer=answer,
        assessment=assessment,
        comparison=comparison,
        warnings=warnings,
        provenance=provenance,
        how_sure=sure,
        nested=procedure,
        split_per_seed=split_note,
    )
    written.append(write_text_atomic(folder / "summary.md", text))
    page = report_html(
        summary, search_name=search_name, rerun_command=rerun_command, objective=objective,
        description=description, answer=answer, assessment=assessment, comparison=comparison, warnings=warnings,
        figures=[PlotImage(path.name, CAPTIONS.get(path.name, path.stem.replace("_", " ")), path.read_bytes())
                 for path in figures],
        definition_text=definition_text, provenance=provenance, how_sure=sure, nested=procedure,
        split_per_seed=split_note,
        files=[path.name for path in written] + ["summary.md"] + ([TENSORBOARD_FOLDER] if tensorboard else []),
    )
    written.append(write_text_atomic(folder / REPORT_PAGE, page))
    if tensorboard:
        written.append(write_hparams(folder / TENSORBOARD_FOLDER, everything, objective=objective))
    return written + figures


def report_settings(definition: Any, records: Sequence[Mapping[str, Any]]) -> tuple[str, str, str, bool]:
    """The objective, direction, protocol and baseline a saved search is reported with.

    ``definition`` is the one saved beside the runs (None if there is none).
    Runs saved before ``[evaluation]`` existed (no ``fold`` column) followed the
    articles' protocol; without an objective, the default depends on the task:
    accuracy unless the runs have none (regression).
    """
    protocol = definition.evaluation.kind if definition and any("fold" in r for r in records) else "tutorial"
    baseline = definition.evaluation.baseline if definition else True
    objective, direction = (definition.objective, definition.direction) if definition else (None, None)
    if objective is None:
        prefix = "test" if protocol == "tutorial" else "val"
        scored = any(math.isfinite(r.get("train_accuracy", math.nan)) for r in records)
        objective, direction = (f"{prefix}_accuracy", "max") if scored else (f"{prefix}_loss", "min")
    return objective, direction, protocol, baseline


def _refit_test_scores(trials: pd.DataFrame, best: dict[str, Any]) -> dict[str, float]:
    """k-fold's folds score no test rows: the test accuracy and loss of the choice's refit (mean, population std)."""
    refit = compare.assessed_runs(trials, "kfold", best["phase"], best["trial_id"])
    refit = refit[refit["status"] == "completed"]
    scores = {}
    for metric in ("test_accuracy", "test_loss"):
        if metric in refit and refit[metric].notna().any():
            scores[f"mean_{metric}"] = float(refit[metric].mean())
            scores[f"std_{metric}"] = float(refit[metric].std(ddof=0))
    return scores


def index_row(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A search's row of the results index, read from its report files (no saved runs needed); None if it has none.

    The row holds what :func:`regsearch.report.sections.index_table` shows, its
    ``link`` (the search's ``report.html``, relative to the results folder) and
    ``markdown_link`` (its ``summary.md``).
    """
    from regsearch.errors import SearchFailedError
    from regsearch.results import saved_definition

    folder = Path(folder)
    if not (folder / "trials.csv").is_file():
        return None
    definition = saved_definition(folder)
    records = read_table(folder / "trials.csv", REWRITTEN).to_dict("records")
    everything = trials_frame(records)
    objective, direction, protocol, baseline = report_settings(definition, records)
    summary = summary_frame(compare.selection_rows(everything), objective, direction)
    try:
        best = best_configuration(summary)
    except SearchFailedError:
        best = None
    if best is not None and protocol == "kfold":
        best = {**best, **_refit_test_scores(everything, best)}
    outcomes = load_outcomes(folder / OUTCOMES_FILE) if (folder / OUTCOMES_FILE).is_file() else None
    answer, assessment = answer_of(everything, summary, protocol, baseline, outcomes)
    return {"search": folder.name, "best": best, "link": f"{folder.name}/{REPORT_PAGE}",
            "markdown_link": f"{folder.name}/summary.md",
            "description": definition.description if definition else None, "answer": answer,
            "protocol": protocol, "claim": definition.report.get("claim") if definition else None,
            "verdict": None if assessment is None else compare.verdict(assessment)}


def write_index(results: str | os.PathLike[str]) -> Path:
    """Writes ``index.html`` and ``README.md`` of a results folder from the same rows: every search in it (every
    folder with a ``trials.csv``), linked to its page, with its answer.

    ``README.md`` is left alone when it exists and is not regsearch's own
    index (a user's file in a folder passed as ``--results``).

    Returns:
        The path of ``index.html``.
    """
    results = Path(results)
    rows = []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        try:
            row = index_row(folder)
        except DamagedFileError as error:  # another search's damaged table must not stop this one's report
            logging.getLogger(__name__).warning("%s; left out of %s", error, INDEX_PAGE)
            continue
        if row is not None:
            rows.append(row)
    readme = results / INDEX_MARKDOWN
    if not readme.exists() or readme.read_text(encoding="utf-8", errors="replace").startswith(f"# {INDEX_TITLE}\n"):
        write_text_atomic(readme, index_markdown([{**row, "link": row["markdown_link"]} for row in rows],
                                                 title=INDEX_TITLE))
    return write_text_atomic(results / INDEX_PAGE, index_html(rows, title=INDEX_TITLE))
