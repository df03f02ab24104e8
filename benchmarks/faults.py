"""Kills a small search at random instants, again and again, and checks every file and every resume.

Usage: python benchmarks/faults.py [--instants 100] [--seed 0] [--keep] [--on-disk]
       [--search c2f|grid|long|hyperband|kfold|grid-small|hyperband-small]
       (KERAS_BACKEND=jax for the JAX backend)

The search (``python -m regsearch FILE``, as the command line runs it, into a
folder of its own) first runs uninterrupted: its ``trials.csv``, its duration
T and its member-epochs are the reference. Then a run is SIGKILLed at an
instant drawn uniformly from [0, T] (start-up, training, between phases, while
records, plots or the report are written, mid-rung, mid-fold), and again, each
rerun resuming what the kills before left, until a rerun ends before its
instant: that resume's ``trials.csv`` must equal the reference's (the seconds
and worker columns aside), and the next kill starts a new folder. After every
kill each file of the results folder must read whole (JSON, CSV, NPZ, PNG,
HTML, Keras archives; temporary files aside) and the rows of a ``trials.csv``
already written must be the reference's. Printed: the kills, the resumes that
matched, and the member-epochs the reruns trained again (their training
beyond the reference's, per kill), beside one checkpoint interval's worth.

A parent process imports regsearch, the backend and what a search imports as it
goes once and forks each run (nothing of the backend runs in the parent, no
thread), so an instant costs its own seconds, not an import. On JAX the runs
share a persistent compilation cache: the uninterrupted run compiles every
program, and the instants are drawn over a second uninterrupted run, one that
reads them (as the killed runs do; it must equal the first). Half the instants
fall uniformly over that run, half inside its training windows (from its
populations' progress calls), where a kill lands between two checkpoints of a
population or between its rungs.
``--instants`` counts kills. Exit code 0 when every check held.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from regsearch import cli  # noqa: E402
from regsearch.population import progress  # noqa: E402

cli._import_tensorflow_quietly()  # what the command line imports before a search, imported once here

#: What a search imports as it goes (the command line imports them where first needed), imported once in the parent
#: so that no killed run pays them again: plain Python modules, no thread started, no backend initialized.
SEARCH_IMPORTS = (
    "regsearch.search", "regsearch.tuners", "regsearch.definition.plan", "regsearch.population.progress",
    "regsearch.report", "regsearch.report.write", "regsearch.report.tensorboard", "regsearch.results",
    "regsearch.predictor", "regsearch.provenance", "regsearch.evaluation.caveats", "rich.console", "rich.table",
    "rich.progress", "rich._emoji_codes", "keras_tuner", "seaborn", "sklearn.model_selection", "sklearn.datasets",
    "scipy.stats", "scipy.optimize", "statsmodels", "jinja2", "tensorboard.summary", "tensorboard.plugins.hparams.api",
    "matplotlib.backends.backend_agg", "pandas.io.formats.csvs", "PIL.Image",
)


def import_what_a_search_imports() -> None:
    """Imports ``SEARCH_IMPORTS``, the backend's population module and Pillow's image formats, in this process."""
    import importlib
    import threading

    import keras
    from PIL import Image

    for module in SEARCH_IMPORTS + (f"regsearch.population._{keras.backend.backend()}",):
        importlib.import_module(module)
    Image.init()
    if threading.active_count() != 1:  # a thread would not survive fork(): the children would inherit its locks
        raise RuntimeError(f"an import started {threading.active_count() - 1} thread(s) in the parent")


def share_compiled_programs(folder: Path) -> None:
    """On JAX, every run reads and writes compiled programs in ``folder`` (set before any run: nothing is compiled)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

COMMON = """
[data]
dataset = "moons"
train_size = 40

[model]
hypermodel = "RegularizedMLP"
hidden = [16]

[training]
epochs = {epochs}
batch_size = 16

[early_stopping]
patience = 40
"""

#: Small searches: phases, a fine grid around the best, the baseline; rungs; folds refitted.
SEARCHES = {
    "c2f": """description = "faults: decades, then a fine grid"
[space.regularizer]
kinds = ["l2"]
strengths = { decades = [1e-1, 1e-3] }
[search]
strategy = "coarse_to_fine"
fine_points = 2
repeats = 2
checkpoint_seconds = 0.1
""" + COMMON.format(epochs=300),
    "grid": """description = "faults: one grid phase"
[space.regularizer]
kinds = ["l2"]
strengths = [1e-3, 1e-2, 1e-1]
[search]
strategy = "grid"
repeats = 2
checkpoint_seconds = 0.1
[evaluation]
baseline = false
""" + COMMON.format(epochs=300),
    "long": """description = "faults: one grid phase that trains for seconds"
[space.regularizer]
kinds = ["l2"]
strengths = [1e-3, 1e-2, 1e-1]
[search]
strategy = "grid"
repeats = 2
checkpoint_seconds = 0.5
[evaluation]
baseline = false
""" + COMMON.format(epochs=8000).replace("hidden = [16]", "hidden = [128]").replace("patience = 40",
                                                                                   'patience = "none"'),
    "hyperband": """description = "faults: hyperband"
[space.regularizer]
kinds = ["l2"]
strengths = [1e-4, 1e-3, 1e-2, 1e-1]
[search]
strategy = "hyperband"
factor = 2
min_epochs = 75
repeats = 2
checkpoint_seconds = 0.1
""" + COMMON.format(epochs=300),
    "kfold": """description = "faults: k-fold"
[space.regularizer]
kinds = ["l2"]
strengths = [1e-3, 1e-1]
[search]
strategy = "grid"
repeats = 1
checkpoint_seconds = 0.1
[evaluation]
protocol = "kfold"
folds = 3
""" + COMMON.format(epochs=200),
}
#: What ``tests/test_faults.py`` kills: "grid" with a quarter of the epochs and half the hidden units (its
#: uninterrupted run is mostly start-up, compiling and the report; the training left is short), and "hyperband"
#: with rungs at 1000, 2000 and 4000 epochs and a patience of 1000 (JAX trained the 8 members' 100 epochs of a
#: smaller one in 20 ms, too short for a kill to land inside; these train for tenths of a second), the same phases,
#: records and report, still a checkpoint every 0.1 s of training. The full-size searches above give the recorded
#: figures.
SEARCHES["grid-small"] = SEARCHES["grid"].replace("one grid phase", "one small grid phase").replace(
    "epochs = 300", "epochs = 75").replace("hidden = [16]", "hidden = [8]")
SEARCHES["hyperband-small"] = SEARCHES["hyperband"].replace("faults: hyperband", "faults: small hyperband").replace(
    "min_epochs = 75", "min_epochs = 1000").replace("epochs = 300", "epochs = 4000").replace(
    "patience = 40", "patience = 1000")


#: Where the runs' folders go when it has this much room: memory, not a disk.
IN_MEMORY, IN_MEMORY_ROOM = Path("/dev/shm"), 512 * 2**20


def scratch_folder(on_disk: bool) -> Path:
    """A new folder for the runs, in memory (``IN_MEMORY``) where it has room unless ``on_disk``.

    A SIGKILL loses no page already written: what a kill leaves is the same in memory as on a disk, while the
    fsyncs by which the command line's writes outlast a power cut cost a disk, shared with other work, up to a
    second a run.
    """
    import shutil

    room = IN_MEMORY.is_dir() and os.access(IN_MEMORY, os.W_OK) and shutil.disk_usage(IN_MEMORY).free >= IN_MEMORY_ROOM
    return Path(tempfile.mkdtemp(prefix="regsearch-faults-", dir=IN_MEMORY if room and not on_disk else None))


def child(definition: Path, results: Path, log: Path) -> int:
    """Forks ``python -m regsearch DEFINITION --results RESULTS --quiet``; its populations' progress goes to ``log``."""
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        told = progress.report

        def report(done: progress.PopulationProgress) -> None:
            with open(log, "a") as out:  # one line a call: what this process trained of its population so far
                out.write(f"{os.getpid()} {id_of(done)} {done.epochs_done - done.resumed} {time.monotonic()}\n")
            told(done)

        progress.report = report
        code = cli.main([str(definition), "--results", str(results), "--quiet"])
    finally:
        os._exit(code)


def id_of(done: progress.PopulationProgress) -> str:
    # The listener sees no population object; members and budget tell apart the populations of one process
    # only together with the order of the lines, which populations() reads.
    return f"{done.members}x{done.epochs}"


def populations(log: Path) -> list[list[tuple[int, float]]]:
    """Each population's calls in ``log``, in order: (member-epochs trained so far, monotonic time) per call.

    Lines are told apart by process and population size; a population's lines grow until it is finished, and a
    line lower than the one before starts another population of that size.
    """
    found: list[list[tuple[int, float]]] = []
    current: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        pid, population, trained, at = line.split()
        key = (pid, population)
        if key not in current or int(trained) < current[key][-1][0]:
            current[key] = []
            found.append(current[key])
        current[key].append((int(trained), float(at)))
    return found


def work(log: Path) -> int:
    """Member-epochs trained by the processes that wrote ``log``: each population's last call, summed."""
    return sum(calls[-1][0] for calls in populations(log))


def pace(log: Path) -> float:
    """Member-epochs a second of training, from the calls of ``log``'s populations after each one's first.

    A population's first call compiles its program and trains one epoch: it is left out.
    """
    epochs = seconds = 0.0
    for calls in populations(log):
        for (before, then), (trained, at) in zip(calls, calls[1:]):
            if trained > before:
                epochs += trained - before
                seconds += at - then
    return epochs / seconds if seconds else float("nan")


def training_windows(log: Path, start: float) -> list[tuple[float, float]]:
    """When ``log``'s populations trained, in seconds after ``start``: each from its first call to its last.

    A population's first call follows its program's compile and its first chunk of epochs.
    """
    return [(calls[0][1] - start, calls[-1][1] - start) for calls in populations(log) if calls[-1][1] > calls[0][1]]


def draw_instant(rng: random.Random, seconds: float, windows: list[tuple[float, float]]) -> tuple[float, bool]:
    """An instant to kill at, and whether it was drawn inside ``windows``.

    Half the instants fall uniformly over the run, half inside its training windows (weighted by their length),
    where a uniform draw would seldom land: there a kill falls between two checkpoints of a population, or between
    its rungs.
    """
    if windows and rng.random() < 0.5:
        lengths = [end - begin for begin, end in windows]
        begin, end = rng.choices(windows, weights=lengths)[0]
        return rng.uniform(begin, end), True
    return rng.uniform(0, seconds), False


#: A kill this soon after a population's progress call (calls come every chunk of epochs) fell while it trained.
TRAINING_GAP = 0.25


def training_when_killed(log: Path, calls_before: int, killed_at: float) -> bool:
    """Whether the run killed at ``killed_at`` (monotonic) had called its progress listener within
    ``TRAINING_GAP`` seconds before: a population was training (the run's calls are ``log``'s lines after the
    first ``calls_before``)."""
    calls = log.read_text().splitlines()[calls_before:] if log.exists() else []
    return bool(calls) and killed_at - float(calls[-1].split()[3]) < TRAINING_GAP


def wait_or_kill(pid: int, seconds: float) -> int | None:
    """The child's exit code, or None where it was still running after ``seconds`` and was SIGKILLed."""
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.002)


def frame(trials: Path) -> pd.DataFrame:
    keys = ["trial_id", "repeat", "fold"]
    table = pd.read_csv(trials).drop(columns=["seconds", "worker"])
    return table.sort_values([k for k in keys if k in table]).reset_index(drop=True)


def whole(folder: Path) -> list[str]:
    """Files of ``folder`` that do not read whole (a temporary file of an atomic write aside)."""
    from PIL import Image

    broken = []
    for path in folder.rglob("*"):
        if not path.is_file() or path.name == ".lock" or path.name.startswith("."):
            continue
        try:
            suffix = path.suffix
            if suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif suffix == ".csv":
                pd.read_csv(path)
            elif suffix == ".npz":
                with np.load(path) as arrays:
                    [arrays[name] for name in arrays.files]
            elif suffix == ".png":
                with Image.open(path) as image:
                    image.load()
            elif suffix in (".keras", ".zip"):
                with zipfile.ZipFile(path) as archive:
                    if archive.testzip() is not None:
                        raise ValueError("a damaged member")
            elif suffix in (".html", ".md", ".toml", ".txt"):
                text = path.read_text(encoding="utf-8")
                if not text or (suffix == ".html" and "</html>" not in text.lower()):
                    raise ValueError("cut short")
        except Exception as error:  # noqa: BLE001 - any failure to read is what is looked for
            broken.append(f"{path.relative_to(folder)} ({type(error).__name__})")
    return broken


def rows_agree(trials: Path, reference: pd.DataFrame) -> bool:
    """Every row of ``trials`` (if written) is the reference's row of the same run."""
    if not trials.exists():
        return True
    got = frame(trials)
    keys = [k for k in ("trial_id", "repeat", "fold") if k in got]
    merged = got.merge(reference, on=keys, how="left", suffixes=("", "_want"), indicator=True)
    if (merged["_merge"] != "both").any():
        return False
    return all(got[c].astype(str).tolist() == merged[f"{c}_want"].astype(str).tolist()
               for c in got.columns if c not in keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instants", type=int, default=100)
    parser.add_argument("--search", choices=sorted(SEARCHES), default="c2f")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the results folders (printed)")
    parser.add_argument("--on-disk", action="store_true",
                        help="the folders in the temporary folder, on disk (default: in /dev/shm where it has room)")
    args = parser.parse_args(argv)
    import keras

    rng = random.Random(args.seed)
    root = scratch_folder(args.on_disk)
    definition = root / f"faults_{args.search}.toml"
    definition.write_text(SEARCHES[args.search])
    name = definition.stem
    share_compiled_programs(root / "compiled")
    import_what_a_search_imports()

    start = time.monotonic()
    code = wait_or_kill(child(definition, root / "reference", root / "reference.log"), 3600)
    seconds = time.monotonic() - start
    if code != 0:
        print(f"the uninterrupted search failed (exit code {code})")
        return 1
    reference = frame(root / "reference" / name / "trials.csv")
    reference_work, reference_pace = work(root / "reference.log"), pace(root / "reference.log")
    print(f"{keras.backend.backend()}, search '{args.search}': uninterrupted {seconds:.1f} s, {len(reference)} runs, "
          f"{reference_work} member-epochs ({reference_pace:.0f} a second of training)")
    timed, timed_start = "reference", start
    if keras.backend.backend() == "jax":
        # The first run compiled every program; the killed runs read them from the cache. Instants are drawn over
        # the duration, and the training windows, of a run that reads them too (else many would fall after such a
        # run has ended, and none inside its training); it must equal the first.
        timed, timed_start = "cached", time.monotonic()
        code = wait_or_kill(child(definition, root / "cached", root / "cached.log"), 3600)
        seconds = time.monotonic() - timed_start
        if code != 0 or not frame(root / "cached" / name / "trials.csv").equals(reference):
            print(f"the uninterrupted search with compiled programs cached failed or differs (exit code {code})")
            return 1
        print(f"uninterrupted with the compiled programs cached: {seconds:.1f} s (the instants are drawn over it)")
    windows = training_windows(root / f"{timed}.log", timed_start)
    print(f"training windows of the uninterrupted run: {len(windows)}, {sum(e - b for b, e in windows):.2f} s in all")
    kills = resumes = matched = in_training = mid_training = 0
    failures: list[str] = []
    repeated: list[float] = []  # member-epochs trained again per kill, one value per resumed folder
    chain, chain_kills = 0, 0

    def finished(code: int | None) -> None:
        nonlocal matched, resumes, chain, chain_kills
        folder = root / f"run{chain}" / name
        if code != 0:
            failures.append(f"run{chain}: a rerun exited with code {code}")
        else:
            resumes += 1
            if frame(folder / "trials.csv").equals(reference):
                matched += 1
            else:
                failures.append(f"run{chain}: trials.csv differs from the uninterrupted run's")
            if chain_kills:
                repeated.append((work(root / f"run{chain}.log") - reference_work) / chain_kills)
        chain, chain_kills = chain + 1, 0

    while kills < args.instants:
        instant, inside = draw_instant(rng, seconds, windows)
        log = root / f"run{chain}.log"
        calls_before = len(log.read_text().splitlines()) if log.exists() else 0
        code = wait_or_kill(child(definition, root / f"run{chain}", log), instant)
        folder = root / f"run{chain}" / name
        if code is not None:  # ended before its instant: a resume to its end
            finished(code)
            continue
        kills += 1
        chain_kills += 1
        in_training += inside
        mid_training += training_when_killed(log, calls_before, time.monotonic())
        broken = whole(root / f"run{chain}")
        if broken:
            failures.append(f"run{chain}, kill {chain_kills}: half-written: {', '.join(broken)}")
        if not rows_agree(folder / "trials.csv", reference):
            failures.append(f"run{chain}, kill {chain_kills}: trials.csv rows differ from the reference's")
    if chain_kills:
        finished(wait_or_kill(child(definition, root / f"run{chain}", root / f"run{chain}.log"), 3600))

    interval = SEARCHES[args.search].split("checkpoint_seconds = ")[1].split()[0]
    print(f"{kills} kills at random instants; {matched} of {resumes} resumes equal to the uninterrupted run")
    print(f"{in_training} of the kills at instants drawn inside the uninterrupted run's training windows; "
          f"{mid_training} while a population trained (its last progress call less than {TRAINING_GAP} s before)")
    if repeated:
        print(f"member-epochs trained again per kill: mean {np.mean(repeated):.0f}, max {max(repeated):.0f} "
              f"(one checkpoint interval, {interval} s, is about {reference_pace * float(interval):.0f} at the "
              f"pace of training; a kill before a population's first checkpoint repeats its first call too)")
    for failure in failures:
        print("FAILED:", failure)
    if args.keep:
        print("folders:", root)
    else:
        import shutil

        with contextlib.suppress(OSError):
            shutil.rmtree(root)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
