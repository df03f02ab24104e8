"""Named datasets for regularization searches, all generated or bundled with scikit-learn.

Nothing here downloads: every dataset is made by a scikit-learn generator, by
numpy from a seed, or loaded from scikit-learn's bundled files. Rows come
shuffled, so the tutorials' split (the first rows train, the rest test) is a
fair split: ``load_dataset("moons")`` trains on the first 30 of 100 rows and
tests on the last 70, as the tutorials do. A user's own table comes in through
``regsearch.datafiles.load_file`` as the same ``Split``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regsearch.errors import SettingError, one_of
from regsearch.scaling import Standardization

# scikit-learn (seconds to import) is imported by the generators that use it: a search file's dataset name
# is checked without it.

__all__ = ["TASKS", "Split", "dataset_descriptions", "dataset_names", "load_dataset"]

TASKS = ("binary", "multiclass", "regression")

N_DIGITS = 1797  # rows in scikit-learn's bundled 8x8 digits
SEQUENCE_LENGTH = 20
SEQUENCE_VOCABULARY = 20
# Token 0 is left free for padding (Embedding(mask_zero=True)); 1 and 2 are the markers.
FIRST_MARKER, SECOND_MARKER, FIRST_FILLER = 1, 2, 3


@dataclass(frozen=True, eq=False)
class Split:
    """A dataset split into train and test rows.

    Attributes:
        name: Dataset name, as given to ``load_dataset``.
        x_train: Training inputs (float32; int32 tokens for ``sequence``).
        y_train: Training labels (int32 class indices).
        x_test: Test inputs; the tutorials also use them as validation data.
        y_test: Test labels.
        input_shape: Shape of one input row, e.g. ``(2,)`` or ``(8, 8, 1)``.
        n_classes: Number of classes; 2 means one sigmoid output fits; 0 for
            regression.
        vocab_size: Number of distinct tokens for token inputs, else None.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; left out, it
            follows ``n_classes`` (binary for 2 classes, else multiclass), as
            every named dataset is classification. Regression labels are float32.
        feature_names: Column names of the inputs when read from a table, else None.
        target_name: Column name of the labels when read from a table, else None.
        class_names: The original labels in class-index order when they were not
            already 0..n_classes-1 (strings, booleans, other integers), else None.
        scaling: The standard scaling fitted on the training rows, when the inputs
            were scaled (``x_train`` and ``x_test`` hold the scaled rows), else None.
        test_rows: Where the test rows came from: their 0-based positions among the
            file's data rows (a table's rows, a .npz's ``x``), in ``x_test``'s order;
            None for the named datasets.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    input_shape: tuple[int, ...]
    n_classes: int
    vocab_size: int | None = None
    task: str = ""
    feature_names: tuple[str, ...] | None = None
    target_name: str | None = None
    class_names: tuple[Any, ...] | None = None
    scaling: Standardization | None = None
    test_rows: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.task:
            # frozen: the derived default goes in through object.__setattr__.
            object.__setattr__(self, "task", "binary" if self.n_classes == 2 else "multiclass")
        if self.task not in TASKS:
            raise ValueError(f"Split.task must be {one_of(TASKS)}; got {self.task!r}.")

    def unscaled(self) -> Split:
        """The same split with its inputs in the file's units (itself when they were not scaled)."""
        if self.scaling is None:
            return self
        return dataclasses.replace(self, x_train=self.scaling.invert(self.x_train).astype(np.float32),
                                   x_test=self.scaling.invert(self.x_test).astype(np.float32), scaling=None)

    @property
    def n_train(self) -> int:
        """Number of training rows."""
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        """Number of test rows."""
        return len(self.x_test)


@dataclass(frozen=True)
class _Dataset:
    description: str
    make: Callable[[int, float, int], tuple[np.ndarray, np.ndarray]]
    n_samples: int
    noise: float
    train_size: int
    n_classes: int
    max_samples: int | None = None
    max_noise: float | None = None
    vocab_size: int | None = None


def _moons(n_samples: int, noise: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as sk_datasets

    return sk_datasets.make_moons(n_samples=n_samples, noise=noise, random_state=random_state)


def _circles(n_samples: int, noise: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as sk_datasets

    return sk_datasets.make_circles(n_samples=n_samples, noise=noise, random_state=random_state)


def _blobs(n_samples: int, noise: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as sk_datasets

    x, y = sk_datasets.make_blobs(
        n_samples=n_samples,
        centers=[(-2.0, -2.0), (2.0, 2.0)],
        cluster_std=noise,
        random_state=random_state,
    )
    return x, y


def _rings(n_samples: int, noise: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(random_state)
    n_blob = n_samples // 2
    n_ring = n_samples - n_blob
    blob = rng.normal(0.0, noise, size=(n_blob, 2))
    angle = rng.uniform(0.0, 2 * np.pi, size=n_ring)
    radius = 5.0 + rng.normal(0.0, noise, size=n_ring)
    ring = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    x = np.concatenate([blob, ring])
    y = np.concatenate([np.zeros(n_blob), np.ones(n_ring)])
    # Shuffled so that a first-N split sees both classes.
    order = rng.permutation(n_samples)
    return x[order], y[order]


def _digits(n_samples: int, noise: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as sk_datasets

    # The bundled digits cycle through the classes 0..9, so the first N rows
    # are close to stratified; no shuffling keeps the split easy to reason about.
    bunch = sk_datasets.load_digits()
    images = bunch.images[:n_samples] / 16.0
    if noise > 0:
        rng = np.random.default_rng(random_state)
        images = np.clip(images + rng.normal(0.0, noise, size=images.shape), 0.0, 1.0)
    return images[..., np.newaxis], bunch.target[:n_samples]


def _sequence(n_samples: int, noise: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(random_state)
    tokens = rng.integers(FIRST_FILLER, SEQUENCE_VOCABULARY, size=(n_samples, SEQUENCE_LENGTH))
    # Each sequence holds both markers once, at two random positions; the label
    # says whether marker 1 comes before marker 2, which needs order memory.
    positions = np.argsort(rng.random((n_samples, SEQUENCE_LENGTH)), axis=1)[:, :2]
    rows = np.arange(n_samples)
    tokens[rows, positions[:, 0]] = FIRST_MARKER
    tokens[rows, positions[:, 1]] = SECOND_MARKER
    labels = (positions[:, 0] < positions[:, 1]).astype(np.int64)
    # Flipped labels give the network something to memorize: a train/test gap.
    flip = rng.random(n_samples) < noise
    labels[flip] = 1 - labels[flip]
    return tokens, labels


_DATASETS: dict[str, _Dataset] = {
    "moons": _Dataset(
        "two interleaving half circles, make_moons(noise=0.2); 30 train / 70 test",
        _moons,
        n_samples=100,
        noise=0.2,
        train_size=30,
        n_classes=2,
    ),
    "circles": _Dataset(
        "a circle inside a circle, make_circles(noise=0.1); 30 train / 70 test",
        _circles,
        n_samples=100,
        noise=0.1,
        train_size=30,
        n_classes=2,
    ),
    "blobs": _Dataset(
        "two Gaussian blobs at (-2,-2) and (2,2), linearly separable; 30 train / 70 test",
        _blobs,
        n_samples=100,
        noise=1.0,
        train_size=30,
        n_classes=2,
    ),
    "rings": _Dataset(
        "a Gaussian blob at the origin (0) inside a noisy ring of radius 5 (1); 30 train / 70 test",
        _rings,
        n_samples=100,
        noise=1.0,
        train_size=30,
        n_classes=2,
    ),
    "digits": _Dataset(
        "scikit-learn's bundled 8x8 handwritten digits as (8, 8, 1) images in [0, 1], "
        "10 classes; first 500 train / 1297 test",
        _digits,
        n_samples=N_DIGITS,
        noise=0.0,
        train_size=500,
        n_classes=10,
        max_samples=N_DIGITS,
    ),
    "sequence": _Dataset(
        f"int32 token sequences of length {SEQUENCE_LENGTH} over {SEQUENCE_VOCABULARY} tokens; "
        "label: marker 1 comes before marker 2 (10% of labels flipped); 200 train / 400 test",
        _sequence,
        n_samples=600,
        noise=0.1,
        train_size=200,
        n_classes=2,
        max_noise=0.5,
        vocab_size=SEQUENCE_VOCABULARY,
    ),
}


_OPTIONS = ("n_samples", "noise", "random_state")


def dataset_names() -> list[str]:
    """Returns the names ``load_dataset`` accepts."""
    return list(_DATASETS)


def dataset_descriptions() -> dict[str, str]:
    """Returns a one-line description per dataset name."""
    return {name: spec.description for name, spec in _DATASETS.items()}


def load_dataset(
    name: str,
    *,
    train_size: int | float | None = None,
    **options: Any,
) -> Split:
    """Makes a dataset and splits it: the first rows train, the rest test.

    Args:
        name: One of ``dataset_names()``.
        train_size: Training rows: an int (the first N rows) or a fraction in
            (0, 1) of the rows. Defaults per dataset: 30 of the 100 rows of
            moons, circles, blobs and rings (the tutorials' split), 500 of the
            1797 digits, 200 of the 600 sequences; the same fraction when
            ``n_samples`` is changed.
        **options: ``n_samples``, ``noise`` and ``random_state``, below.

    Options:
        n_samples: Rows to make (digits: the first N of the 1797 bundled images).
        noise: Noise level: the generator's noise for moons and circles, the
            standard deviation of blobs and rings, of additive pixel noise for
            digits (default 0), or the fraction of flipped labels for sequence.
        random_state: Seed (default 1); the same arguments give the same arrays.

    Returns:
        The split, with float32 inputs (int32 tokens for ``sequence``) and
        int32 labels.

    Raises:
        SettingError: For an unknown name or option, or an option out of range.
    """
    where = f"load_dataset({name!r})"
    spec = _DATASETS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise SettingError("name", one_of(_DATASETS), name, where="load_dataset")
    for option in options:
        if option not in _OPTIONS:
            raise SettingError("option", one_of(_OPTIONS), option, where=where)
    n = _check_n_samples(spec, options.get("n_samples", spec.n_samples), where)
    level = _check_noise(spec, options.get("noise", spec.noise), where)
    random_state = options.get("random_state", 1)
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        raise SettingError("random_state", "an int", random_state, where=where)
    if train_size is None:
        # Same fraction as the default split when n_samples is changed.
        train_size = spec.train_size if n == spec.n_samples else spec.train_size / spec.n_samples
    n_train = _train_rows(train_size, n, where)

    x, y = spec.make(n, level, int(random_state))
    x = x.astype(np.int32 if spec.vocab_size else np.float32)
    y = y.astype(np.int32)
    return Split(
        name=name,
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        input_shape=tuple(int(d) for d in x.shape[1:]),
        n_classes=spec.n_classes,
        vocab_size=spec.vocab_size,
    )


def _check_n_samples(spec: _Dataset, value: Any, where: str) -> int:
    upper = spec.max_samples
    allowed = f"an int in [2, {upper}]" if upper else "an int >= 2"
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise SettingError("n_samples", allowed, value, where=where)
    if value < 2 or (upper is not None and value > upper):
        raise SettingError("n_samples", allowed, value, where=where)
    return int(value)


def _check_noise(spec: _Dataset, value: Any, where: str) -> float:
    upper = spec.max_noise
    allowed = f"a number in [0, {upper}]" if upper is not None else "a number >= 0"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise SettingError("noise", allowed, value, where=where)
    if not value >= 0 or (upper is not None and value > upper):  # `not >=` also catches NaN
        raise SettingError("noise", allowed, value, where=where)
    return float(value)


def _train_rows(train_size: Any, n_samples: int, where: str) -> int:
    """Turns ``train_size`` into a row count that leaves at least one test row."""
    allowed = f"an int in [1, {n_samples - 1}] or a fraction in (0, 1) of {n_samples} rows"
    if isinstance(train_size, bool) or not isinstance(train_size, numbers.Real):
        raise SettingError("train_size", allowed, train_size, where=where)
    if isinstance(train_size, numbers.Integral):
        rows = int(train_size)
    elif 0 < train_size < 1:
        rows = int(round(train_size * n_samples))
    else:
        raise SettingError("train_size", allowed, train_size, where=where)
    if not 1 <= rows <= n_samples - 1:
        raise SettingError("train_size", allowed, train_size, where=where)
    return rows
