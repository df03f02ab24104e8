"""Runs a search definition: data, HyperModel, the strategy's tuners, then the report.

Strategies, all on Keras Tuner's own tuners (see :mod:`regsearch.tuners`):

- ``grid``: one ``GridSearch`` over every declared combination;
- ``coarse_to_fine``: a ``GridSearch`` over the declared strengths (decades),
  then a second ``GridSearch`` on ``fine_points`` log-spaced strengths strictly
  between the best decade's neighbours; both phases land in one table;
- ``bayesian``: ``BayesianOptimization`` for ``max_trials`` trials;
- ``successive_halving``: every configuration of the grid in one population,
  the best ``1/factor`` kept at each rung (``min_epochs * factor**k`` epochs)
  and trained on, the others stopped there (:class:`regsearch.tuners.SuccessiveHalving`);
- ``hyperband``: Keras Tuner's brackets of successive halving, bracket ``b``
  a seeded sample of the grid starting at rung ``b`` (phases ``bracket0``, ...).

The ``[evaluation]`` protocol (:mod:`regsearch.evaluation`) says which rows
validate: a holdout split or the folds of the training rows (the tuners train
every seed on every fold), or the test rows (``tutorial``). Unless
``baseline = false``, a ``baseline`` phase trains the same model without
penalty, constraint or noise (when the space does not hold it already), and
``kfold`` ends with a ``refit`` of the chosen configuration and the baseline
on every training row, scored once on the test rows. ``nested`` runs that
whole ``kfold`` search in each outer fold, on the outer fold's training rows
only (its tuners in ``tuner/outer<k>/``, its refit scored on the outer
fold's rows), then once more on every training row; the outer folds' runs
come back in ``SearchResult.nested``.

The tuners' state lives in ``<results>/<name>/tuner/``: running the same
search again resumes it (finished trials are kept, not rerun). With a
``time_limit``, no trial (no population, with the population engine) starts
once the limit has passed and some run has completed; the phases after are not
started either, and the result says so (``SearchResult.stopped``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from regsearch import kt_internals
from regsearch.datasets import Split
from regsearch.definition import NOTHING, SearchDefinition
from regsearch.definition.schema import DEFAULT_REPEATS
from regsearch.definition.build import Bracket, brackets, make_folds
from regsearch.definition.plan import Plan, make_plan
from regsearch.errors import SearchFailedError, SettingError

__all__ = ["SearchResult", "run_search", "fine_strengths", "plan_size", "phases", "evaluation_options", "brackets",
           "Bracket"]

TUNER_FOLDER = "tuner"
SETTINGS_FILE = "settings.json"


@dataclasses.dataclass
class SearchResult:
    """What a finished search produced."""

    definition: SearchDefinition
    records: list[dict[str, Any]]
    histories: dict[str, dict[str, list[float]]]
    best_model: Any = None  # keras.Model of the best configuration's first run
    rungs: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every run's score at every rung
    baseline_model: Any = None  # keras.Model of the best configuration's baseline's first run (no regularization)
    split: Split | None = None  # the data the runs trained and were scored on
    stopped: str | None = None  # why the search ended before its plan did (the time limit), in one sentence
    #: Each run's outcome on each row that scored it (:mod:`regsearch.outcomes`), keyed by run.
    outcomes: dict = dataclasses.field(default_factory=dict)
    nested: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # ``nested``: every outer fold's runs


def fine_strengths(best: float, decades: list[float], points: int) -> list[float]:
    """``points`` log-spaced strengths strictly between the neighbours of ``best`` in ``decades``.

    At the end of the coarse grid, the missing neighbour is one decade further out.
    A point the coarse grid measured already (``best`` itself, for an odd
    ``points``) is left out: its runs are reused, not repeated.
    """
    ordered = sorted(decades)
    index = ordered.index(best)
    low = ordered[index - 1] if index > 0 else best / 10
    high = ordered[index + 1] if index + 1 < len(ordered) else best * 10
    inner = [float(f"{value:.3g}") for value in np.logspace(math.log10(low), math.log10(high), points + 2)[1:-1]]
    return [value for value in inner if not any(math.isclose(value, d, rel_tol=1e-9) for d in decades)]


def plan_size(hypermodel: Any) -> int:
    """The number of combinations a ``GridSearch`` over this HyperModel visits."""
    from regsearch.oracles import grid_configurations

    return len(grid_configurations(hypermodel))


def run_search(
    definition: SearchDefinition | Plan,
    results_dir: Path,
    *,
    overwrite: bool = False,
    on_phase: Callable[[str, int], None] | None = None,
    on_run: Callable[[dict], None] | None = None,
    tuner_options: dict[str, Any] | None = None,
    serve: Callable[[Any, str], None] | None = None,
    engine: str = "population",
) -> SearchResult:
    """Runs every phase of the definition's strategy; resumes what an earlier run left.

    Args:
        definition: A validated search definition, or its :class:`~regsearch.definition.plan.Plan`
            (the CLI's: its data and model file read once); given a definition, the plan is made here.
        results_dir: The search's own folder (``results/NAME``).
        overwrite: Forget the tuners' saved state and start afresh.
        on_phase: Called with the phase name and its planned number of trials.
        on_run: Called with each run's record as it finishes.
        tuner_options: Extra keyword arguments for the tuners (tests, distributed runs).
        serve: Called with each phase's tuner and phase name instead of ``tuner.search``
            (the distributed chief, which hands trials out to workers; see :mod:`regsearch.distributed`).
        engine: ``"population"`` (each phase's trials asked for in batches and trained
            together where the model allows) or ``"sequential"`` (one run at a time).

    Raises:
        SearchFailedError: Every run of the search failed.
    """
    plan = definition if isinstance(definition, Plan) else make_plan(definition)
    definition, split, hypermodel = plan.definition, plan.split, plan.hypermodel
    nested = definition.evaluation.kind == "nested"
    if nested and serve is not None:
        raise SettingError("evaluation.protocol", "a protocol other than 'nested' for a distributed search (its outer "
                           "folds run in one process)", "nested", str(definition.path))
    if nested and definition.time_limit is not None:
        raise SettingError("search.time_limit", "left out for protocol 'nested' (each outer fold runs the whole "
                           "search)", definition.time_limit, str(definition.path))
    evaluation_options(definition, split)  # refuses folds the data cannot honour, before anything is written
    if plan.brackets and engine != "population":
        raise SettingError("--engine", f"'population' for strategy '{definition.strategy}' (its rungs stop members "
                           "inside a population)", engine, where="command line")
    check_fits_in_memory(definition, hypermodel, split)
    tuner_dir = results_dir / TUNER_FOLDER
    if overwrite and tuner_dir.exists():
        shutil.rmtree(tuner_dir)
    check_same_settings(definition, tuner_dir)
    options = dict(on_phase=on_phase, on_run=on_run, tuner_options=tuner_options, serve=serve, engine=engine)
    if not nested:
        return _run_procedure(plan, tuner_dir, **options)
    return _run_nested(plan, tuner_dir, **options)


def _run_nested(plan: Plan, tuner_dir: Path, **options: Any) -> SearchResult:
    """``nested``: the whole ``kfold`` search on each outer fold's training rows, then on every training row.

    Outer fold ``k``'s search keeps its tuners in ``tuner/outer<k>/``; its
    inner folds cut only its training rows, its refit trains on them, and its
    "test" rows are the outer fold's own (:func:`regsearch.definition.build.outer_split`),
    so no outer row reaches its search. Its runs come back in
    ``SearchResult.nested`` with an ``outer`` column. The search on every
    training row (the ``kfold`` search itself, in ``tuner/``) gives the
    configuration to use and the page's answer on the test rows.
    """
    from regsearch.definition.build import make_outer_folds, outer_split

    definition = plan.definition
    inner = dataclasses.replace(plan, definition=dataclasses.replace(definition,
                                                                     evaluation=definition.evaluation.inner))
    on_phase = options.pop("on_phase")
    nested: list[dict[str, Any]] = []
    for outer in make_outer_folds(definition, plan.split):
        label = f"outer{outer.index}"

        def phase_label(phase: str, planned: int, label: str = label) -> None:
            if on_phase is not None:
                on_phase(f"{label} {phase}", planned)

        result = _run_procedure(dataclasses.replace(inner, split=outer_split(plan.split, outer)), tuner_dir / label,
                                on_phase=phase_label, keep_models=False, **options)
        nested.extend({**record, "outer": outer.index} for record in result.records)
    result = _run_procedure(inner, tuner_dir, on_phase=on_phase, **options)
    return dataclasses.replace(result, definition=definition, nested=nested)


def _run_procedure(plan: Plan, tuner_dir: Path, *, on_phase: Callable[[str, int], None] | None,
                   on_run: Callable[[dict], None] | None, tuner_options: dict[str, Any] | None,
                   serve: Callable[[Any, str], None] | None, engine: str, keep_models: bool = True) -> SearchResult:
    """One search's phases on ``plan``'s data, its tuners' state in ``tuner_dir``; ``kfold``'s refit at the end.

    ``keep_models=False`` (a nested search's outer folds) reloads no checkpoint: only the records are wanted.
    """
    definition, split, hypermodel = plan.definition, plan.split, plan.hypermodel
    evaluation = evaluation_options(definition, split)
    planned_brackets = list(plan.brackets)
    arguments = fit_arguments(definition, split)
    records: list[dict] = []
    histories: dict[str, dict[str, list[float]]] = {}
    rung_rows: list[dict] = []
    outcomes: dict = {}
    tuners = []
    planned_trials: dict[str, int] = {}
    if definition.time_limit is not None and serve is not None:
        raise SettingError("search.time_limit", "left out for a distributed search (the chief hands out every "
                           "trial)", definition.time_limit, str(definition.path))
    stop_at = None if definition.time_limit is None else time.monotonic() + definition.time_limit
    completed = 0  # runs completed, in this process or an earlier one: the search has an answer to give

    def counted(record: dict) -> None:
        nonlocal completed
        completed += record["status"] == "completed"
        if on_run is not None:
            on_run(record)

    def out_of_time() -> bool:
        return stop_at is not None and completed > 0 and time.monotonic() >= stop_at

    def search(phase: str, hm: Any, planned: int, **options: Any) -> list[dict]:
        tuner = _make_tuner(definition, hm, phase, tuner_dir, counted,
                            {"engine": engine, **evaluation, **(tuner_options or {}), **options,
                             **({} if stop_at is None else {"stop_when": out_of_time})})
        planned_trials[phase] = planned
        if on_phase is not None:
            on_phase(phase, planned)
        for record in _read_runs(tuner)[0]:  # a resumed search: count the runs an earlier process finished
            counted(record)
        if serve is None:
            tuner.search(split.x_train, split.y_train, verbose=0, **arguments)
        else:
            serve(tuner, phase)
        phase_records, phase_histories = _read_runs(tuner)
        from regsearch.tuners import read_outcomes

        outcomes.update(read_outcomes(tuner))
        if "rungs" in options:
            from regsearch.tuners import read_rungs

            rung_rows.extend(read_rungs(tuner))
        records.extend(phase_records)
        histories.update(phase_histories)
        tuners.append(tuner)
        return phase_records

    def stopped() -> bool:
        """A phase ended by the time limit: the phases after it are left for a rerun (the fine grid needs it whole)."""
        return any(tuner.stopped_early for tuner in tuners)

    if definition.strategy == "grid":
        search("grid", hypermodel, plan_size(hypermodel))
    elif definition.strategy == "bayesian":
        search("bayesian", hypermodel, definition.max_trials)
    elif planned_brackets:
        for bracket in planned_brackets:
            if not stopped():
                search(bracket.phase, hypermodel, len(bracket.configurations), configurations=bracket.configurations,
                       rungs=bracket.rungs)
    else:
        coarse = search("coarse", hypermodel, plan_size(hypermodel))
        _check_some_completed(definition, records, histories)
        fine = None if stopped() else fine_definition(definition, hypermodel, coarse)
        if fine is not None:
            fine_hypermodel = plan.hypermodel_for(fine)
            search("fine", fine_hypermodel, plan_size(fine_hypermodel))
    if "baseline" in phases(definition, hypermodel) and not stopped():
        baseline_hypermodel = plan.hypermodel_for(baseline_definition(definition))
        search("baseline", baseline_hypermodel, plan_size(baseline_hypermodel))

    _check_some_completed(definition, records, histories)
    best_model, baseline_model = _chosen_models(tuners, records, definition) if keep_models else (None, None)
    if stopped():
        note = _stopped_note(plan, records, planned_trials)
        return SearchResult(definition, records, histories, best_model, rung_rows, baseline_model, split, note,
                            outcomes)
    if definition.evaluation.kind == "kfold":
        refit_records, models = _refit(definition, hypermodel, tuners, records, split)
        refit_outcomes = refit_rows(refit_records, models, split)
        write_refit(tuner_dir, refit_records, refit_outcomes)
        records.extend(refit_records)
        outcomes.update(refit_outcomes)
        if keep_models:
            best_model = models[0] if models else None
            baseline_model = models[1] if len(models) > 1 else best_model
    return SearchResult(definition, records, histories, best_model, rung_rows, baseline_model, split,
                        outcomes=outcomes)


def _stopped_note(plan: Plan, records: list[dict], planned_trials: dict[str, int]) -> str:
    """The sentence a search stopped by its time limit ends its answer with: how far it got, how to go on.

    ``kfold``'s refit on every training row is left for the rerun as well: it
    assesses the configuration the whole search selects.
    """
    definition, hypermodel = plan.definition, plan.hypermodel
    exact = True
    planned = 0
    for phase in phases(definition, hypermodel):
        if phase in planned_trials:
            planned += planned_trials[phase]
        elif phase == "fine":  # its strengths come from the whole coarse grid
            exact = False
        elif phase == "baseline":
            planned += plan_size(plan.hypermodel_for(baseline_definition(definition)))
        else:
            planned += next(len(b.configurations) for b in plan.brackets if b.phase == phase)
    done = len({(record["phase"], record["trial_id"]) for record in records})
    return (f"Stopped by the time limit ({definition.time_limit:g} s) after {done} of {'' if exact else 'at least '}"
            f"{planned} configurations; rerun the same command to continue.")


def phases(definition: SearchDefinition, hypermodel: Any = None) -> list[str]:
    """The definition's phases in the order they run (the distributed chief serves them so).

    ``successive_halving`` and ``hyperband`` need the ``hypermodel``: their brackets depend on the grid's size.
    """
    if definition.strategy in ("successive_halving", "hyperband"):
        if hypermodel is None:
            raise ValueError(f"phases: strategy '{definition.strategy}' needs the hypermodel (its grid's size)")
        order = [bracket.phase for bracket in brackets(definition, hypermodel)]
    else:
        order = {"grid": ["grid"], "bayesian": ["bayesian"]}.get(definition.strategy, ["coarse", "fine"])
    if definition.evaluation.baseline and not _space_holds_baseline(definition):
        order.append("baseline")
    return order


def _space_holds_baseline(definition: SearchDefinition) -> bool:
    """True when a grid over the space visits the configuration without penalty, constraint or noise."""
    if definition.strategy in ("bayesian", "successive_halving", "hyperband"):
        return False  # it may never propose it, or stop it at a rung
    return all("none" in definition.space.get(piece, {}).get("kinds", ["none"])
               for piece in ("regularizer", "constraint", "dropout"))


def baseline_definition(definition: SearchDefinition) -> SearchDefinition:
    """The same search without penalty, constraint or noise: its one configuration (per other setting) is the baseline."""
    space = {key: value for key, value in definition.space.items() if key not in ("regularizer", "constraint",
                                                                                 "dropout", "placement")}
    return dataclasses.replace(definition, space=space)


def evaluation_options(definition: SearchDefinition, split: Split) -> dict[str, Any]:
    """The tuners' ``folds`` and ``test_data`` under the definition's protocol (none for ``tutorial``).

    Raises:
        SettingError: an ``[evaluation]`` setting the data cannot honour (named).
    """
    folds = make_folds(definition, split)
    if folds is None:
        return {}
    options: dict[str, Any] = {"folds": folds}
    if definition.evaluation.kind == "holdout":
        options["test_data"] = (split.x_test, split.y_test)
    return options


REFIT_FILE = "refit/runs.json"


def write_refit(tuner_dir: Path, records: list[dict], outcomes: dict | None = None) -> None:
    """Keeps the refit's records (and each row's outcome) beside the tuners' (``python -m regsearch report`` reads
    them back)."""
    import json

    from regsearch.atomic import write_bytes_atomic, write_text_atomic
    from regsearch.outcomes import TRIAL_ROWS_FILE, outcomes_bytes

    path = tuner_dir / REFIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if outcomes:
        write_bytes_atomic(path.with_name(TRIAL_ROWS_FILE), outcomes_bytes(outcomes))
    write_text_atomic(path, json.dumps({"runs": records, "histories": {}}, default=float))


def refit_rows(records: list[dict], models: list[Any], split: Split) -> dict:
    """Each test row's outcome under each completed refit model (models in the order of the records)."""
    from regsearch.hypermodels.base import row_scores
    from regsearch.outcomes import run_key

    outcomes = {}
    for record, model in zip(records, models):
        scores = row_scores(model, split.x_test, split.y_test) if record["status"] == "completed" else None
        if scores is not None:
            outcomes[run_key(record)] = {"test": scores}
    return outcomes


def _refit(definition: SearchDefinition, hypermodel: Any, tuners: list[Any], records: list[dict],
           split: Split) -> tuple[list[dict], list[Any]]:
    """``kfold``'s last step: the selected configuration and its baseline, retrained on every training row."""
    from regsearch.evaluation import compare
    from regsearch.evaluation.refit import Candidate, refit
    from regsearch.report import best_configuration, summary_frame, trials_frame

    trials = trials_frame(records)
    summary = summary_frame(trials, objective=definition.objective, direction=definition.direction)
    best = best_configuration(summary)
    chosen = [(best["phase"], best["trial_id"])]
    first = summary[(summary["phase"] == best["phase"]) & (summary["trial_id"] == best["trial_id"])].iloc[0]
    for _, row in compare.baselines_of(summary, first).iterrows():
        if (row["phase"], row["trial_id"]) not in chosen:
            chosen.append((row["phase"], row["trial_id"]))
            break
    candidates = []
    for phase, trial_id in chosen:
        tuner = next(t for t in tuners if t.project_name == phase)
        runs = trials[(trials["phase"] == phase) & (trials["trial_id"] == trial_id)
                      & (trials["status"].astype(str) == "completed")]
        epochs = max(1, int(round(float((runs["best_epoch"].astype(float) + 1).mean()))))
        hp = tuner.oracle.get_trial(trial_id.split("-", 1)[1]).hyperparameters
        candidates.append(Candidate(trial_id=trial_id, hypermodel=tuner.hypermodel, hyperparameters=hp, epochs=epochs))
    return refit(candidates, split.x_train, split.y_train, split.x_test, split.y_test,
                 seeds=[definition.seed + r for r in range(definition.repeats)], batch_size=definition.batch_size,
                 search_name=definition.name)


def fit_arguments(definition: SearchDefinition, split: Split) -> dict[str, Any]:
    """The keyword arguments every phase's ``tuner.search`` gets besides the training data."""
    arguments = dict(
        epochs=definition.epochs,
        batch_size=definition.batch_size,
        early_stopping=definition.early_stopping and dict(definition.early_stopping),
    )
    if definition.evaluation.selects_on_test:  # the articles' protocol: the test rows validate
        arguments["validation_data"] = (split.x_test, split.y_test)
    return arguments


def fine_definition(definition: SearchDefinition, hypermodel: Any,
                    coarse_records: list[dict]) -> SearchDefinition | None:
    """The fine phase of ``coarse_to_fine``: strengths around the coarse grid's best decade.

    None when every fine strength was measured by the coarse grid already.

    Raises:
        SearchFailedError: The coarse grid has no completed run with a strength.
    """
    best = _best_strength(coarse_records, definition)
    decades = list(hypermodel.regularizer.strengths)
    strengths = fine_strengths(best, decades, definition.fine_points)
    return _with_strengths(definition, strengths) if strengths else None


def check_fits_in_memory(definition: SearchDefinition, hypermodel: Any, split: Split) -> None:
    """Refuses, before anything is written, a model whose one training run would not fit in memory.

    The estimate comes from the first configuration's model, built once
    (:mod:`regsearch.population.memory`).

    Raises:
        SettingError: naming ``model``, what one run needs and what is available.
    """
    import keras
    import keras_tuner as kt

    from regsearch.population import memory

    keras.utils.set_random_seed(definition.seed)
    model = hypermodel.build(kt.HyperParameters())
    rows = memory.step_rows(definition.batch_size, len(split.x_train), len(split.x_test))
    try:
        needed, available = memory.footprint(model, rows), memory.available_bytes()
        if needed.total > available:
            raise SettingError("model", f"a model whose training run fits in the {available / memory.GiB:.1f} GiB "
                               "available (make it or batch_size smaller)", f"a run needing {needed.describe()}",
                               where=str(definition.path))
    finally:
        del model
        keras.backend.clear_session(free_memory=False)


def check_same_settings(definition: SearchDefinition, tuner_dir: Path) -> None:
    """Refuses to resume trials that ran under other settings, then records these ones.

    Keras Tuner keeps finished trials, and the search space it saved, whatever
    the definition says now: a search first run with ``--epochs 3`` and rerun
    without it would keep its 3-epoch trials as if they were the real ones.
    ``max_trials`` may change (a Bayesian search can be extended), and so may
    ``time_limit``, ``checkpoint_seconds``, the description and the report settings.

    Raises:
        SettingError: naming the first setting that changed, its saved value and the new one.
        DamagedFileError: The saved settings cannot be read back.
    """
    import json

    from regsearch.atomic import write_text_atomic
    from regsearch.damaged import read_json

    current = json.loads(json.dumps(_trial_settings(definition), default=str))
    path = tuner_dir / SETTINGS_FILE
    if path.is_file():
        # Without it, trials trained under other settings could be kept as if they were these ones.
        saved = read_json(path, "the settings the saved trials ran under are unknown: delete it if the definition "
                                "(and --epochs, --repeats) is as when they ran, or pass --overwrite to start afresh")
        changed = [key for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
        if changed:
            key = changed[0]
            was = "unset (the default)" if key not in saved else repr(saved[key])
            raise SettingError(key, f"{was} as when the saved trials ran (or pass --overwrite to start afresh)",
                               current.get(key, NOTHING), where=str(tuner_dir.parent))
        return
    write_text_atomic(path, json.dumps(current, indent=1, sort_keys=True))


def _trial_settings(definition: SearchDefinition) -> dict[str, Any]:
    """The definition's settings that shape trials, as dotted keys (comments and formatting do not count)."""
    import tomllib

    flat: dict[str, Any] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(tomllib.loads(definition.text), "")
    for key in [k for k in flat if k in ("description", "search.max_trials", "search.time_limit",
                                         "search.checkpoint_seconds")
                or k.startswith("report.")]:
        del flat[key]
    flat["training.epochs"] = definition.epochs  # --epochs included
    if "search.repeats" in flat or definition.repeats != DEFAULT_REPEATS:  # --repeats included
        flat["search.repeats"] = definition.repeats
    return flat


def _check_some_completed(definition: SearchDefinition, records: list[dict], histories: dict) -> None:
    """Raises SearchFailedError, carrying the records (``error.result``) so that they can still be reported."""
    if any(r["status"] == "completed" for r in records):
        return
    reasons = sorted({r["reason"] for r in records if r["reason"]})
    error = SearchFailedError(
        f"every run of search '{definition.name}' failed ({len(records)} runs): " + "; ".join(reasons[:3])
    )
    error.result = SearchResult(definition, records, histories)  # type: ignore[attr-defined]
    raise error


def _make_tuner(definition: SearchDefinition, hypermodel: Any, phase: str, directory: Path,
                on_run: Callable[[dict], None] | None, options: dict[str, Any]) -> Any:
    import keras_tuner as kt

    from regsearch import tuners

    common = dict(
        objective=kt.Objective(definition.objective, direction=definition.direction),
        directory=str(directory),
        project_name=phase,
        overwrite=False,
        repeats=definition.repeats,
        seed=definition.seed,
        phase=phase,
        search_name=definition.name,
        on_run=on_run,
        checkpoint_seconds=definition.checkpoint_seconds,
        **({} if definition.batch is None else {"batch": definition.batch}),
        **options,
    )
    # Keras Tuner prints "Reloading Tuner from ..." on stdout; the CLI's progress already counts resumed runs.
    with contextlib.redirect_stdout(io.StringIO()):
        if "rungs" in options:
            del common["engine"]
            common.pop("batch", None)
            return tuners.SuccessiveHalving(hypermodel, **common)
        if phase == "bayesian":
            return tuners.BayesianOptimization(hypermodel, max_trials=definition.max_trials, **common)
        return tuners.GridSearch(hypermodel, **common)


def _read_runs(tuner: Any) -> tuple[list[dict], dict[str, dict[str, list[float]]]]:
    from regsearch.tuners import read_runs

    return read_runs(tuner)


def _best_strength(records: list[dict], definition: SearchDefinition) -> float:
    """The strength of the coarse grid's best configuration (ranked as in the report)."""
    from regsearch.report import summary_frame, trials_frame

    summary = summary_frame(trials_frame(records), objective=definition.objective, direction=definition.direction)
    ranked = summary[summary["param_strength"].notna() & summary[f"mean_{definition.objective}"].notna()]
    if ranked.empty:
        raise SearchFailedError(f"the coarse grid of search '{definition.name}' has no completed run with a strength")
    return float(ranked.iloc[0]["param_strength"])


def _with_strengths(definition: SearchDefinition, strengths: list[float]) -> SearchDefinition:
    space = dict(definition.space)
    space["regularizer"] = {**space["regularizer"], "strengths": strengths}
    return dataclasses.replace(definition, space=space)


def _chosen_models(tuners: list[Any], records: list[dict], definition: SearchDefinition) -> tuple[Any, Any]:
    """Reloads the Keras Tuner checkpoints of the best configuration and of its baseline (first runs each).

    The baseline is the configuration without penalty, constraint or noise that
    the paired comparison measures the best one against (the best one itself when
    it has none); either model is None when its checkpoint is missing.
    """
    from regsearch.evaluation import compare
    from regsearch.report import best_configuration, summary_frame, trials_frame

    summary = summary_frame(trials_frame(records), objective=definition.objective, direction=definition.direction)
    best = best_configuration(summary)
    first = summary[(summary["phase"] == best["phase"]) & (summary["trial_id"] == best["trial_id"])].iloc[0]
    baselines = compare.baselines_of(summary, first)
    chosen = [(best["phase"], best["trial_id"])]
    if not baselines.empty:
        chosen.append((baselines["phase"].iloc[0], baselines["trial_id"].iloc[0]))
    models = [_trial_model(tuners, phase, trial_id) for phase, trial_id in chosen]
    return models[0], models[1] if len(models) > 1 else None


def _trial_model(tuners: list[Any], phase: str, trial_id: str) -> Any:
    """The model a trial's first run left in its Keras Tuner checkpoint, or None."""
    for tuner in tuners:
        if tuner.project_name == phase:
            try:
                with warnings.catch_warnings():
                    # The checkpoint holds the optimizer's slots, a fresh build does not: harmless.
                    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                    return kt_internals.load_trial_model(tuner, tuner.oracle.get_trial(trial_id.split("-", 1)[1]))
            except (OSError, ValueError, KeyError):  # a checkpoint from a killed run
                return None
    return None


def check_writable(folder: Path) -> None:
    """Refuses a results folder that cannot be created or written, before anything runs.

    Raises:
        SettingError: naming the folder and why.
    """
    probe = folder
    while not probe.exists() and not probe.is_symlink():
        probe = probe.parent
    why = (f"{probe} is not a folder" if not probe.is_dir()
           else f"{probe} is on a read-only filesystem" if os.statvfs(probe).f_flag & os.ST_RDONLY
           else f"{probe} is not writable" if not os.access(probe, os.W_OK | os.X_OK) else None)
    if why is not None:
        raise SettingError("--results", "a folder regsearch can create and write", f"{folder} ({why})",
                           where="command line")
