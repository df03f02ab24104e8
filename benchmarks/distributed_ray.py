"""Keras Tuner's chief/worker mode (what regsearch uses) against Ray actors, on the same search, side by side.

    pip install ray   # not a regsearch dependency: only this comparison needs it
    python benchmarks/distributed_ray.py [--search moons_l2] [--epochs 300] [--repeats 2] [--engine sequential]

For W = 1 and 2 workers on this machine, one run each of:

- Keras Tuner: the README's recipe, a chief (``--chief --workers W``) and W
  ``--worker`` processes sharing one results folder (``benchmarks/distributed.py``);
- Ray: a driver process that starts W Ray actors (one CPU each; each loads the
  data once) and hands each phase's configurations to them through an
  ``ActorPool``, each configuration trained by regsearch's own tuner, then
  derives the fine grid from the coarse runs exactly as ``run_search`` does.

Both are timed from their processes' start to their exit (Ray's driver writes no
report; the Keras Tuner chief's report time is printed beside). The runs of
every variant are compared with one process's ``trials.csv`` by configuration
and repeat (under Ray each configuration is a tuner of its own, its runs renamed
with the id Keras Tuner's grid gives it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from distributed import run, timeline  # noqa: E402 - the Keras Tuner recipe, as benchmarks/distributed.py runs it

COMPARED = ["phase", "trial_id", "param_strength", "repeat", "seed", "status", "train_accuracy", "test_accuracy", "val_accuracy",
            "train_loss", "test_loss", "val_loss", "best_epoch", "epochs_run"]


def drive(args: argparse.Namespace) -> None:
    """The Ray driver: every phase's configurations to ``args.workers`` actors; the runs to ``runs.csv``."""
    import ray
    from ray.util import ActorPool

    from regsearch import search
    from regsearch.definition import load_definition
    from regsearch.definition.build import load_data, make_hypermodel
    from regsearch.oracles import grid_configurations
    from regsearch.tuners import read_runs

    definition = dataclasses.replace(load_definition(args.search).with_epochs(args.epochs), repeats=args.repeats)
    folder = Path(args.folder)
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")

    @ray.remote(num_cpus=1)
    class Trainer:
        def __init__(self, definition: object, engine: str) -> None:
            self.definition, self.engine = definition, engine
            self.split = load_data(definition)
            self.arguments = search.fit_arguments(definition, self.split)
            self.evaluation = search.evaluation_options(definition, self.split)

        def run(self, phase_definition: object, phase: str, index: int, configuration: dict,
                directory: str) -> list[dict]:
            hypermodel = make_hypermodel(phase_definition, self.split)
            tuner = search._make_tuner(self.definition, hypermodel, phase, Path(directory), None,
                                       {"engine": self.engine, "configurations": [configuration], **self.evaluation})
            tuner.search(self.split.x_train, self.split.y_train, verbose=0, **self.arguments)
            # The id Keras Tuner's grid gives the configuration: the fine grid is chosen by configuration.
            return [{**run, "trial_id": f"{phase}-{index:04d}"} for run in read_runs(tuner)[0]]

    split = load_data(definition)
    pool = ActorPool([Trainer.remote(definition, args.engine) for _ in range(args.workers)])

    def phase(name: str, phase_definition: object) -> list[dict]:
        hypermodel = make_hypermodel(phase_definition, split)
        jobs = [(phase_definition, name, i, values, str(folder / "tuner" / f"{name}-{i}"))
                for i, values in enumerate(grid_configurations(hypermodel))]
        return [run for runs in pool.map_unordered(lambda actor, job: actor.run.remote(*job), jobs) for run in runs]

    records = phase("coarse", definition)
    fine = search.fine_definition(definition, make_hypermodel(definition, split), records)
    if fine is not None:
        records += phase("fine", fine)
    records += phase("baseline", search.baseline_definition(definition))
    pd.DataFrame.from_records(records).to_csv(folder / "runs.csv", index=False)
    ray.shutdown()


def ray_run(folder: Path, args: argparse.Namespace, workers: int) -> float:
    folder.mkdir(parents=True)
    command = [sys.executable, __file__, "--driver", "--workers", str(workers), "--folder", str(folder),
               "--search", args.search, "--epochs", str(args.epochs), "--repeats", str(args.repeats),
               "--engine", args.engine]
    start = time.perf_counter()
    with open(folder / "driver.log", "wb") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=3600,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).returncode
    if code:
        raise SystemExit(f"{folder}: the Ray driver exited with {code}; see driver.log there")
    return time.perf_counter() - start


def compared(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)[COMPARED]
    numbers = frame.select_dtypes("number").columns
    frame[numbers] = frame[numbers].astype("float64")
    return frame.sort_values(["phase", "trial_id", "repeat"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", default="moons_l2")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engine", default="sequential", choices=("sequential", "population"))
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        drive(args)
        return
    work = Path(tempfile.mkdtemp(prefix="regsearch-ray-"))
    print(f"{args.search} --epochs {args.epochs} --repeats {args.repeats} --engine {args.engine} "
          f"({os.cpu_count()} cores); folders in {work}")
    run(work / "one_process", args, 0, args.engine)
    reference = compared(work / "one_process" / "results" / args.search / "trials.csv")
    seconds = {}
    for workers in (1, 2):
        seconds["keras_tuner", workers] = run(work / f"keras_tuner_{workers}", args, workers, args.engine)
        seconds["ray", workers] = ray_run(work / f"ray_{workers}", args, workers)
    for engine in ("keras_tuner", "ray"):
        for workers in (1, 2):
            folder = work / f"{engine}_{workers}"
            if engine == "ray":
                same, note = compared(folder / "runs.csv").equals(reference), ""
            else:
                same = compared(folder / "results" / args.search / "trials.csv").equals(reference)
                note = f"(report {timeline(folder, args.search)[2]:.1f} s of it)"
            print(f"{engine:>12}, {workers} worker{'s' if workers > 1 else ' '}: {seconds[engine, workers]:6.1f} s "
                  f"{note:<20} runs equal one process's: {same}")
        print(f"{engine:>12}: 2 workers / 1 worker {seconds[engine, 2] / seconds[engine, 1]:.2f}")


if __name__ == "__main__":
    main()
