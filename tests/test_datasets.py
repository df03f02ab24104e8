"""Tests for regsearch.datasets: shapes, dtypes, splits, determinism and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from regsearch.datasets import Split, dataset_descriptions, dataset_names, load_dataset
from regsearch.errors import SettingError

# name -> (input_shape, n_classes, default train rows, default test rows, x dtype)
EXPECTED = {
    "moons": ((2,), 2, 30, 70, np.float32),
    "circles": ((2,), 2, 30, 70, np.float32),
    "blobs": ((2,), 2, 30, 70, np.float32),
    "rings": ((2,), 2, 30, 70, np.float32),
    "digits": ((8, 8, 1), 10, 500, 1297, np.float32),
    "sequence": ((20,), 2, 200, 400, np.int32),
}


def test_every_dataset_is_listed_and_described() -> None:
    assert dataset_names() == list(EXPECTED)
    descriptions = dataset_descriptions()
    assert list(descriptions) == dataset_names()
    assert all(text and "\n" not in text for text in descriptions.values())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shapes_dtypes_and_default_split(name: str) -> None:
    input_shape, n_classes, n_train, n_test, x_dtype = EXPECTED[name]
    split = load_dataset(name)
    assert isinstance(split, Split)
    assert split.name == name
    assert split.input_shape == input_shape
    assert split.n_classes == n_classes
    assert split.x_train.shape == (n_train, *input_shape)
    assert split.x_test.shape == (n_test, *input_shape)
    assert split.y_train.shape == (n_train,) and split.y_test.shape == (n_test,)
    assert split.x_train.dtype == x_dtype and split.x_test.dtype == x_dtype
    assert split.y_train.dtype == np.int32
    labels = np.concatenate([split.y_train, split.y_test])
    assert set(np.unique(labels)) == set(range(n_classes))
    # The first rows already hold every class: the first-N split is fair.
    assert set(np.unique(split.y_train)) == set(range(n_classes))


def test_moons_is_the_tutorial_data_first_30_rows_train() -> None:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=100, noise=0.2, random_state=1)
    split = load_dataset("moons")
    np.testing.assert_allclose(split.x_train, x[:30].astype(np.float32))
    np.testing.assert_allclose(split.x_test, x[30:].astype(np.float32))
    np.testing.assert_array_equal(split.y_test, y[30:])


def test_digits_are_scaled_images() -> None:
    split = load_dataset("digits", n_samples=100, train_size=0.5)
    assert split.x_train.shape == (50, 8, 8, 1)
    assert split.x_train.min() >= 0.0 and split.x_train.max() <= 1.0


def test_rings_put_the_blob_inside_the_ring() -> None:
    split = load_dataset("rings", n_samples=400)
    x = np.concatenate([split.x_train, split.x_test])
    y = np.concatenate([split.y_train, split.y_test])
    radius = np.linalg.norm(x, axis=1)
    assert np.median(radius[y == 0]) < 2 < 4 < np.median(radius[y == 1]) < 6


def test_sequence_tokens_hold_both_markers_once() -> None:
    split = load_dataset("sequence", noise=0.0)
    assert split.vocab_size == 20
    tokens = split.x_train
    assert tokens.min() >= 1 and tokens.max() < split.vocab_size
    assert ((tokens == 1).sum(axis=1) == 1).all() and ((tokens == 2).sum(axis=1) == 1).all()
    first_before_second = (tokens == 1).argmax(axis=1) < (tokens == 2).argmax(axis=1)
    np.testing.assert_array_equal(split.y_train, first_before_second.astype(np.int32))


@pytest.mark.parametrize(
    ("train_size", "n_train"), [(10, 10), (0.5, 50), (0.3, 30), (99, 99), (1, 1)]
)
def test_train_size_as_rows_or_fraction(train_size: int | float, n_train: int) -> None:
    split = load_dataset("moons", train_size=train_size)
    assert (split.n_train, split.n_test) == (n_train, 100 - n_train)


def test_default_split_keeps_its_fraction_when_n_samples_changes() -> None:
    assert load_dataset("moons", n_samples=1000).n_train == 300


@pytest.mark.parametrize("name", list(EXPECTED))
def test_same_arguments_same_arrays_other_seed_other_arrays(name: str) -> None:
    first, second = load_dataset(name), load_dataset(name)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    if name != "digits":  # digits without noise are the bundled images themselves
        other = load_dataset(name, random_state=2)
        assert not np.array_equal(first.x_train, other.x_train)


@pytest.mark.parametrize(
    ("name", "kwargs", "fragment"),
    [
        ("mnist", {}, "'name' must be one of 'moons', 'circles'"),
        ("moons", {"train_size": 0}, "'train_size' must be an int in [1, 99]"),
        ("moons", {"train_size": 100}, "got 100."),
        ("moons", {"train_size": 1.0}, "or a fraction in (0, 1) of 100 rows; got 1.0."),
        ("moons", {"train_size": -0.5}, "'train_size'"),
        ("moons", {"train_size": "30"}, "got '30'."),
        ("moons", {"train_size": True}, "got True."),
        ("moons", {"n_samples": 20, "train_size": 30}, "'train_size' must be an int in [1, 19]"),
        ("moons", {"n_samples": 1}, "'n_samples' must be an int >= 2; got 1."),
        ("digits", {"n_samples": 5000}, "'n_samples' must be an int in [2, 1797]"),
        ("moons", {"noise": -0.1}, "'noise' must be a number >= 0"),
        ("sequence", {"noise": 0.9}, "'noise' must be a number in [0, 0.5]"),
        ("moons", {"random_state": "a"}, "'random_state' must be an int"),
        ("moons", {"seed": 3}, "'option' must be one of 'n_samples', 'noise', 'random_state'"),
    ],
)
def test_bad_arguments_name_the_setting(name: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(SettingError) as caught:
        load_dataset(name, **kwargs)
    assert fragment in str(caught.value)
    assert "load_dataset" in str(caught.value)
