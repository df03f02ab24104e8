"""Keras Tuner + model.fit against python -m regsearch on users' models, each side a fresh process, imports included.

Usage: python benchmarks/peers.py [--rows moons,cnn,lstm,tabular] [--epochs N] [--repeats N] [--patience N]
                                  [--quick] [--no-fixed] [--keep DIR]

For each row the script writes a user's files into a temporary folder (the
data as a .npz or .csv file, the model without regularization as a .keras
file, a regsearch search file) and times two fresh ``python`` processes, each
from its launch to its exit:

(a) what a Keras Tuner user writes: ``build(hp)`` builds the same architecture
    with ``kernel_regularizer=L2(hp.Choice("l2", grid))`` on the same layers;
    ``keras_tuner.GridSearch(objective="val_accuracy", executions_per_trial=
    repeats)``; ``tuner.search`` (``model.fit``) with ``keras.callbacks.
    EarlyStopping(monitor="val_loss", patience, restore_best_weights=True)``;
(b) ``python -m regsearch <row>.toml --results <folder> --quiet``.

Both sides: the same L2 grid on the same layers, epochs, patience, batch size,
repeats, training rows and validation rows (the test rows: regsearch's
``tutorial`` protocol), no unregularized baseline run. The moons row uses
regsearch's own preset (``dataset = "moons"``, ``RegularizedMLP``); the others
a user's ``.keras`` model and data file. Per row it prints the wall seconds, the
ratio, each side's pick and regsearch's mean validation accuracy of both picks
(agreeing "within noise" when they differ by at most twice the standard error
of the difference over the runs), the epochs each trained, and where
regsearch's time went, from its files' times: start-up (interpreter, imports,
reading the definition; until the results folder's lock), loading data and
model (until ``tuner/settings.json``), training (building members, compiling,
epochs, scoring, checkpoints; until the last trial's files), the report, the
exit. A third process, regsearch with ``--epochs 1``, gives training's fixed
cost (compiling, building and scoring members), so that the rest is the cost
of the epochs themselves (``--no-fixed`` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROWS = ("moons", "cnn", "lstm", "tabular")
#: The environment variable that tells a child process when the parent launched it (``time.time()``).
LAUNCHED = "PEERS_LAUNCHED"


@dataclasses.dataclass(frozen=True)
class Row:
    """One user model: its grid and training settings (the same on both sides)."""

    name: str
    title: str
    strengths: tuple[float, ...]
    epochs: int
    patience: int
    repeats: int
    batch_size: int = 32
    #: The layers that get the L2 penalty on their kernel (regsearch's ``[model] layers``).
    layers: tuple[str, ...] = ()
    #: Rows of generated data (0: the dataset's own size).
    samples: int = 0


FULL = {
    "moons": Row("moons", "moons MLP 2-500-1 (regsearch preset), 30 train / 70 validation rows",
                 (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6), epochs=500, patience=50, repeats=3),
    "cnn": Row("cnn", "user's CNN (.keras) on digits 8x8 (.npz), 1257 train / 540 validation rows",
               (1e-2, 1e-3, 1e-4, 1e-5), epochs=100, patience=10, repeats=2, layers=("conv1", "conv2", "dense")),
    "lstm": Row("lstm", "user's Embedding + LSTM(32) (.keras) on token sequences (.npz), 2100 / 900 rows",
                (1e-2, 1e-3, 1e-4, 1e-5), epochs=60, patience=10, repeats=2, layers=("lstm",), samples=3000),
    "tabular": Row("tabular", "user's MLP 40-256-128-1 (.keras) on a 20,000-row .csv, 14,000 / 6,000 rows",
                   (1e-2, 1e-3, 1e-4, 1e-5), epochs=40, patience=5, repeats=2, layers=("hidden1", "hidden2"),
                   samples=20_000),
}


def quick(row: Row) -> Row:
    """A smoke-test version: two strengths, one run each, few epochs, little data."""
    samples = {"lstm": 200, "tabular": 1000}.get(row.name, 0)
    return dataclasses.replace(row, strengths=row.strengths[:2], epochs=5, patience=2, repeats=1, samples=samples)


# --- the user's model and data (built in whichever process needs them; keras imported there) ---

def architecture(name: str, l2: float | None, input_shape: tuple[int, ...]) -> Any:
    """The compiled model of a row, with ``L2(l2)`` on its regularized layers' kernels (None: no penalty)."""
    import keras

    reg = keras.regularizers.L2(l2) if l2 is not None else None
    layers = keras.layers
    if name == "moons":
        body = [layers.Dense(500, activation="relu", kernel_regularizer=reg, name="hidden"),
                layers.Dense(1, activation="sigmoid", name="output")]
    elif name == "cnn":
        body = [layers.Conv2D(16, 3, activation="relu", kernel_regularizer=reg, name="conv1"),
                layers.Conv2D(32, 3, activation="relu", kernel_regularizer=reg, name="conv2"),
                layers.Flatten(name="flatten"),
                layers.Dense(64, activation="relu", kernel_regularizer=reg, name="dense"),
                layers.Dense(10, activation="softmax", name="digit")]
    elif name == "lstm":
        body = [layers.Embedding(VOCABULARY, 16, name="embedding"),
                layers.LSTM(32, kernel_regularizer=reg, name="lstm"),
                layers.Dense(1, activation="sigmoid", name="output")]
    elif name == "tabular":
        body = [layers.Dense(256, activation="relu", kernel_regularizer=reg, name="hidden1"),
                layers.Dense(128, activation="relu", kernel_regularizer=reg, name="hidden2"),
                layers.Dense(1, activation="sigmoid", name="output")]
    else:
        raise ValueError(f"no row {name!r}")
    model = keras.Sequential([keras.Input(input_shape, dtype="int32" if name == "lstm" else "float32"), *body])
    loss = "sparse_categorical_crossentropy" if name == "cnn" else "binary_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
    return model


VOCABULARY = 30
SEQUENCE_LENGTH = 20


def write_data(row: Row, folder: Path) -> Path:
    """The row's data file, as a user would have it."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if row.name == "cnn":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images / 16.0).astype("float32")[..., None]
        parts = train_test_split(x, digits.target, test_size=0.3, random_state=0, stratify=digits.target)
    elif row.name == "lstm":
        # Does token 1 come before token 2? Needs order memory; 10% flipped labels leave something to overfit.
        rng = np.random.default_rng(0)
        x = rng.integers(3, VOCABULARY, size=(row.samples, SEQUENCE_LENGTH))
        where = np.argsort(rng.random((row.samples, SEQUENCE_LENGTH)), axis=1)[:, :2]
        rows = np.arange(row.samples)
        x[rows, where[:, 0]], x[rows, where[:, 1]] = 1, 2
        y = (where[:, 0] < where[:, 1]).astype("int64")
        flip = rng.random(row.samples) < 0.1
        y[flip] = 1 - y[flip]
        parts = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    elif row.name == "tabular":
        import pandas as pd
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=row.samples, n_features=40, n_informative=12, n_redundant=8,
                                   flip_y=0.05, class_sep=0.8, random_state=0)
        table = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(target=y)
        path = folder / "table.csv"
        table.to_csv(path, index=False)
        return path
    else:
        raise ValueError(f"row {row.name!r} has no data file")
    path = folder / f"{row.name}.npz"
    np.savez(path, **dict(zip(("x_train", "x_test", "y_train", "y_test"), parts)))
    return path


def read_data(row: Row, folder: Path) -> tuple[Any, Any, Any, Any]:
    """(x_train, y_train, x_test, y_test) as the Keras Tuner user reads them: the rows regsearch uses."""
    import numpy as np

    if row.name == "moons":
        from sklearn.datasets import make_moons

        x, y = make_moons(n_samples=100, noise=0.2, random_state=1)  # regsearch's moons: the first 30 rows train
        x, y = x.astype("float32"), y.astype("float32")
        return x[:30], y[:30], x[30:], y[30:]
    if row.name == "tabular":
        import pandas as pd
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        table = pd.read_csv(folder / "table.csv")
        x, y = table.drop(columns="target").to_numpy("float32"), table["target"].to_numpy()
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(x_train)
        return scaler.transform(x_train), y_train, scaler.transform(x_test), y_test
    with np.load(folder / f"{row.name}.npz") as arrays:
        return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def search_file(row: Row, folder: Path, data: Path | None) -> Path:
    """The regsearch search file of a row."""
    strengths = ", ".join(repr(s) for s in row.strengths)
    if row.name == "moons":
        data_table = 'dataset = "moons"\ntrain_size = 30'
        model_table = 'hypermodel = "RegularizedMLP"\nhidden = [500]\nactivation = "relu"\noptimizer = "adam"\n' \
                      'learning_rate = 0.001'
    else:
        data_table = f'file = "{data.name}"'
        if data.suffix == ".csv":
            data_table += '\ntarget = "target"\ntest_size = 0.3\nscale = "standard"'
        layers = ", ".join(f'"{name}"' for name in row.layers)
        model_table = f'file = "{row.name}.keras"\nlayers = [{layers}]'
    text = f"""description = "{row.title}"

[data]
{data_table}

[model]
{model_table}

[space.regularizer]
kinds = ["l2"]
strengths = [{strengths}]
target = "kernel"

[search]
strategy = "grid"
objective = "val_accuracy"
repeats = {row.repeats}
seed = 0

[training]
epochs = {row.epochs}
batch_size = {row.batch_size}

[early_stopping]
monitor = "val_loss"
patience = {row.patience}
restore_best_weights = true

[evaluation]
protocol = "tutorial"
baseline = false
"""
    path = folder / f"{row.name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def prepare(row: Row, folder: Path) -> Path:
    """Writes the row's data, model and search file into ``folder``; returns the search file."""
    folder.mkdir(parents=True, exist_ok=True)
    data = None
    if row.name != "moons":
        data = write_data(row, folder)
        x_train = read_data(row, folder)[0]
        architecture(row.name, None, tuple(x_train.shape[1:])).save(folder / f"{row.name}.keras")
    (folder / "row.json").write_text(json.dumps(dataclasses.asdict(row)), encoding="utf-8")
    return search_file(row, folder, data)


# --- side (a): stock Keras Tuner, run as ``python peers.py --keras-tuner FOLDER`` ---

def keras_tuner_side(folder: Path) -> None:
    """GridSearch + model.fit + EarlyStopping over the row's grid; writes keras_tuner.json."""
    import keras
    import keras_tuner as kt

    imported = time.time() - float(os.environ[LAUNCHED])
    row = Row(**{k: tuple(v) if isinstance(v, list) else v for k, v in
                 json.loads((folder / "row.json").read_text(encoding="utf-8")).items()})
    x_train, y_train, x_test, y_test = read_data(row, folder)
    shape = tuple(x_train.shape[1:])

    def build(hp: kt.HyperParameters) -> keras.Model:
        return architecture(row.name, hp.Choice("l2", list(row.strengths)), shape)

    class Epochs(keras.callbacks.Callback):  # counts the epochs trained, for the table
        count = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            Epochs.count += 1

    keras.utils.set_random_seed(0)
    tuner = kt.GridSearch(build, objective="val_accuracy", executions_per_trial=row.repeats, seed=0,
                          directory=str(folder / "keras_tuner"), project_name=row.name, overwrite=True)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=row.patience, restore_best_weights=True)
    tuner.search(x_train, y_train, validation_data=(x_test, y_test), epochs=row.epochs, batch_size=row.batch_size,
                 callbacks=[stop, Epochs()], verbose=0)
    trials = tuner.oracle.get_best_trials(num_trials=len(row.strengths))
    result = {"imports": imported, "epochs": Epochs.count,
              "pick": trials[0].hyperparameters.get("l2"),
              "scores": {str(t.hyperparameters.get("l2")): t.score for t in trials}}
    (folder / "keras_tuner.json").write_text(json.dumps(result), encoding="utf-8")


# --- the parent: run both sides, read what they left ---

def timed(command: list[str], folder: Path, log: str) -> tuple[float, float]:
    """(launch time, wall seconds) of one fresh process; stops the benchmark if it fails."""
    launched = time.time()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", LAUNCHED: repr(launched)}
    start = time.perf_counter()
    with open(folder / log, "wb") as out:
        code = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
    seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"{' '.join(command)} exited {code}; see {folder / log}")
    return launched, seconds


def regsearch_timeline(results: Path, launched: float, seconds: float) -> dict[str, float]:
    """Where a regsearch process's time went, from its files' modification times."""
    def mtime(path: Path) -> float:
        return path.stat().st_mtime - launched

    trial_files = [p for p in (results / "tuner").glob("*/trial_*/*") if p.is_file()]
    locked = mtime(results / ".lock")
    opened = mtime(results / "tuner" / "settings.json")
    trained = max(mtime(p) for p in trial_files)
    reported = max(mtime(p) for p in results.rglob("*") if p.is_file())
    return {"start-up": locked, "data+model": opened - locked, "training": trained - opened,
            "report": reported - trained, "exit": seconds - reported}


def agreement(summary: Any, picks: tuple[float, float]) -> tuple[str, str]:
    """regsearch's mean validation accuracy of both picks, and whether they agree within seed noise."""
    rows = [summary.loc[[math.isclose(s, pick, rel_tol=1e-6) for s in summary["param_strength"]]].iloc[0]
            for pick in picks]
    text = " / ".join(f"{r.mean_val_accuracy:.3f}±{r.std_val_accuracy:.3f}" for r in rows)
    if math.isclose(*picks, rel_tol=1e-6):
        return text, "same"
    (a, b) = rows
    error = math.sqrt(a.std_val_accuracy ** 2 / a.n_runs + b.std_val_accuracy ** 2 / b.n_runs)
    within = abs(a.mean_val_accuracy - b.mean_val_accuracy) <= 2 * error
    return text, "within noise" if within else "differs"


def run_row(row: Row, folder: Path, fixed: bool) -> dict[str, Any]:
    import pandas as pd

    toml = prepare(row, folder)
    python = sys.executable
    launched, kt_seconds = timed([python, str(HERE), "--keras-tuner", str(folder)], folder, "kt.log")
    kt = json.loads((folder / "keras_tuner.json").read_text(encoding="utf-8"))
    launched, rs_seconds = timed([python, "-m", "regsearch", str(toml), "--results", "results", "--quiet"],
                                 folder, "regsearch.log")
    results = folder / "results" / row.name
    where = regsearch_timeline(results, launched, rs_seconds)
    summary = pd.read_csv(results / "summary.csv")
    trials = pd.read_csv(results / "trials.csv")
    rs_pick = float(summary.iloc[0]["param_strength"])
    scores, agree = agreement(summary, (rs_pick, float(kt["pick"])))
    outcome = {"row": row, "kt_seconds": kt_seconds, "rs_seconds": rs_seconds, "kt": kt, "rs_pick": rs_pick,
               "scores": scores, "agree": agree, "where": where, "rs_epochs": int(trials["epochs_run"].sum())}
    if fixed:
        launched, seconds = timed([python, "-m", "regsearch", str(toml), "--results", "fixed", "--quiet",
                                   "--epochs", "1"], folder, "fixed.log")
        outcome["fixed"] = regsearch_timeline(folder / "fixed" / row.name, launched, seconds)["training"]
    return outcome


def show(outcomes: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=220)
    table = Table(title=f"Keras Tuner GridSearch + model.fit against python -m regsearch, fresh processes "
                        f"({os.cpu_count()} cores)")
    for column in ("row", "grid x repeats, epochs (patience)", "keras-tuner s", "regsearch s", "ratio",
                   "picks (kt / rs)", "rs val acc of rs / kt pick", "agree", "epochs trained (kt / rs)"):
        table.add_column(column, justify="right" if column.endswith("s") or column == "ratio" else "left")
    for o in outcomes:
        row = o["row"]
        table.add_row(row.name, f"{len(row.strengths)} x {row.repeats}, {row.epochs} ({row.patience})",
                      f"{o['kt_seconds']:.1f}", f"{o['rs_seconds']:.1f}", f"{o['kt_seconds'] / o['rs_seconds']:.1f}x",
                      f"{float(o['kt']['pick']):.0e} / {o['rs_pick']:.0e}", o["scores"], o["agree"],
                      f"{o['kt']['epochs']} / {o['rs_epochs']}")
    console.print(table)
    where = Table(title="where regsearch's time went (seconds, from its files' times)")
    for column in ("row", "start-up", "data+model", "training", "of which fixed (--epochs 1)", "epochs",
                   "us / member-epoch", "report", "exit", "kt imports"):
        where.add_column(column, justify="right")
    for o in outcomes:
        w, fixed = o["where"], o.get("fixed")
        epochs = w["training"] - fixed if fixed is not None else None
        where.add_row(o["row"].name, *(f"{w[k]:.1f}" for k in ("start-up", "data+model", "training")),
                      "-" if fixed is None else f"{fixed:.1f}", "-" if epochs is None else f"{epochs:.1f}",
                      "-" if epochs is None else f"{1e6 * epochs / o['rs_epochs']:.0f}",
                      f"{w['report']:.1f}", f"{w['exit']:.1f}", f"{o['kt']['imports']:.1f}")
    console.print(where)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--epochs", type=int, help="every row's epochs (default: each row's own)")
    parser.add_argument("--repeats", type=int, help="every row's runs per configuration (default: each row's own)")
    parser.add_argument("--patience", type=int, help="every row's early-stopping patience (default: each row's own)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 strengths, 1 run, 5 epochs, little data")
    parser.add_argument("--no-fixed", action="store_true", help="skip the --epochs 1 run that times fixed costs")
    parser.add_argument("--keep", type=Path, help="write the rows' folders here (default: a temporary folder)")
    parser.add_argument("--keras-tuner", type=Path, help=argparse.SUPPRESS)  # the child process of side (a)
    args = parser.parse_args(argv)
    if args.keras_tuner:
        keras_tuner_side(args.keras_tuner)
        return 0
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown or not names:
        parser.error(f"--rows: each of {', '.join(ROWS)}; got {args.rows!r}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = args.keep or Path(tempfile.mkdtemp(prefix="regsearch-peers-"))
    print(f"folders in {work}", flush=True)
    outcomes = []
    for name in names:
        row = quick(FULL[name]) if args.quick else FULL[name]
        row = dataclasses.replace(row, epochs=args.epochs or row.epochs, repeats=args.repeats or row.repeats,
                                  patience=args.patience or row.patience)
        started = time.perf_counter()
        outcomes.append(run_row(row, work / name, fixed=not args.no_fixed))
        print(f"{name} done in {time.perf_counter() - started:.0f} s", flush=True)
    show(outcomes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
