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
from regsearch.evaluation.compare import Assessment, HowSure
from regsearch.evaluation.nested import NestedAssessment
from regsearch.report.nested import NESTED_HEADING, nested_choice_table, nested_fold_table, nested_sentence
from regsearch.report.sections import (
    PROTOCOL_TEXT,
    PROVENANCE_NOTE,
    WARNINGS_HEADING,
    assessment_note,
    assessment_table,
    best_table,
    comparison_note,
    comparison_table,
    fixed_settings,
    how_sure_sentences,
    index_table,
    mean_std,
    provenance_table,
    ranked_table,
    words,
)
from regsearch.report.tables import best_configuration, format_params, tie_breaker_of

__all__ = ["index_markdown", "markdown_table", "mean_std", "summary_markdown"]

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
    warnings: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    how_sure: HowSure | None = None,
    nested: NestedAssessment | None = None,
    split_per_seed: bool | None = None,
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
        warnings: Reasons not to trust the answer (:func:`regsearch.evaluation.caveats.caveats`), under it.
        provenance: What produced the numbers (:func:`regsearch.provenance.collect`), above the rerun command.
        how_sure: What the search could detect (:func:`regsearch.evaluation.compare.how_sure`), under the comparison.
        nested: A nested search's outer folds (:func:`regsearch.evaluation.nested.assess_nested`), after the assessment.
        split_per_seed: Whether each seed drew its own validation split or folds (None: no split to draw).

    Returns:
        The Markdown text, ending in a newline.
    """
    objective = objective or summary.attrs.get("objective", "test_accuracy")
    direction = summary.attrs.get("direction", "max")
    better = "higher" if direction == "max" else "lower"
    parts = [f"# Search `{search_name}`", ""]
    if answer:
        parts += [f"**{answer}**", ""]
    if warnings:
        parts += [f"> **{WARNINGS_HEADING}**", *[f"> - {sentence}" for sentence in warnings], ""]
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
            f"Rank 1 of {len(summary)} configurations by mean {words(objective)} "
            f"({better} is better), phase `{best['phase']}`, trial `{best['trial_id']}`, "
            f"{best['n_runs']} run(s), {best['n_failed']} failed.",
            "",
            markdown_table(best_table(best, objective)),
            "",
        ]
    if assessment is not None:
        parts += _assessment_section(assessment)
    if nested is not None:
        parts += [f"## {NESTED_HEADING}", "", nested_sentence(nested), ""]
        if not nested.folds.empty:
            parts += [markdown_table(nested_fold_table(nested)), "", "How often each configuration was chosen:", "",
                      markdown_table(nested_choice_table(nested)), ""]
    if comparison is not None and not comparison.empty:
        parts += _comparison_section(comparison, summary, objective, split_per_seed)
    sure = how_sure_sentences(how_sure, objective)
    if sure:
        parts += ["## How sure, and how many seeds", "", " ".join(sure), ""]
    if figures:
        parts += ["## Plots", ""]
        parts += [f"![{words(name.rsplit('.', 1)[0])}]({name})" for name in figures]
        parts += [""]
    parts += [
        "## All configurations, ranked",
        "",
        "Mean ± standard deviation over repeated runs (population std, 0 for one run); "
        + ("" if assessment is None or assessment.protocol == "tutorial" else
           "the test rows' scores are left out here: they assess the selected configuration only (above); ")
        + f"ranked by mean {words(objective)} (ties: lower {words(tie_breaker_of(objective) or objective)} first), "
        "configurations without a result last."
        + (f" Every configuration has {fixed_settings(summary)}." if fixed_settings(summary) else ""),
        "",
        markdown_table(ranked_table(summary, objective, show_test=assessment is None
                                     or assessment.protocol == "tutorial")),
        "",
    ]
    if definition_text:
        parts += ["## Search definition", "", "```toml", definition_text.rstrip("\n"), "```", ""]
    if provenance:
        parts += ["## Provenance", "", PROVENANCE_NOTE, "", markdown_table(provenance_table(provenance)), ""]
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
    table = index_table(rows, strong=lambda text: f"**{text}**") if rows else pd.DataFrame()
    if not table.empty:
        table["search"] = [f"[{row['search']}]({row['link']})" if row.get("link") else str(row["search"])
                           for row in rows]
    parts = [
        f"# {title}",
        "",
        "One row per search: the best configuration and its test accuracy "
        "(mean ± standard deviation over repeated runs). "
        "Rerun a search with `python -m regsearch <search>`.",
        "",
    ]
    if not table.empty:
        parts += [markdown_table(table), ""]
    else:
        parts += ["No search has results yet.", ""]
    return "\n".join(parts)


def _assessment_section(assessment: Assessment) -> list[str]:
    note = assessment_note(assessment)
    return ["## Selection and assessment", "", PROTOCOL_TEXT[assessment.protocol], "",
            markdown_table(assessment_table(assessment)), "", *([note, ""] if note else [])]


def _comparison_section(comparison: pd.DataFrame, summary: pd.DataFrame, objective: str,
                        split_per_seed: bool | None) -> list[str]:
    return ["## Compared with no regularization", "", comparison_note(objective, comparison, split_per_seed), "",
            markdown_table(comparison_table(comparison, summary)), ""]


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
