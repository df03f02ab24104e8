"""HTML pages: ``report.html`` per search and ``index.html`` over a results folder.

Each page is self-contained: the plots are embedded as PNG data, the style and
the few lines of script that sort a table by a clicked column header are
inline, and nothing is fetched from a network. The pages are rendered with
Jinja2 templates (``templates/``), autoescaped; the content comes from
:mod:`regsearch.report.sections`, as ``summary.md``'s does.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
import pandas as pd

from regsearch.errors import SearchFailedError
from regsearch.evaluation.compare import Assessment, HowSure
from regsearch.evaluation.nested import NestedAssessment
from regsearch.report.nested import NESTED_HEADING, nested_choice_table, nested_fold_table, nested_sentence
from regsearch.report.sections import (
    PROTOCOL_NAMES,
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
    provenance_table,
    ranked_table,
    words,
)
from regsearch.report.tables import best_configuration, format_params, tie_breaker_of

__all__ = ["PlotImage", "index_html", "report_html"]


@dataclasses.dataclass(frozen=True)
class PlotImage:
    """A plot to embed: its file name, a caption, and the PNG bytes."""

    name: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("regsearch.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def report_html(
    summary: pd.DataFrame,
    *,
    search_name: str,
    rerun_command: str,
    objective: str,
    description: str | None = None,
    answer: str | None = None,
    assessment: Assessment | None = None,
    comparison: pd.DataFrame | None = None,
    warnings: Sequence[str] = (),
    figures: Sequence[PlotImage] = (),
    definition_text: str | None = None,
    files: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    how_sure: HowSure | None = None,
    nested: NestedAssessment | None = None,
    split_per_seed: bool | None = None,
) -> str:
    """The page of one search: the answer first, then the plots, the tables, the definition and the rerun command.

    Args:
        summary: A table from ``summary_frame`` (its ``attrs`` carry the direction).
        search_name: The search, e.g. ``moons_l2``.
        rerun_command: The shell command that reruns it.
        objective: The ranking metric.
        description: One line on what the search asks.
        answer: The one-line answer (:func:`regsearch.evaluation.compare.answer_line`).
        assessment: The selected configuration's selection and test scores.
        comparison: Paired differences to the baseline (:func:`regsearch.evaluation.compare.paired_differences`).
        warnings: Reasons not to trust the answer (:func:`regsearch.evaluation.caveats.caveats`), under it.
        figures: The plots, in the order shown.
        definition_text: The search definition (TOML), shown verbatim.
        files: Files beside the page to link (``trials.csv``, ...).
        provenance: What produced the numbers (:func:`regsearch.provenance.collect`), above the rerun command.
        how_sure: What the search could detect (:func:`regsearch.evaluation.compare.how_sure`), under the comparison.
        nested: A nested search's outer folds (:func:`regsearch.evaluation.nested.assess_nested`), after the assessment.
        split_per_seed: Whether each seed drew its own validation split or folds (None: no split to draw).

    Returns:
        The HTML text.
    """
    direction = summary.attrs.get("direction", "max")
    try:
        best = best_configuration(summary, objective)
    except SearchFailedError:
        best = None
    show_test = assessment is None or assessment.protocol == "tutorial"
    return _ENVIRONMENT.get_template("report.html").render(
        search_name=search_name,
        description=description,
        answer=answer,
        warnings=list(warnings),
        warnings_heading=WARNINGS_HEADING,
        best=None if best is None else {
            "params": format_params(best["params"]),
            "table": _rows(best_table(best, objective)),
            "phase": best["phase"], "trial_id": best["trial_id"], "n_runs": best["n_runs"],
            "n_failed": best["n_failed"],
        },
        n_configurations=len(summary),
        objective=words(objective),
        better="higher" if direction == "max" else "lower",
        tie_breaker=words(tie_breaker_of(objective) or objective),
        protocol=None if assessment is None else PROTOCOL_NAMES.get(assessment.protocol, assessment.protocol),
        protocol_text=None if assessment is None else PROTOCOL_TEXT[assessment.protocol],
        assessment=None if assessment is None else _rows(assessment_table(assessment)),
        comparison=None if comparison is None or comparison.empty else _rows(comparison_table(comparison, summary)),
        comparison_note=comparison_note(objective, comparison, split_per_seed),
        assessment_note=None if assessment is None else assessment_note(assessment),
        how_sure=how_sure_sentences(how_sure, objective),
        figures=figures,
        ranked=_rows(ranked_table(summary, objective, show_test=show_test)),
        test_left_out=not show_test,
        fixed=fixed_settings(summary),
        definition_text=definition_text,
        rerun_command=rerun_command,
        files=files,
        provenance=_rows(provenance_table(provenance)) if provenance else None,
        provenance_note=PROVENANCE_NOTE,
        nested=None if nested is None else {
            "heading": NESTED_HEADING, "sentence": nested_sentence(nested),
            "folds": None if nested.folds.empty else _rows(nested_fold_table(nested)),
            "choices": None if nested.folds.empty else _rows(nested_choice_table(nested)),
        },
    )


def index_html(rows: Sequence[Mapping[str, Any]], *, title: str = "regsearch results") -> str:
    """The index of a results folder: one row per search, linked to its page, with its one-line answer.

    Args:
        rows: As :func:`regsearch.report.sections.index_table` takes them; ``link`` is the page's path.
        title: The page title.
    """
    table = index_table(rows) if rows else pd.DataFrame()
    return _ENVIRONMENT.get_template("index.html").render(
        title=title, table=_rows(table) if not table.empty else None,
        links=[row.get("link") for row in rows])


def _rows(table: pd.DataFrame) -> dict[str, Any]:
    """A table as the templates take it: header and rows of strings; number columns flagged to align right."""
    header = [str(c) for c in table.columns]
    rows = [["" if pd.isna(v) else str(v) for v in row] for row in table.itertuples(index=False)]
    numeric = [all(_looks_numeric(row[i]) for row in rows if row[i]) and any(row[i] for row in rows)
               for i in range(len(header))]
    return {"header": header, "rows": rows, "numeric": numeric}


def _looks_numeric(text: str) -> bool:
    head = text.split(" ± ")[0].split(" to ")[0]
    try:
        float(head)
    except ValueError:
        return False
    return True
