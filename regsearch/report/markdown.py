"""Markdown reports: one page per search (summary.md) and the results index.

Tables are formatted here rather than with ``DataFrame.to_markdown``, which
needs the optional ``tabulate`` package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from regsearch.errors import SearchFailedError
from regsearch.evaluation.compare import Assessment
from regsearch.report.tables import (
    COUNT_COLUMNS,
    PARAM_PREFIX,
    best_configuration,
    format_params,
    format_value,
    param_columns,
    tie_breaker_of,
)

__all__ = ["index_markdown", "markdown_table", "mean_std", "summary_markdown"]

# Metrics shown in the ranked table, after the objective, when they hold values.
SHOWN_METRICS = (
    "val_accuracy",
    "test_accuracy",
    "train_accuracy",
    "gap",
    "test_loss",
    "val_loss",
    "best_epoch",
    "mean_activation",
    "zero_fraction",
    "seconds",
)
_FRACTIONS = ("accuracy", "gap", "zero_fraction")


def markdown_table(frame: pd.DataFrame) -> str:
    """Formats a table as GitHub Markdown; number columns are right-aligned.

    Args:
        frame: The table; cells are shown with ``str`` (NaN as empty).

    Returns:
        The Markdown lines, without a trailing newline.
    """
    columns = [str(c) for c in frame.columns]
    rows = [[_cell(value) for value in row] for row in frame.itertuples(index=False)]
    right = [
        all(_looks_numeric(row[i]) for row in rows if row[i]) and any(row[i] for row in rows)
        for i in range(len(columns))
    ]
    lines = [
        "| " + " | ".join(_escape(c) for c in columns) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(mean: Any, std: Any, metric: str = "") -> str:
    """Formats ``mean ± std``: 3 decimals for fractions (accuracy), else 4 and 2 digits."""
    if _missing(mean):
        return ""
    fraction = any(part in metric for part in _FRACTIONS)
    text = format(float(mean), ".3f" if fraction else ".4g")
    if _missing(std):
        return text
    return f"{text} ± {format(float(std), '.3f' if fraction else '.2g')}"


def summary_markdown(
    summary: pd.DataFrame,
    *,
    search_name: str,
    rerun_command: str,
    definition_text: str | None = None,
    objective: str | None = None,
    figures: Sequence[str] = (),
    answer: str | None = None,
    assessment: Assessment | None = None,
    comparison: pd.DataFrame | None = None,
) -> str:
    """Writes the page of one search: the answer, best configuration, ranked table, how to rerun.

    Args:
        summary: A table from ``summary_frame``.
        search_name: The search, e.g. ``moons_l2``.
        rerun_command: The shell command that reruns it.
        definition_text: The search definition (TOML), shown verbatim.
        objective: The ranking metric; defaults to ``summary.attrs``.
        figures: Image files beside the page to show, e.g. ``accuracy_vs_strength.png``.
        answer: The one-line answer (:func:`regsearch.evaluation.compare.answer_line`), shown first.
        assessment: The selected configuration's selection and test scores.
        comparison: Paired differences to the baseline (:func:`regsearch.evaluation.compare.paired_differences`).

    Returns:
        The Markdown text, ending in a newline.
    """
    objective = objective or summary.attrs.get("objective", "test_accuracy")
    direction = summary.attrs.get("direction", "max")
    better = "higher" if direction == "max" else "lower"
    parts = [f"# Search `{search_name}`", ""]
    if answer:
        parts += [f"**{answer}**", ""]
    try:
        best = best_configuration(summary, objective)
    except SearchFailedError:
        best = None
    if best is None:
        parts += [
            "**No configuration has a result: every run failed.** "
            "The reasons are in the `reason` column of `trials.csv`.",
            "",
        ]
    else:
        parts += [
            "## Best configuration",
            "",
            f"**{format_params(best['params'])}**",
            "",
            f"Rank 1 of {len(summary)} configurations by mean {_words(objective)} "
            f"({better} is better), phase `{best['phase']}`, trial `{best['trial_id']}`, "
            f"{best['n_runs']} run(s), {best['n_failed']} failed.",
            "",
            markdown_table(_best_table(best, objective)),
            "",
        ]
    if assessment is not None:
        parts += _assessment_section(assessment)
    if comparison is not None and not comparison.empty:
        parts += _comparison_section(comparison, summary, objective)
    if figures:
        parts += ["## Plots", ""]
        parts += [f"![{_words(name.rsplit('.', 1)[0])}]({name})" for name in figures]
        parts += [""]
    parts += [
        "## All configurations, ranked",
        "",
        f"Mean ± standard deviation over repeated runs (population std, 0 for one run); "
        + ("" if assessment is None or assessment.protocol == "tutorial" else
           "the test rows' scores are left out here: they assess the selected configuration only (above); ")
        + f"ranked by mean {_words(objective)} (ties: lower {_words(tie_breaker_of(objective) or objective)} first), "
        "configurations without a result last."
        + (f" Every configuration has {_fixed_settings(summary)}." if _fixed_settings(summary) else ""),
        "",
        markdown_table(_ranked_table(summary, objective, show_test=assessment is None
                                     or assessment.protocol == "tutorial")),
        "",
    ]
    if definition_text:
        parts += ["## Search definition", "", "```toml", definition_text.rstrip("\n"), "```", ""]
    parts += ["## Rerun", "", "```sh", rerun_command, "```", ""]
    return "\n".join(parts)


def index_markdown(rows: Sequence[Mapping[str, Any]], *, title: str = "Results") -> str:
    """Writes results/README.md: one row per search with its best configuration.

    Args:
        rows: One mapping per search: ``search`` (name), ``best`` (the dict
            from ``best_configuration``, or None if every run failed) and
            optionally ``link`` (path of the search's summary.md, relative to
            the index), ``description``, ``protocol`` and ``answer`` (one line each), ``claim`` (what the
            search's article says) with ``verdict`` (:func:`regsearch.evaluation.compare.verdict`).
        title: The page title.

    Returns:
        The Markdown text, ending in a newline.
    """
    table_rows = []
    for row in rows:
        best = row.get("best")
        search = f"[{row['search']}]({row['link']})" if row.get("link") else str(row["search"])
        cells = {"search": search}
        if row.get("description") is not None:
            cells["what"] = str(row["description"])
        if row.get("protocol"):
            cells["protocol"] = PROTOCOL_NAMES.get(row["protocol"], row["protocol"])
        if row.get("answer"):
            cells["answer"] = str(row["answer"])
        if row.get("claim"):
            cells["the article"] = f"{row['claim']} {_CLAIM_CHECK.get(row.get('verdict'), '')}".strip()
        if best is None:
            cells.update(
                {
                    "best configuration": "every run failed",
                    "test accuracy": "",
                    "test loss": "",
                    "runs": "",
                }
            )
        else:
            cells.update(
                {
                    "best configuration": format_params(best.get("params", {})),
                    "test accuracy": mean_std(
                        best.get("mean_test_accuracy"), best.get("std_test_accuracy"), "accuracy"
                    ),
                    "test loss": mean_std(
                        best.get("mean_test_loss"), best.get("std_test_loss"), "loss"
                    ),
                    "runs": str(best.get("n_runs", "")),
                }
            )
        table_rows.append(cells)
    parts = [
        f"# {title}",
        "",
        "One row per search: the best configuration and its test accuracy "
        "(mean ± standard deviation over repeated runs). "
        "Rerun a search with `python -m regsearch <search>`.",
        "",
    ]
    if table_rows:
        table = pd.DataFrame(table_rows).fillna("")
        parts += [markdown_table(_drop_empty(table)), ""]
    else:
        parts += ["No search has results yet.", ""]
    return "\n".join(parts)


_PROTOCOL_TEXT = {
    "holdout": "Selected by the validation score on a held-out split of the training rows; the test rows were "
               "never used to train or to choose, only to score the result.",
    "kfold": "Selected by the mean cross-validation score over folds and seeds; the selected configuration and the "
             "baseline were then retrained on all training rows (for the epochs their folds found best) and scored "
             "once on the test rows.",
    "tutorial": "Selection saw the test set (the articles' protocol: the test rows are the validation data), so the "
                "test score of the selected configuration is an optimistic estimate.",
}


#: How the index names a protocol: the tutorial's selection saw the test rows.
PROTOCOL_NAMES = {"tutorial": "tutorial (selected on the test rows: optimistic)", "holdout": "holdout",
                  "kfold": "k-fold cross-validation"}

#: What a search's answer says of its article's claim that the technique helps, by verdict.
_CLAIM_CHECK = {
    "beats": "Supported: see the answer.",
    "indistinguishable": "**Not supported**: no configuration beats no regularization beyond seed noise.",
    "worse": "**Contradicted**: the selected configuration does worse than no regularization.",
    "baseline": "**Not supported**: no configuration did better than no regularization.",
}


def _assessment_section(assessment: Assessment) -> list[str]:
    """Selection apart from assessment: what chose, what the test rows say, and the difference."""
    rows = [
        (f"selection: {_words(assessment.selection_metric)}", mean_std(*assessment.selection,
                                                                      assessment.selection_metric)),
        (f"assessment: {_words(assessment.metric)}", mean_std(*assessment.test, assessment.metric)),
        (f"baseline (no regularization): {_words(assessment.metric)}",
         mean_std(assessment.baseline_test, None, assessment.metric)),
    ]
    if not math.isnan(assessment.optimism) and assessment.protocol != "tutorial":
        rows.append(("optimism of selection (selection - test)", f"{assessment.optimism:+.3f}"))
    table = pd.DataFrame([r for r in rows if r[1]], columns=["", "mean ± std"])
    return ["## Selection and assessment", "", _PROTOCOL_TEXT[assessment.protocol], "",
            markdown_table(table), ""]


def _comparison_section(comparison: pd.DataFrame, summary: pd.DataFrame, objective: str) -> list[str]:
    """Each configuration against no regularization, in the order of the ranking."""
    order = {(row["phase"], row["trial_id"]): row["rank"] for _, row in summary.iterrows()}
    table = comparison.assign(rank=[order.get((p, t)) for p, t in zip(comparison["phase"], comparison["trial_id"])])
    table = table[~table["baseline"].astype(bool)].sort_values("rank", kind="stable")
    varying = _varying(summary)
    shown = pd.DataFrame({"rank": table["rank"]})
    for column in varying:
        shown[column.removeprefix(PARAM_PREFIX)] = [format_value(v) for v in table[column]]
    shown["difference"] = [f"{v:+.4f}" if not _missing(v) else "" for v in table["difference"]]
    shown["95% CI"] = ["" if _missing(lo) else f"{lo:+.4f} to {hi:+.4f}" for lo, hi in
                       zip(table["ci_low"], table["ci_high"])]
    shown["seeds"] = table["n_pairs"].astype(int).astype(str)
    shown["beyond seed noise"] = ["yes" if (not _missing(lo) and (lo > 0 or hi < 0)) else "no"
                                  for lo, hi in zip(table["ci_low"], table["ci_high"])]
    return ["## Compared with no regularization", "",
            f"Each configuration's {_words(objective)} minus the baseline's (same model without penalty, constraint "
            "or noise), paired by seed (folds averaged within a seed first); 95% confidence interval from Student's "
            "t over the seeds' differences, each on its own: with many configurations, some cross zero by chance "
            "(no correction for multiple comparisons).", "", markdown_table(shown.reset_index(drop=True)), ""]


def _best_table(best: Mapping[str, Any], objective: str) -> pd.DataFrame:
    metrics = [objective] + [m for m in SHOWN_METRICS if m != objective]
    rows = [
        (_words(metric), mean_std(best.get(f"mean_{metric}"), best.get(f"std_{metric}"), metric))
        for metric in metrics
    ]
    return pd.DataFrame([r for r in rows if r[1]], columns=["metric", "mean ± std"])


def _ranked_table(summary: pd.DataFrame, objective: str, show_test: bool = True) -> pd.DataFrame:
    """The ranked configurations; without ``show_test`` the test rows' scores stay out (they assess only the chosen one)."""
    table = pd.DataFrame(
        {"rank": summary["rank"], "phase": summary["phase"], "trial": summary["trial_id"]}
    )
    # The settings every configuration shares are stated once above the table.
    for column in _varying(summary):
        table[column.removeprefix(PARAM_PREFIX)] = [format_value(v) for v in summary[column]]
    metrics = [objective] + [m for m in SHOWN_METRICS if m != objective]
    if not show_test:
        metrics = [m for m in metrics if not m.startswith("test_") and m != "gap"]
    for metric in metrics:
        mean, std = f"mean_{metric}", f"std_{metric}"
        if mean in summary.columns and summary[mean].notna().any():
            table[_words(metric)] = [
                mean_std(m, s, metric) for m, s in zip(summary[mean], summary[std])
            ]
    for column in COUNT_COLUMNS:
        table[column.removeprefix("n_")] = summary[column].astype(int)
    return table


def _varying(summary: pd.DataFrame) -> list[str]:
    """The ``param_*`` columns that differ between configurations (all of them for one row)."""
    columns = param_columns(summary)
    if len(summary) < 2:
        return columns
    return [c for c in columns if summary[c].astype(str).nunique() > 1]


def _fixed_settings(summary: pd.DataFrame) -> str:
    fixed = [c for c in param_columns(summary) if c not in _varying(summary)]
    values = {c: summary[c].iloc[0] for c in fixed}
    return format_params(values) if values else ""


def _drop_empty(table: pd.DataFrame) -> pd.DataFrame:
    return table[[c for c in table.columns if (table[c].astype(str) != "").any()]]


_NAMES = {"gap": "gap (train - test accuracy)", "seconds": "seconds per run"}


def _words(name: str) -> str:
    return _NAMES.get(name, name.replace("_", " "))


def _cell(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _looks_numeric(text: str) -> bool:
    head = text.split(" ± ")[0]
    try:
        float(head)
    except ValueError:
        return False
    return True


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
