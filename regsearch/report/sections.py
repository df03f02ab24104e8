"""The content of a search's page, apart from its format: tables of display text and the sentences around them.

``summary.md`` (:mod:`regsearch.report.markdown`) and ``report.html``
(:mod:`regsearch.report.html`) render the same sections; each function here
is pure and returns a table of strings (or a sentence) ready to render.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from regsearch.evaluation.compare import CORRECTIONS, METHODS, Assessment, HowSure
from regsearch.evaluation.intervals import DRAWS
from regsearch.report.tables import COUNT_COLUMNS, PARAM_PREFIX, format_params, format_value, param_columns

__all__ = [
    "CLAIM_CHECK",
    "PROTOCOL_NAMES",
    "PROTOCOL_TEXT",
    "PROVENANCE_NOTE",
    "SHOWN_METRICS",
    "WARNINGS_HEADING",
    "assessment_note",
    "assessment_table",
    "best_table",
    "comparison_note",
    "comparison_table",
    "fixed_settings",
    "how_sure_sentences",
    "index_table",
    "mean_std",
    "provenance_table",
    "ranked_table",
    "varying_params",
    "words",
]

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
#: Above the provenance table.
PROVENANCE_NOTE = ("What produced these numbers (also in provenance.json): another version or device may differ in "
                   "the last decimals. The command below reruns the search into this folder, resuming what finished.")
#: Above the warnings under the answer (:func:`regsearch.evaluation.caveats.caveats`).
WARNINGS_HEADING = "Read the answer with care:"

PROTOCOL_TEXT = {
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
                  "kfold": "k-fold cross-validation", "nested": "nested cross-validation"}

#: What a search's answer says of its article's claim that the technique helps, by verdict.
#: Each is (the verdict, which a page may emphasize, or "" for none; the explanation).
CLAIM_CHECK = {
    "beats": ("", "Supported: see the answer."),
    "indistinguishable": ("Not supported", ": no configuration beats no regularization beyond noise (test rows and "
                                           "seeds, corrected for the configurations compared)."),
    "worse": ("Contradicted", ": the selected configuration does worse than no regularization."),
    "baseline": ("Not supported", ": no configuration did better than no regularization."),
}

_NAMES = {"gap": "gap (train - test accuracy)", "seconds": "seconds per run"}


def words(name: str) -> str:
    """A column or metric name as words: ``test_accuracy`` -> ``test accuracy``."""
    return _NAMES.get(name, name.replace("_", " "))


def mean_std(mean: Any, std: Any, metric: str = "") -> str:
    """Formats ``mean ± std``: 3 decimals for fractions (accuracy), else 4 and 2 digits."""
    if _missing(mean):
        return ""
    fraction = any(part in metric for part in _FRACTIONS)
    text = format(float(mean), ".3f" if fraction else ".4g")
    if _missing(std):
        return text
    return f"{text} ± {format(float(std), '.3f' if fraction else '.2g')}"


def varying_params(summary: pd.DataFrame) -> list[str]:
    """The ``param_*`` columns that differ between configurations (all of them for one row)."""
    columns = param_columns(summary)
    if len(summary) < 2:
        return columns
    return [c for c in columns if summary[c].astype(str).nunique() > 1]


def fixed_settings(summary: pd.DataFrame) -> str:
    """The settings every configuration shares, as ``name=value, ...`` ("" if none)."""
    fixed = [c for c in param_columns(summary) if c not in varying_params(summary)]
    values = {c: summary[c].iloc[0] for c in fixed}
    return format_params(values) if values else ""


def best_table(best: Mapping[str, Any], objective: str) -> pd.DataFrame:
    """The selected configuration's metrics: one row per metric, ``mean ± std``."""
    metrics = [objective] + [m for m in SHOWN_METRICS if m != objective]
    rows = [
        (words(metric), mean_std(best.get(f"mean_{metric}"), best.get(f"std_{metric}"), metric))
        for metric in metrics
    ]
    return pd.DataFrame([r for r in rows if r[1]], columns=["metric", "mean ± std"])


def ranked_table(summary: pd.DataFrame, objective: str, show_test: bool = True) -> pd.DataFrame:
    """The ranked configurations; without ``show_test`` the test rows' scores stay out (they assess only the chosen one)."""
    table = pd.DataFrame(
        {"rank": summary["rank"], "phase": summary["phase"], "trial": summary["trial_id"]}
    )
    # The settings every configuration shares are stated once above the table.
    for column in varying_params(summary):
        table[column.removeprefix(PARAM_PREFIX)] = [format_value(v) for v in summary[column]]
    metrics = [objective] + [m for m in SHOWN_METRICS if m != objective]
    if not show_test:
        metrics = [m for m in metrics if not m.startswith("test_") and m != "gap"]
    for metric in metrics:
        mean, std = f"mean_{metric}", f"std_{metric}"
        if mean in summary.columns and summary[mean].notna().any():
            table[words(metric)] = [
                mean_std(m, s, metric) for m, s in zip(summary[mean], summary[std])
            ]
    for column in COUNT_COLUMNS:
        table[column.removeprefix("n_")] = summary[column].astype(int)
    return table


def _interval(low: float, high: float) -> str:
    return "" if _missing(low) else f"{low:+.4f} to {high:+.4f}"


def assessment_table(assessment: Assessment) -> pd.DataFrame:
    """Selection apart from assessment: what chose, what the test rows say, the difference and the optimism."""
    metric = assessment.metric
    rows = [
        (f"selection: {words(assessment.selection_metric)}", mean_std(*assessment.selection,
                                                                     assessment.selection_metric)),
        (f"assessment: {words(metric)}", mean_std(*assessment.test, metric)),
        (f"baseline (no regularization): {words(metric)}",
         mean_std(assessment.baseline_test, None, metric)),
    ]
    d = assessment.difference
    if not assessment.is_baseline and d.pairs >= 1 and not _missing(d.mean):
        family = "family-wise" if assessment.comparisons > 1 else "one comparison"
        rows.append((f"difference to the baseline, {words(metric)} (95% CI, {family})",
                     f"{d.mean:+.4f} ({_interval(d.low, d.high) or 'no interval'})"))
        if assessment.uncorrected is not None and assessment.comparisons > 1:
            u = assessment.uncorrected
            rows.append(("the same, 95% CI on its own (uncorrected)", _interval(u.low, u.high)))
    if assessment.protocol == "tutorial":
        rows.append(("optimism of selection (selection - test)",
                     "not measurable: selection saw the test rows, no rows are left that it did not see"))
    elif not math.isnan(assessment.optimism):
        o = assessment.optimism_seeds
        interval = "" if o is None or _missing(o.low) else f" (95% CI over seeds {_interval(o.low, o.high)})"
        rows.append(("optimism of selection (selection - test)", f"{assessment.optimism:+.4f}{interval}"))
    return pd.DataFrame([r for r in rows if r[1]], columns=["", "mean ± std"])


def assessment_note(assessment: Assessment) -> str:
    """The sentence under the assessment table: how its interval was made and what it was corrected over."""
    if assessment.is_baseline or assessment.difference.pairs < 2:
        return ""
    method = METHODS.get(assessment.interval, assessment.interval)
    if assessment.interval == "rows and seeds":
        method += f" ({DRAWS} draws)"
    if assessment.comparisons > 1:
        correction = (f"corrected for the {assessment.comparisons} configurations compared with the baseline on the "
                      f"test rows: {CORRECTIONS.get(assessment.interval, '')}")
    else:
        correction = ("one comparison on the test rows (the configuration was chosen without them), so no "
                      "correction is needed")
    return (f"The difference's interval comes from {method}; {correction}. The answer above uses this interval, "
            "built on the test rows, not on the selection score.")


def comparison_note(objective: str, comparison: pd.DataFrame | None = None, split_per_seed: bool | None = None) -> str:
    """The sentence above the comparison table: what the differences and intervals are, and the correction.

    ``split_per_seed``: whether each seed drew its own validation split or folds (None: the protocol has none
    to draw, or it is not known); the note says what the intervals cover accordingly.
    """
    head = (f"Each configuration's {words(objective)} minus the baseline's (same model without penalty, constraint "
            "or noise), paired by seed (folds averaged within a seed first)")
    if comparison is not None and "baseline" in comparison and comparison["baseline"].astype(bool).all():
        return ("The search holds no configuration but the baseline (no regularization): there is nothing to "
                "compare with it, and no correction.")
    interval = None if comparison is None or "interval" not in comparison else comparison["interval"].dropna()
    if interval is None or interval.empty:
        return head + "; no interval could be computed (every configuration needs two paired seeds)."
    method = str(interval.iloc[0])
    count = int(pd.to_numeric(comparison["comparisons"], errors="coerce").max())
    if method == "rows and seeds":
        how = (f", and by row: 95% intervals from a paired bootstrap over the scored rows and the seeds ({DRAWS} "
               "draws), so they cover new rows as well as new seeds.")
    else:
        how = (". These runs recorded no per-row outcomes (they were saved before regsearch kept them): 95% "
               "intervals from Student's t over the seeds only, which leaves out the rows' own variance "
               "(a difference the same on every seed gets a zero-width interval).")
    correction = (f" \"Beyond noise\" uses the family-wise interval, corrected for the {count} configurations compared "
                  f"with the baseline ({CORRECTIONS.get(method, method)}): all of them hold their true differences "
                  "together with 95% probability. The uncorrected interval, each on its own, is beside it.")
    return head + how + correction + SPLIT_NOTES.get(split_per_seed, "")


#: What the intervals cover of the validation split, by ``split_per_seed``.
SPLIT_NOTES = {
    True: " Each seed drew its own validation split or folds (split_per_seed), so the intervals cover that choice "
          "as well.",
    False: " Every seed used the same validation split or folds: the intervals leave out the variance of that "
           "choice (split_per_seed = true draws them per seed).",
}


def comparison_table(comparison: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Each configuration against no regularization, in the order of the ranking."""
    order = {(row["phase"], row["trial_id"]): row["rank"] for _, row in summary.iterrows()}
    table = comparison.assign(rank=[order.get((p, t)) for p, t in zip(comparison["phase"], comparison["trial_id"])])
    table = table[~table["baseline"].astype(bool)].sort_values("rank", kind="stable")
    shown = pd.DataFrame({"rank": table["rank"]})
    for column in varying_params(summary):
        shown[column.removeprefix(PARAM_PREFIX)] = [format_value(v) for v in table[column]]
    shown["difference"] = [f"{v:+.4f}" if not _missing(v) else "" for v in table["difference"]]
    corrected = "ci_low_corrected" in table
    low, high = (("ci_low_corrected", "ci_high_corrected") if corrected else ("ci_low", "ci_high"))
    shown["95% CI (family-wise)" if corrected else "95% CI"] = [_interval(lo, hi) for lo, hi in
                                                                 zip(table[low], table[high])]
    if corrected:
        shown["95% CI (alone)"] = [_interval(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])]
    shown["seeds"] = table["n_pairs"].astype(int).astype(str)
    shown["beyond noise"] = ["yes" if (not _missing(lo) and (lo > 0 or hi < 0)) else "no"
                             for lo, hi in zip(table[low], table[high])]
    return shown.reset_index(drop=True)


def how_sure_sentences(how: HowSure | None, metric: str) -> list[str]:
    """How sure the search could be, and how many seeds a difference needs
    (:func:`regsearch.evaluation.compare.how_sure`)."""
    if how is None:
        return []
    name = words(metric)
    share = (f"alpha 0.05 two-sided, {how.alpha:.2g} per comparison for the {how.comparisons} compared"
             if how.comparisons > 1 else "alpha 0.05 two-sided")
    if how.spread == 0:
        return ["Every configuration differs from the baseline by the same amount on every seed: more seeds add "
                "nothing here, and the test rows' own variance is all that the intervals carry; more test rows are "
                "what shrinks it."]
    sentences = [f"The seeds' paired differences spread by {how.spread:.4f} {name} (standard deviation, pooled over "
                 f"the configurations whose difference varies between seeds). With {how.seeds} seeds a paired t-test "
                 f"detects, with 80% power ({share}), a difference of {how.detectable:.4f} or more; smaller ones may "
                 "be missed."]
    if how.seeds_for_difference is not None:
        seeds = how.seeds_for_difference
        count = f"{seeds} seeds" if seeds <= 100_000 else "more than 100,000 seeds"
        sentences.append(f"The selected configuration's difference ({how.difference:+.4f} {name}) would need "
                         f"{count} to be detected that way (the search's repeats).")
    sentences.append("More seeds shrink the seeds' share of the uncertainty only: the test rows' own variance stays, "
                     "and more test rows are what shrinks it.")
    return sentences


#: How provenance.json names each package on the page.
_PACKAGE_NAMES = {"regsearch": "regsearch", "keras": "Keras", "keras-tuner": "Keras Tuner", "tensorflow": "TensorFlow",
                  "jax": "JAX", "jaxlib": "jaxlib", "numpy": "NumPy", "python": "Python"}


def provenance_table(provenance: Mapping[str, Any]) -> pd.DataFrame:
    """What produced the numbers (:func:`regsearch.provenance.collect`): versions, backend, device, command, times."""
    versions = provenance.get("versions", {})
    rows = [
        ("versions", ", ".join(f"{_PACKAGE_NAMES.get(name, name)} {version}" for name, version in versions.items()
                               if version)),
        ("backend", str(provenance.get("backend", ""))),
        ("device", str(provenance.get("device", ""))),
        ("command", str(provenance.get("command", ""))),
        ("in", str(provenance.get("working_directory", ""))),
        ("started (UTC)", str(provenance.get("started", ""))),
        ("wall time", f"{provenance['wall_seconds']:.1f} s" if "wall_seconds" in provenance else ""),
    ]
    return pd.DataFrame([r for r in rows if r[1]], columns=["", "value"])


def index_table(rows: Sequence[Mapping[str, Any]], strong: Callable[[str], str] = str) -> pd.DataFrame:
    """The results index: one row per search, its answer and best configuration.

    Args:
        rows: One mapping per search: ``search`` (name), ``best`` (the dict
            from ``best_configuration``, or None if every run failed) and
            optionally a link (under the key ``link``), ``description``, ``protocol`` and ``answer``
            (one line each), ``claim`` (what the search's article says) with ``verdict``
            (:func:`regsearch.evaluation.compare.verdict`).
        strong: How the page emphasizes a verdict that goes against the article (Markdown: ``**...**``).

    Returns:
        A table of strings; columns empty in every row are left out. The ``search``
        column holds the bare name: the renderer makes it a link (each row's ``link``).
    """
    table_rows = []
    for row in rows:
        best = row.get("best")
        cells = {"search": str(row["search"])}
        if row.get("description") is not None:
            cells["what"] = str(row["description"])
        if row.get("protocol"):
            cells["protocol"] = PROTOCOL_NAMES.get(row["protocol"], row["protocol"])
        if row.get("answer"):
            cells["answer"] = str(row["answer"])
        if row.get("claim"):
            verdict, explanation = CLAIM_CHECK.get(row.get("verdict"), ("", ""))
            cells["the article"] = f"{row['claim']} {strong(verdict) if verdict else ''}{explanation}".strip()
        if best is None:
            cells.update({"best configuration": "every run failed", "test accuracy": "", "test loss": "",
                          "runs": ""})
        else:
            cells.update({
                "best configuration": format_params(best.get("params", {})),
                "test accuracy": mean_std(best.get("mean_test_accuracy"), best.get("std_test_accuracy"), "accuracy"),
                "test loss": mean_std(best.get("mean_test_loss"), best.get("std_test_loss"), "loss"),
                "runs": str(best.get("n_runs", "")),
            })
        table_rows.append(cells)
    table = pd.DataFrame(table_rows).fillna("")
    return table[[c for c in table.columns if (table[c].astype(str) != "").any()]]


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False
