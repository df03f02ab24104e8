"""Issue 27's GPU figures in one call: JAX populations on the device, the peers CNN row, distributed workers.

Usage: KERAS_BACKEND=jax python benchmarks/gpu.py [--parts moons,cnn,peers,distributed] [--quick]
       [--epochs 100] [--sizes 1 10 100 1000 10000] [--loop-sizes 1 10 100] [--cnn-sizes 16 64 256 1024]

Made for the device machine (JAX with CUDA, no TensorFlow: regsearch runs its JAX backend without it), and
runnable on a CPU (``--quick``: small sizes, the check before a device's minutes are spent). Each part prints a
Markdown table:

1. ``moons``: P members of the moons preset's network (Dense(500, relu) -> Dense(1, sigmoid), Adam, an L2
   strength per member from 1e-6 to 1e-1, 30 training and 70 validation rows, batches of 32), ``--epochs`` epochs
   each without early stopping, by ``train_population`` in ``vmap`` mode at each of ``--sizes`` and in ``loop``
   mode at each of ``--loop-sizes`` (the loop runs the members one after another: on a GPU its cost grows with P).
   The first call traces and compiles; a second call on fresh models of the same structure reuses the program,
   and its time over P x epochs is the steady cost per member-epoch.
2. ``cnn``: the peers benchmark's digits CNN (``benchmarks/peers.py``, its 1257 training and 540 validation rows
   of 8x8 digits), ``vmap``, at each of ``--cnn-sizes`` up to the members that fit in the device's memory at once
   (``regsearch.population.memory.members_that_fit``, printed), same measures.
3. ``peers``: ``benchmarks/peers.py --rows cnn`` (Keras Tuner + ``model.fit`` against ``python -m regsearch``,
   each a fresh process), ``--quick`` sizes with ``--quick``.
4. ``distributed``: ``benchmarks/distributed.py --workers 1 2 4 --engine population`` on moons_l2 at
   ``--epochs`` epochs and 2 repeats (one process against a chief with 1, 2 and 4 workers on the machine's cores).

On the device machine (Python 3.12 with JAX, pandas, seaborn, scikit-learn, TensorBoard and the rest; no Keras,
Keras Tuner or TensorFlow), the missing wheels travel (``../.library/device/README.md``): here, in the
repository's root, ``echo /.whl/ >> .git/info/exclude`` and ``python3 -m pip download --no-deps
--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform
manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl keras==3.15.1
keras-tuner==1.4.8 kt-legacy namex optree`` (the versions of this checkout's environment); there, with ``.whl``
carried, ``python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export
PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 && python3 benchmarks/gpu.py | tee $OUT/gpu.md``.
Checked without TensorFlow on a CPU (a ``sitecustomize`` that hides it, in this process and the parts'
subprocesses): ``--quick`` ran every part in 2 min 20 s on 2 cores (2026-12-07). A device run's length is not
measured yet; ``--parts moons,cnn`` and ``--parts peers,distributed`` split it in two calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import peers  # noqa: E402
from regsearch import population  # noqa: E402
from regsearch.population import memory  # noqa: E402

PARTS = ("moons", "cnn", "peers", "distributed")


def device() -> str:
    import jax

    first = jax.devices()[0]
    return f"{first.platform}: {first.device_kind} (jax {jax.__version__}, {os.cpu_count()} cores)"


def members(name: str, count: int, input_shape: tuple[int, ...]) -> list[keras.Model]:
    """``count`` compiled models of a peers row, seeds 0..count-1, an L2 strength each from 1e-6 to 1e-1."""
    strengths = np.logspace(-6, -1, max(count, 2))
    models = []
    for k in range(count):
        keras.utils.set_random_seed(k)
        models.append(peers.architecture(name, float(strengths[k]), input_shape))
    return models


def timed_population(name: str, data: tuple, size: int, epochs: int, mode: str) -> tuple[float, float]:
    """Seconds of a first population call (trace, compile, epochs) and of a second one on fresh models."""
    x_train, y_train, x_val, y_val = data
    population._PROGRAMS.clear()
    seconds = []
    for _ in range(2):
        models = members(name, size, tuple(x_train.shape[1:]))
        start = time.perf_counter()
        population.train_population(models, (x_train, y_train), (x_val, y_val), epochs=epochs, batch_size=32,
                                    seeds=list(range(size)), mode=mode)
        seconds.append(time.perf_counter() - start)
        del models
        keras.backend.clear_session(free_memory=False)
    return seconds[0], seconds[1]


def table(name: str, data: tuple, runs: list[tuple[str, int]], epochs: int) -> None:
    print("| mode | members | first call (s) | second call (s) | us per member-epoch (second call) |")
    print("|---|---:|---:|---:|---:|")
    for mode, size in runs:
        first, second = timed_population(name, data, size, epochs, mode)
        print(f"| {mode} | {size} | {first:.2f} | {second:.2f} | {1e6 * second / (size * epochs):.2f} |", flush=True)


def row_data(name: str, quick: bool, folder: Path) -> tuple:
    row = peers.FULL[name]
    row = peers.quick(row) if quick else row
    peers.prepare(row, folder)
    return peers.read_data(row, folder)


def part_moons(args: argparse.Namespace, folder: Path) -> None:
    data = row_data("moons", args.quick, folder / "moons")
    print(f"\n## moons, {args.epochs} epochs a member\n")
    table("moons", data, [("vmap", p) for p in args.sizes] + [("loop", p) for p in args.loop_sizes], args.epochs)


def part_cnn(args: argparse.Namespace, folder: Path) -> None:
    data = row_data("cnn", args.quick, folder / "cnn")
    probe = members("cnn", 1, tuple(data[0].shape[1:]))[0]
    probe._symbolic_build(data_batch=(data[0][:32], data[1][:32]))
    fit = memory.members_that_fit(probe, memory.step_rows(32, len(data[0]), len(data[2])), "gpu.py")
    sizes = [p for p in args.cnn_sizes if p <= fit] or [fit]
    print(f"\n## digits CNN, {args.epochs} epochs a member; {fit} members fit in memory at once\n")
    table("cnn", data, [("vmap", p) for p in sizes], args.epochs)


def part_peers(args: argparse.Namespace, folder: Path) -> None:
    print("\n## peers: the CNN row\n", flush=True)
    command = [sys.executable, str(HERE / "peers.py"), "--rows", "cnn", *(["--quick"] if args.quick else [])]
    subprocess.run(command, check=True)


def part_distributed(args: argparse.Namespace, folder: Path) -> None:
    workers = ["1", "2"] if args.quick else ["1", "2", "4"]
    print(f"\n## distributed: one process against a chief with {', '.join(workers)} workers\n", flush=True)
    command = [sys.executable, str(HERE / "distributed.py"), "--search", "moons_l2", "--epochs", str(args.epochs),
               "--repeats", "1" if args.quick else "2", "--engine", "population", "--workers", *workers]
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes and data: a check on a CPU")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    parser.add_argument("--loop-sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--cnn-sizes", type=int, nargs="+", default=[16, 64, 256, 1024])
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: one or more of {', '.join(PARTS)}; got {', '.join(unknown)}")
    if keras.backend.backend() != "jax":
        raise SystemExit("gpu.py measures the JAX backend (KERAS_BACKEND=jax)")
    if args.quick:
        args.epochs, args.sizes, args.loop_sizes, args.cnn_sizes = 5, [1, 10], [1, 2], [2, 4]
    print(f"# regsearch on {device()}")
    with tempfile.TemporaryDirectory() as folder:
        for part in parts:
            start = time.perf_counter()
            globals()[f"part_{part}"](args, Path(folder))
            print(f"\n({part}: {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
