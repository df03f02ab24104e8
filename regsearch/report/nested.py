"""The page's section on a nested search: the procedure's expected score, its choices, its optimism.

Pure functions from :class:`regsearch.evaluation.nested.NestedAssessment` to
a sentence and tables of display text, rendered alike by ``summary.md`` and
``report.html``.
"""

from __future__ import annotations

import math

import pandas as pd

from regsearch.evaluation.nested import NestedAssessment
from regsearch.report.sections import mean_std, words

__all__ = ["NESTED_HEADING", "nested_choice_table", "nested_fold_table", "nested_sentence"]

NESTED_HEADING = "Nested cross-validation: the search procedure on rows it never saw"


def nested_sentence(assessment: NestedAssessment) -> str:
    """What the outer folds say, in plain words: the expected score with its spread, the baseline's, the optimism."""
    folds = len(assessment.folds)
    if not folds:
        return "No outer fold has a result: every run of the outer folds' searches failed."
    metric = words(assessment.metric.removeprefix("test_"))
    mean, std, low, high = assessment.spread("outer_score")
    parts = [f"Each of {folds} outer folds ran the whole search (every phase, on inner folds of its own training "
             f"rows), retrained its choice on those rows and scored it on the outer fold's rows, which the search "
             f"never saw. The search procedure's expected {metric} is {_value(mean, std, metric)} (standard "
             f"deviation over outer folds; from {low:.3f} to {high:.3f})."]
    base, base_std, _, _ = assessment.spread("baseline_score")
    if not math.isnan(base):
        difference, difference_std, _, _ = assessment.spread("difference")
        parts.append(f"No regularization, retrained the same way, scores {_value(base, base_std, metric)}: a "
                     f"difference of {difference:+.3f}" + ("" if math.isnan(difference_std) else
                                                            f" ± {difference_std:.3f}") + ".")
    inner, _, _, _ = assessment.spread("inner")
    optimism, optimism_std, _, _ = assessment.spread("optimism")
    parts.append(f"The choices scored {inner:.3f} {words(assessment.objective)} in the inner folds that chose them: "
                 f"an optimism of {optimism:+.3f}" + ("" if math.isnan(optimism_std) else f" ± {optimism_std:.3f}")
                 + " (inner score minus outer score; positive: selection flattered its choice).")
    top = assessment.choices.iloc[0]
    parts.append(f"The same configuration was chosen in every outer fold ({top['configuration']})."
                 if int(top["chosen"]) == folds else
                 f"The outer folds chose {len(assessment.choices)} different configurations; the most chosen, "
                 f"{top['configuration']}, in {int(top['chosen'])} of {folds}.")
    return " ".join(parts)


def nested_fold_table(assessment: NestedAssessment) -> pd.DataFrame:
    """One row per outer fold: its choice, the inner score that chose it, its outer score and the baseline's."""
    folds = assessment.folds
    metric = assessment.metric.removeprefix("test_")  # the outer rows' score: "test_*" in the runs
    return pd.DataFrame({
        "outer fold": folds["outer"].astype(int).astype(str),
        "chosen": folds["configuration"].astype(str),
        f"inner {words(assessment.objective)}": [_number(v) for v in folds["inner"]],
        f"outer {words(metric)}": [_number(v) for v in folds["outer_score"]],
        f"no regularization: outer {words(metric)}": [_number(v) for v in folds["baseline_score"]],
        "difference": [_number(v, signed=True) for v in folds["difference"]],
        "optimism": [_number(v, signed=True) for v in folds["optimism"]],
    })


def nested_choice_table(assessment: NestedAssessment) -> pd.DataFrame:
    """How often each configuration was chosen, most chosen first."""
    choices = assessment.choices
    total = len(assessment.folds)
    return pd.DataFrame({
        "configuration": choices["configuration"].astype(str),
        "chosen": [f"{int(n)} of {total}" for n in choices["chosen"]],
        "share": [f"{share:.0%}" for share in choices["share"]],
    })


def _value(mean: float, std: float, metric: str) -> str:
    return mean_std(mean, None if math.isnan(std) else std, metric)


def _number(value: float, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"
