"""The command line: ``python -m regsearch NAME``, ``list`` and ``report``.

``main`` returns an exit code instead of exiting: 0 on success, 1 when a
search ran but every run failed, 2 on bad input (unknown search, invalid
definition, bad option, a results folder that is locked or not writable).
Bad input is refused before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from regsearch.definition.schema import RUNG_STRATEGIES
from regsearch.atomic import WRITE_REFUSED, write_refused
from regsearch.damaged import DamagedFileError
from regsearch.errors import SearchFailedError, SettingError
from regsearch.results import BASELINE_MODEL, BEST_MODEL, DEFINITION_COPY

__all__ = ["build_parser", "command", "main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: Ctrl-C: 128 + SIGINT, as a shell reports it.
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` owns the exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _argument_error(self, message)


def _argument_error(parser: argparse.ArgumentParser, message: str) -> SettingError:
    """argparse's message in regsearch's template: the option, what it accepts, what it got."""
    import difflib
    import re

    from regsearch.definition import NOTHING

    options = sorted(o for action in parser._actions for o in action.option_strings if o.startswith("--"))
    unknown = re.fullmatch(r"unrecognized arguments: (.*)", message)
    if unknown:
        received = unknown.group(1).split()[0]
        close = difflib.get_close_matches(received, options, n=1)
        hint = f" (nearest: '{close[0]}')" if close else ""
        return SettingError("option", f"one of {', '.join(options)}{hint}", received, where="command line")
    invalid = re.fullmatch(r"argument (\S+?)(?:/\S+)?: invalid (\w+) value: '(.*)'", message)
    if invalid:
        kinds = {"int": "an integer", "float": "a number"}
        return SettingError(invalid.group(1), kinds.get(invalid.group(2), invalid.group(2)), invalid.group(3),
                            where="command line")
    needs = re.fullmatch(r"argument (\S+?)(?:/\S+)?: expected one argument", message)
    if needs:
        return SettingError(needs.group(1), "followed by a value", NOTHING, where="command line")
    if "required" in message and "command" in message:
        return SettingError("command", "a search name, a path to a .toml file, 'list' or 'report'", NOTHING,
                            where="command line")
    return SettingError("arguments", "valid (see --help)", message, where="command line")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (a function so that tests and docs can inspect it)."""
    parser = _Parser(
        prog="regsearch",
        description="Find the right regularization for a Keras model with Keras Tuner.",
        epilog="Examples: regsearch moons_l2 | regsearch list | regsearch report",
    )
    parser.add_argument("command", help="a search name or path to a .toml file, or 'list', or 'report'")
    parser.add_argument("names", nargs="*", help="with 'report': the searches to rebuild (default: all)")
    parser.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results/)")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the definition's epochs (quick looks)")
    parser.add_argument("--max-trials", type=int, metavar="N",
                        help="override a Bayesian search's max_trials (quick looks; a rerun without it resumes)")
    parser.add_argument("--repeats", type=int, metavar="N", help="override the definition's runs per configuration")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="start no new trial after this long (overrides [search] time_limit); the report says "
                             "how far the search got, and the same command resumes it")
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--engine", choices=("population", "sequential"), default="population",
                        help="population: each phase's trials trained together in one compiled program where the "
                             "model allows (default); sequential: one run at a time")
    distributed = parser.add_argument_group(
        "distributed search (Keras Tuner's chief/worker mode; every process needs the same --results folder)")
    role = distributed.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true", help="serve the trials to workers, then write the report")
    role.add_argument("--worker", action="store_true", help="run trials the chief hands out")
    distributed.add_argument("--oracle-ip", metavar="ADDR",
                             help="the chief's address (default: $KERASTUNER_ORACLE_IP or 127.0.0.1)")
    distributed.add_argument("--oracle-port", type=int, metavar="PORT",
                             help="the chief's port (default: $KERASTUNER_ORACLE_PORT or 8000)")
    distributed.add_argument("--tuner-id", metavar="ID",
                             help="a worker's id (default: $KERASTUNER_TUNER_ID or worker-HOST-PID)")
    distributed.add_argument("--workers", type=int, metavar="N",
                             help="the chief ends each phase only after N workers have finished it (default: 1)")
    distributed.add_argument("--lease", type=float, metavar="SECONDS",
                             help="the chief hands a trial out again when its worker has been silent this long "
                                  "(default: 60)")
    distributed.add_argument("--chief-timeout", type=float, metavar="SECONDS",
                             help="a worker gives up when the chief has not answered for this long (default: 60)")
    return parser


def command() -> int:
    """The ``regsearch`` command and ``python -m regsearch``: :func:`main` on ``sys.argv``, then a quick exit.

    As it exits, Python collects its garbage once more over every object still alive: about a second once
    TensorFlow is loaded (``benchmarks/exit.py``). Frozen (:func:`gc.freeze`), they are left to the operating
    system; exit handlers still run and every file regsearch writes is closed by then. Only for a process that
    ends here: an in-process caller of :func:`main` keeps collecting what its searches leave.
    """
    code = main()
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow C++ logs, errors included: failures raise in Python
    # Every trial traces a new compiled loop on purpose; TensorFlow's retracing notice is noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    results = Path("results")
    try:
        args = build_parser().parse_intermixed_args(argv)  # `report --results DIR NAME` too
        results = Path(args.results)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as run, for provenance.json
        if args.command == "list":
            return _list()
        if args.command == "report":
            with _library_logs(args.quiet):
                return _report(results, args.names, quiet=args.quiet)
        if args.names:
            raise SettingError("arguments", "one search name (several only with 'report')", args.names, "command line")
        with _library_logs(args.quiet):
            return _run(args)
    except SettingError as error:
        print(f"regsearch: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DamagedFileError as error:
        print(f"regsearch: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SearchFailedError as error:
        print(f"regsearch: search failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:
        refused = write_refused(error)
        if refused is None:
            raise
        print(f"regsearch: error: {_refused_line(refused, results)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Every file is written whole or not at all: the same command resumes from the finished trials.
        print("regsearch: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _refused_line(error: OSError, results: Path) -> str:
    """One line for a disk that refused a write: the folder, why, and that a rerun with room resumes."""
    import errno

    folder = Path(error.filename).parent if error.filename else results
    space = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    fix = "free some space" if space else "make it writable"
    why = f"{WRITE_REFUSED.get(error.errno, 'refused')}: {os.strerror(error.errno)}"
    return (f"cannot write in {folder} ({why}); what was recorded before is kept: {fix} and run the same command "
            "again to resume")


@contextlib.contextmanager
def _library_logs(quiet: bool) -> Iterator[None]:
    """While a command runs, what regsearch's modules log (they never print) is one line each on stderr."""
    handler = logging.StreamHandler()  # sys.stderr as it is now (a test's capture included)
    handler.setFormatter(logging.Formatter("regsearch: %(message)s"))
    logger = logging.getLogger("regsearch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _list() -> int:
    import tomllib

    from rich.console import Console
    from rich.table import Table

    from regsearch.definition import known_searches

    table = Table("search", "strategy", "what it answers", box=None)
    for name, path in known_searches().items():
        # Only a listing: read the text, and leave validation (which needs TensorFlow) to the run.
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            table.add_row(name, str(raw.get("search", {}).get("strategy", "grid")), str(raw.get("description", "")))
        except (OSError, tomllib.TOMLDecodeError) as error:
            table.add_row(name, "unreadable", str(error))
    Console().print(table)
    return EXIT_OK


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with file descriptor 2 parked, replaying it only if the import fails.

    TensorFlow 2.21 logs absl lines (oneDNN, CUDA) to stderr at import whatever
    TF_CPP_MIN_LOG_LEVEL says; an error message should stay one line.
    """
    import tempfile

    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.buffer.write(captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


#: The Keras backends regsearch's engines run on.
BACKENDS = ("tensorflow", "jax")


def _check_backend() -> None:
    """Refuses a Keras backend regsearch cannot run on, before Keras is imported (its import would fail or run it).

    Keras' own rule: ``KERAS_BACKEND`` when set and not empty, else ``backend`` in
    ``$KERAS_HOME/keras.json`` (default ``~/.keras``), else TensorFlow.
    """
    if "keras" in sys.modules:
        import keras

        backend, where = keras.config.backend(), "keras.config.backend()"
    elif os.environ.get("KERAS_BACKEND"):
        backend, where = os.environ["KERAS_BACKEND"], "environment"
    else:
        home = os.environ.get("KERAS_HOME") or os.path.join(
            os.path.expanduser("~") if os.access(os.path.expanduser("~"), os.W_OK) else "/tmp", ".keras")
        config = Path(home).expanduser() / "keras.json"
        backend, where = "tensorflow", str(config)
        try:
            backend = json.loads(config.read_text(encoding="utf-8")).get("backend", backend)
        except (OSError, ValueError, AttributeError):  # missing or unreadable: Keras falls back as well
            pass
    if backend not in BACKENDS:
        raise SettingError("KERAS_BACKEND", f"one of {', '.join(map(repr, BACKENDS))} (the Keras backends regsearch "
                           "runs on)", backend, where)


def _run(args: argparse.Namespace) -> int:
    from regsearch.atomic import LockedError, ResultsLock
    from regsearch.definition import check_inputs, read_definition
    from regsearch.definition.plan import make_plan
    from regsearch.search import check_writable

    # Everything that needs no Keras is checked first: a bad file is refused in a fraction of a second.
    _check_backend()
    definition = read_definition(args.command)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SettingError("--epochs", "an integer >= 1", args.epochs, "command line")
        definition = definition.with_epochs(args.epochs)
    if args.max_trials is not None:
        definition = _with_max_trials(definition, args.max_trials)
    if args.repeats is not None:
        if args.repeats < 1:
            raise SettingError("--repeats", "an integer >= 1", args.repeats, "command line")
        definition = dataclasses.replace(definition, repeats=args.repeats)
    if args.time_limit is not None:
        from regsearch.definition.schema import check_seconds

        definition = dataclasses.replace(definition, time_limit=check_seconds("--time-limit", args.time_limit,
                                                                              "command line"))
    if (args.chief or args.worker) and definition.time_limit is not None:
        option, where = ("--time-limit", "command line") if args.time_limit is not None else (
            "search.time_limit", str(definition.path))
        raise SettingError(option, "left out for a distributed search (the chief hands out every trial)",
                           definition.time_limit, where)
    if args.time_limit is not None and definition.evaluation.kind == "nested":
        raise SettingError("--time-limit", "left out for protocol 'nested' (each outer fold runs the whole search)",
                           args.time_limit, "command line")
    if (args.chief or args.worker) and definition.evaluation.kind == "nested":
        raise SettingError("--chief" if args.chief else "--worker", "a search whose protocol is not 'nested' (its "
                           "outer folds run in one process)", "nested", str(definition.path))
    _check_distributed_options(args)
    if (args.chief or args.worker) and definition.strategy in RUNG_STRATEGIES:
        raise SettingError("--chief" if args.chief else "--worker", "a grid, coarse_to_fine or bayesian search "
                           "(a rung strategy's brackets train in one process)", definition.strategy, "command line")
    folder = Path(args.results) / definition.name
    check_writable(folder)
    definition, split = check_inputs(definition)
    _import_tensorflow_quietly()
    plan = make_plan(definition, split)  # the data read above, the model file read here: once for the whole search
    if args.worker:  # the chief holds the lock, makes the folder and writes the report; workers only add trials
        return _work(plan, folder, args)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with ResultsLock(folder):
            _remove_stale_temporaries(folder)
            return _search_and_report(plan, folder, args)
    except LockedError as error:
        raise _locked(folder, error) from None
    except SettingError:  # refused before any trial ran: take back the folders this run made
        for path in created:
            if path.is_dir() and all(p.name == ".lock" for p in path.rglob("*") if p.is_file()):
                shutil.rmtree(path)
        raise


def _remove_stale_temporaries(folder: Path) -> None:
    """Deletes temporary files a killed run left mid-write (we hold the lock: nobody else is writing)."""
    patterns = (".*.tmp", f".{Path(BEST_MODEL).stem}.*.keras", f".{Path(BASELINE_MODEL).stem}.*.keras")
    for pattern in patterns:
        for path in folder.rglob(pattern):
            path.unlink(missing_ok=True)
    for path in folder.glob(".tensorboard.*"):  # a tensorboard/ folder being swapped in (report.tensorboard)
        shutil.rmtree(path, ignore_errors=True)


def _locked(folder: Path, error: Exception) -> SettingError:
    import re

    pid = re.search(r"\(pid (\d+)\)", str(error))
    holder = f", locked by pid {pid.group(1)}" if pid else ", locked"
    return SettingError("--results", "a folder no other regsearch run is writing to (wait for that run to finish, "
                        "or pass another --results)", f"{folder}{holder}", "command line")


def _with_max_trials(definition: Any, max_trials: int) -> Any:
    if definition.strategy != "bayesian":
        raise SettingError("--max-trials", f"left out for strategy '{definition.strategy}' (only 'bayesian' has it)",
                           max_trials, "command line")
    if max_trials < 1:
        raise SettingError("--max-trials", "an integer >= 1", max_trials, "command line")
    return dataclasses.replace(definition, max_trials=max_trials)


def _search_and_report(plan: Any, folder: Path, args: argparse.Namespace) -> int:
    from regsearch.search import run_search

    definition = plan.definition

    console = _console(args.quiet)
    started, started_at = time.perf_counter(), _now()
    try:
        with _Progress(console, definition) as progress:
            serve = None
            if args.chief:
                from regsearch import distributed

                where = distributed.endpoint(args.oracle_ip, args.oracle_port)
                console.print(f"{definition.name}: chief serving trials on {where}")
                events = distributed.ChiefEvents(on_run=progress.run, on_flight=progress.in_flight,
                                                 on_lost=console.print)
                serve = distributed.become_chief(where, definition, workers=args.workers or 1, events=events,
                                                 lease=args.lease or distributed.DEFAULT_LEASE_SECONDS)
            from regsearch.population.progress import reporting

            with reporting(progress.population):
                result = run_search(
                    plan, folder, overwrite=args.overwrite, on_phase=progress.phase, on_run=progress.run,
                    serve=serve, engine=args.engine,
                )
    except SearchFailedError as error:
        # Every run failed: still write trials.csv and summary.md, which say why.
        failed = getattr(error, "result", None)
        if failed is None or not failed.records:
            raise
        _write_outputs(folder, failed, _provenance(args, started_at, time.perf_counter() - started))
        raise SearchFailedError(f"{error}; the reasons are in {folder / 'trials.csv'}") from None
    _write_outputs(folder, result, _provenance(args, started_at, time.perf_counter() - started))
    seconds = time.perf_counter() - started
    _print_best(_console(args.quiet, answer=True), folder, definition, seconds)
    return EXIT_OK


def _console(quiet: bool, answer: bool = False) -> Any:
    """Progress and messages go to stderr; the answer (the table, the answer line, the results path) to stdout."""
    from rich.console import Console

    stream = sys.stdout if answer else sys.stderr
    # Not a terminal (CI logs, pipes): rich would assume 80 columns and cut the table.
    return Console(stderr=not answer, quiet=quiet, width=None if stream.isatty() else 120)


def _check_distributed_options(args: argparse.Namespace) -> None:
    """Refuses distributed options that the process's role does not use, before anything runs."""
    role = "--chief" if args.chief else "--worker" if args.worker else None
    allowed = {"--oracle-ip": ("--chief", "--worker"), "--oracle-port": ("--chief", "--worker"),
               "--tuner-id": ("--worker",), "--workers": ("--chief",), "--lease": ("--chief",),
               "--chief-timeout": ("--worker",)}
    for option, roles in allowed.items():
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None and role not in roles:
            raise SettingError(option, f"given only with {' or '.join(roles)}", value, "command line")
    if args.worker and args.overwrite:
        raise SettingError("--overwrite", "left to the chief (a worker never deletes results)", True, "command line")
    if args.workers is not None and args.workers < 1:
        raise SettingError("--workers", "an integer >= 1", args.workers, "command line")
    for option in ("--lease", "--chief-timeout"):
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None and not 0 < value < float("inf"):
            raise SettingError(option, "a number of seconds > 0", value, "command line")
    if role is not None:
        from regsearch import distributed

        distributed.check_address(distributed.endpoint(args.oracle_ip, args.oracle_port), serve=bool(args.chief))
        if args.worker:
            distributed.worker_id(args.tuner_id)


def _work(plan: Any, folder: Path, args: argparse.Namespace) -> int:
    """A distributed worker: runs the trials the chief hands out until it has none left."""
    from regsearch import distributed

    definition = plan.definition

    where = distributed.endpoint(args.oracle_ip, args.oracle_port)
    tuner_id = distributed.worker_id(args.tuner_id)
    console = _console(args.quiet)
    runs = []

    def on_run(record: dict) -> None:
        runs.append(record)
        value = record.get(definition.objective)
        console.print(f"{record['trial_id']} run {record['repeat']}: {record['status']}, "
                      f"{definition.objective}={_cell(value)} ({record['seconds']:.1f} s)")

    distributed.run_worker(
        plan, folder, where=where, tuner_id=tuner_id,
        chief_timeout=args.chief_timeout or distributed.DEFAULT_CHIEF_TIMEOUT_SECONDS, engine=args.engine,
        on_start=lambda: console.print(f"{definition.name}: worker {tuner_id} running trials of the chief at {where}"),
        on_phase=lambda phase: console.print(f"phase {phase}"), on_run=on_run)
    console.print(f"worker {tuner_id}: {len(runs)} runs done; the chief writes the report")
    return EXIT_OK


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)


def _provenance(args: argparse.Namespace, started_at: Any, seconds: float) -> dict[str, Any]:
    """What produced this run's numbers, and the command that reruns it into the same folder."""
    from regsearch.provenance import collect, rerun_command

    changing = {"--epochs": args.epochs, "--repeats": args.repeats, "--max-trials": args.max_trials,
                "--engine": None if args.engine == "population" else args.engine}
    rerun = rerun_command(args.command, results=args.results, options=changing)
    return collect(command=args.argv, rerun=rerun, started=started_at, seconds=seconds)


def _write_outputs(folder: Path, result: Any, provenance: dict[str, Any]) -> None:
    """The report, the best and baseline models (whole predictors, :mod:`regsearch.predictor`) and the definition."""
    from regsearch.atomic import write_text_atomic
    from regsearch.predictor import whole_predictor, write_description
    from regsearch.report import write_index, write_report

    definition = result.definition
    # The saved models take the file's raw rows, so the report's plots draw them over raw rows too.
    best_model, baseline_model = (whole_predictor(model, result.split)
                                  for model in (result.best_model, result.baseline_model))
    data = result.split.unscaled() if result.split is not None else None
    write_report(
        folder,
        result.records,
        result.histories,
        stopped=result.stopped,
        search_name=definition.name,
        rerun_command=provenance["rerun"],
        provenance=provenance,
        objective=definition.objective,
        direction=definition.direction,
        definition_text=definition.text,
        description=definition.description,
        protocol=definition.evaluation.kind,
        baseline=definition.evaluation.baseline,
        split_per_seed=definition.evaluation.split_per_seed,
        rungs=result.rungs,
        outcomes=result.outcomes,
        nested=result.nested,
        best_model=best_model,
        baseline_model=baseline_model,
        data=data,
        epochs=definition.epochs, early_stopping=definition.early_stopping is not None,
        **_plot_settings(definition.report),
    )
    if best_model is not None:
        _save_model_atomic(best_model, folder / BEST_MODEL)
    if baseline_model is not None:
        _save_model_atomic(baseline_model, folder / BASELINE_MODEL)
    write_description(folder, best_model if best_model is not None else baseline_model, result.split)
    write_text_atomic(folder / DEFINITION_COPY, definition.text)
    write_index(folder.parent)


def _plot_settings(report: dict[str, str]) -> dict[str, str]:
    settings = {"x": report.get("x", "param_strength")}
    if "hue" in report:
        settings["hue"] = report["hue"]
    return settings


def _save_model_atomic(model: Any, path: Path) -> None:
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.keras")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _print_best(console: Any, folder: Path, definition: Any, seconds: float) -> None:
    import pandas as pd
    from rich.table import Table

    summary = pd.read_csv(folder / "summary.csv")
    params = [c for c in summary.columns if c.startswith("param_") and summary[c].nunique(dropna=False) > 1]
    # The test rows score only the selected configuration, unless the test rows selected (tutorial).
    shown = (definition.objective, "train_accuracy",
             *(("test_accuracy", "test_loss") if definition.evaluation.selects_on_test else ()))
    metrics = [f"mean_{m}" for m in dict.fromkeys(shown) if f"mean_{m}" in summary]
    phases = summary["phase"].nunique() > 1
    # Up to three varying settings get a column each; more share one wrapped column.
    wide = len(params) <= 3
    setting_columns = [p.removeprefix("param_") for p in params] if wide else ["configuration"]
    table = Table("rank", *(["phase"] if phases else []), *setting_columns,
                  *[m.removeprefix("mean_") for m in metrics], "runs",
                  title=f"{definition.name}: best configurations by {definition.objective}")
    for _, row in summary.head(5).iterrows():
        if wide:
            settings = [_cell(row[p], missing="none") for p in params]
        else:
            settings = [", ".join(f"{p.removeprefix('param_')}={_cell(row[p], missing='none')}" for p in params
                                  if _cell(row[p], missing="none") != "none")]
        table.add_row(str(row["rank"]), *([str(row["phase"])] if phases else []), *settings,
                      *[_cell(row[m]) for m in metrics], str(row["n_runs"]))
    console.print(table)
    from regsearch.evaluation.caveats import caveats
    from regsearch.report import trials_frame
    from regsearch.results import open_results

    summary.attrs = {"objective": definition.objective, "direction": definition.direction}
    trials = trials_frame(pd.read_csv(folder / "trials.csv").to_dict("records"))
    # The page's answer, as open_results reads it back: the runs, the per-row outcomes and the stop just written.
    answer = open_results(folder).answer
    if answer:
        console.print(answer, soft_wrap=True)  # one line, in a log too
    for sentence in caveats(trials, summary, epochs=definition.epochs,
                            early_stopping=definition.early_stopping is not None):
        console.print(f"warning: {sentence}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"{_plural(len(summary), 'configuration')} in {seconds:.1f} s; results in {folder}/", soft_wrap=True)


def _cell(value: Any, missing: str = "nan") -> str:
    if isinstance(value, float) and value != value:
        return missing
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _report(results: Path, names: list[str], *, quiet: bool) -> int:
    """Rebuilds reports from what each search left (its trials.csv and search.toml suffice; no tuner state needed),
    then results/index.html and results/README.md, both listing every search of the folder."""
    from regsearch.atomic import LockedError, ResultsLock
    from regsearch.report import write_index
    from regsearch.report.write import INDEX_MARKDOWN
    from regsearch.results import saved_searches
    from regsearch.search import check_writable

    available = saved_searches(results)
    if not available:
        raise SettingError("--results", "a folder with saved searches (run one first: python -m regsearch NAME)",
                           f"{results} (no saved runs)", "command line")
    _check_backend()
    chosen = names or available
    for name in chosen:
        if name not in available:
            raise SettingError("report name", "a search with saved runs in " + f"{results}/: " + (", ".join(available) or "none"),
                               name, "command line")
    for name in chosen:
        folder = results / name
        check_writable(folder)
        try:
            with ResultsLock(folder):
                _import_tensorflow_quietly()  # the saved models load with Keras; a running search's line needs none
                _rebuild(folder, name)
        except LockedError as error:
            # A search is writing there: say how far it got, and leave its files to it (it writes the report).
            print(_running(folder, error), file=sys.stderr if quiet else sys.stdout)
            continue
        if not quiet:
            print(f"rebuilt {folder}/")
    index = write_index(results)
    if not quiet:
        print(f"wrote {index}")
        print(f"wrote {results / INDEX_MARKDOWN}")
    return EXIT_OK


def _running(folder: Path, error: Exception) -> str:
    """One line on a search that holds ``folder``'s lock: the runs it has recorded so far (files it wrote whole)."""
    import re

    from regsearch.report.write import report_settings
    from regsearch.results import saved_definition, saved_runs

    pid = re.search(r"\(pid (\d+)\)", str(error))
    records, _ = saved_runs(folder)
    definition = saved_definition(folder)  # a first run writes its copy at the end: no objective to name before
    objective, direction, _, _ = report_settings(definition, records)
    scores = [r[objective] for r in records if definition is not None and r["status"] == "completed"
              and r.get(objective) == r.get(objective)]
    configurations = len({(r["phase"], r["trial_id"]) for r in records})
    so_far = (f"{_plural(len(records), 'run')} of {_plural(configurations, 'configuration')} recorded so far"
              + (f", best run {objective}={(max if direction == 'max' else min)(scores):.4f}" if scores else "")
              if records else "no run recorded yet")
    return (f"{folder}/: a search is running there{f' (pid {pid.group(1)})' if pid else ''}, {so_far}; "
            "it writes the report when it ends (nothing rewritten here)")


def _rebuild(folder: Path, name: str) -> None:
    """Rewrites one search's report from its saved runs: the tuner's state if present, else trials.csv."""
    from regsearch.report import write_report
    from regsearch.provenance import STOPPED
    from regsearch.report.write import report_settings
    from regsearch.results import (nested_runs, report_runs, saved_definition, saved_models, saved_outcomes,
                                   saved_provenance, saved_rungs)

    records, histories, from_tuner = report_runs(folder)
    definition = saved_definition(folder)
    provenance = saved_provenance(folder)
    objective, direction, protocol, baseline = report_settings(definition, records)
    # trials.csv holds no epochs, and a moved data file no points: those plots of these same runs stay as they are.
    kept = ("decision_boundary.png",) if from_tuner else ("learning_curves.png", "decision_boundary.png")
    rerun = provenance["rerun"] if provenance else f"python -m regsearch {name}"
    write_report(folder, records, histories, search_name=name, rerun_command=rerun, provenance=provenance,
                 objective=objective, direction=direction,
                 definition_text=definition.text if definition else None,
                 description=definition.description if definition else None, protocol=protocol, baseline=baseline,
                 rungs=saved_rungs(folder), **saved_models(folder, definition), kept_figures=kept,
                 outcomes=saved_outcomes(folder, from_tuner),
                 stopped=(provenance or {}).get(STOPPED), nested=nested_runs(folder),
                 epochs=definition.epochs if definition else None,
                 split_per_seed=bool(definition and definition.evaluation.split_per_seed),
                 early_stopping=definition is None or definition.early_stopping is not None,
                 **_plot_settings(definition.report if definition else {}))


#: Not a terminal (a log, a pipe): at most one progress line per this many seconds while a phase trains.
LINE_SECONDS = 5.0


class _Progress:
    """Progress over runs, with the best objective so far and the time left.

    In a terminal, a rich progress bar on stderr. Elsewhere (a log file, a
    pipe, CI), where a bar shows nothing until it ends, plain lines instead:
    each phase's start and end, and while it trains at most one line every
    ``LINE_SECONDS`` (runs done, epochs, time left), each flushed as written.
    """

    def __init__(self, console: Any, definition: Any, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.definition = definition
        self.console = console
        self.clock = clock
        self.lines = not console.is_terminal
        self.best: float | None = None
        self.task: Any = None
        self.runs_done = 0  # in the current phase
        self.phase_started = self.last_line = 0.0
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),  # "[grid]" is text
            TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            TextColumn("{task.fields[training]}"), TextColumn("{task.fields[flight]}"), console=console,
            transient=False, get_time=clock, disable=self.lines,  # the task still counts, and estimates the time left
        )

    def __enter__(self) -> _Progress:
        return self  # the bar appears with the first phase: an input refused before it prints nothing else

    def __exit__(self, *exc: Any) -> None:
        if self.lines and exc[0] is None:
            self._end_phase()
        if self.progress.live.is_started:
            self.progress.__exit__(*exc)

    def phase(self, name: str, planned_trials: int) -> None:
        if not self.lines and not self.progress.live.is_started:
            self.progress.__enter__()
        self._end_phase()
        per_configuration = self.definition.repeats * self.definition.evaluation.runs_per_seed
        total = planned_trials * per_configuration
        self.runs_done = 0
        self.task = self.progress.add_task(f"{self.definition.name} [{name}]", total=total, best=self._best_text(),
                                           flight="", training="")
        self.phase_started = self.last_line = self.clock()
        self._line(f"started: {_plural(planned_trials, 'configuration')} x {_plural(per_configuration, 'run')}")

    def run(self, record: dict) -> None:
        value = record.get(self.definition.objective)
        if record["status"] == "completed" and value == value and value is not None:
            better = self.best is None or (value > self.best if self.definition.direction == "max" else value < self.best)
            self.best = value if better else self.best
        self.runs_done += 1  # a population's runs are recorded when it has finished: its partial count ends
        if self.task is not None:
            self.progress.update(self.task, completed=self.runs_done, best=self._best_text(), training="")
            self._progress_line()

    def population(self, state: Any) -> None:
        """A population in training (:class:`regsearch.population.progress.PopulationProgress`): its members'
        epochs count towards the bar, so the time left is estimated while it trains."""
        if self.task is not None:
            self.progress.update(self.task, completed=self.runs_done + state.runs_done,
                                 training=f"{state.alive}/{state.members} training, "
                                          f"{state.epochs_done}/{state.members * state.epochs} epochs")
            self._progress_line()

    def in_flight(self, trials: dict[str, str]) -> None:
        """A distributed chief's trials in flight, by worker."""
        if self.task is not None:
            text = ", ".join(f"{worker}: {trial}" for worker, trial in sorted(trials.items()))
            self.progress.update(self.task, flight=f"in flight {text}" if text else "")
            self._progress_line()

    def _progress_line(self) -> None:
        """A line of where the phase stands, unless one was written less than LINE_SECONDS ago."""
        if not self.lines or self.clock() - self.last_line < LINE_SECONDS:
            return
        task = self.progress.tasks[self.task]
        parts = [f"{_count(task.completed)}/{_count(task.total)} runs", task.fields["training"], task.fields["flight"],
                 f"best {self._best_text()}"]
        if task.time_remaining is not None and task.completed < task.total:
            parts.append(f"about {_duration(task.time_remaining)} left")
        self._line(", ".join(part for part in parts if part))

    def _end_phase(self) -> None:
        if self.lines and self.task is not None:
            task = self.progress.tasks[self.task]
            ended = "done" if task.completed >= task.total else "ended"  # the time limit, or every run failed
            self._line(f"{ended}: {_count(task.completed)}/{_count(task.total)} runs in "
                       f"{_duration(self.clock() - self.phase_started)}, best {self._best_text()}")

    def _line(self, text: str) -> None:
        if self.lines and self.task is not None:
            self.last_line = self.clock()
            # The console flushes every print: a log shows each line when it happens.
            self.console.print(f"{time.strftime('%H:%M:%S')} {self.progress.tasks[self.task].description} {text}",
                               markup=False, highlight=False, soft_wrap=True)

    def _best_text(self) -> str:
        return "-" if self.best is None else f"{self.definition.objective}={self.best:.4f}"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _count(runs: float | None) -> str:
    """Runs done, whole or in part (a population's members part-way through their epochs)."""
    return "?" if runs is None else f"{runs:g}" if runs == int(runs) else f"{runs:.1f}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
