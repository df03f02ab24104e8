"""The search-space vocabulary: values, declared hyperparameters, and what GridSearch makes of them."""

from __future__ import annotations

import keras
import keras_tuner as kt
import pytest

from regsearch import (
    Constraint,
    Decades,
    Dropout,
    FineGrid,
    LogRange,
    Placement,
    Range,
    Regularizer,
    SettingError,
)
from regsearch.space import make_constraint, make_dropout, make_regularizer

DECADES = [0.1, 0.01, 0.001, 0.0001, 1e-05, 1e-06]


def declared(piece) -> tuple[dict, dict]:
    """Resolves a piece on fresh hyperparameters: (configuration, {name: hyperparameter})."""
    hp = kt.HyperParameters()
    config = piece.resolve(hp)
    return config, {h.name: h for h in hp.space}


class _DryGrid(kt.GridSearch):
    """A GridSearch that trains nothing: it records what the oracle proposes."""

    def run_trial(self, trial, *args, **kwargs):
        return 0.0


def grid_values(tmp_path, *pieces) -> list[dict]:
    def build(hp):
        for piece in pieces:
            piece.resolve(hp)
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    tuner = _DryGrid(
        build,
        objective=kt.Objective("score", "min"),
        directory=tmp_path,
        project_name="dry",
        overwrite=True,
    )
    tuner.search()
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    return [t.hyperparameters.values for t in trials]


def test_decades_are_exact_and_ordered():
    assert list(Decades(1e-1, 1e-6).values) == DECADES
    assert list(Decades(1e-6, 1e-1).values) == DECADES[::-1]
    assert Decades(1.0, 1.0).values == (1.0,)


def test_fine_grid_is_log_spaced_around_the_center():
    values = FineGrid(1e-3, n=7).values
    assert values == (0.000316, 0.000464, 0.000681, 0.001, 0.00147, 0.00215, 0.00316)
    assert FineGrid(5e-4, n=1).values == (5e-4,)


def test_fixed_pieces_declare_nothing():
    config, space = declared(Regularizer("l2", 1e-4))
    assert space == {}
    assert config == {"kind": "l2", "strength": 1e-4, "target": "kernel"}
    assert declared(Constraint("max_norm", 3.0))[1] == {}
    assert declared(Dropout("dropout", 0.5))[1] == {}
    assert declared(Placement("before")) == ({"placement": "before"}, {})


def test_default_strengths_are_a_continuous_log_range_and_no_penalty_declares_none():
    """Stock samplers (random, Bayesian, Hyperband) draw new strengths from it for as long as they ask."""
    config, space = declared(Regularizer("l2"))
    (strength,) = space.values()
    assert isinstance(strength, kt.engine.hyperparameters.Float) and strength.step is None
    assert (strength.min_value, strength.max_value, strength.sampling) == (1e-6, 1e-1, "log")
    assert config["strength"] == 1e-6
    assert declared(Regularizer("none")) == ({"kind": "none", "strength": None, "target": "none"}, {})
    _, space = declared(Regularizer(["none", "l1"]))
    assert list(space) == ["kind", "strength"] and space["strength"].sampling == "log"


def test_one_kind_over_decades_is_an_ordered_float_choice():
    config, space = declared(Regularizer("l2", Decades(1e-1, 1e-6)))
    assert list(space) == ["strength"]
    assert space["strength"].values == DECADES
    assert space["strength"].ordered
    assert config["strength"] == 0.1


def test_mixed_kinds_on_a_grid_encode_kind_and_strength_in_one_choice():
    _, space = declared(Regularizer(["none", "l1", "l2", "l1_l2"], [1e-2, 1e-3]))
    assert list(space) == ["regularizer"]
    assert space["regularizer"].values == [
        "none",
        "l1:0.01",
        "l1:0.001",
        "l2:0.01",
        "l2:0.001",
        "l1_l2:0.01:0.01",
        "l1_l2:0.001:0.001",
    ]


def test_l1_l2_with_its_own_l1_grid_searches_every_pair():
    _, space = declared(Regularizer(["l1_l2"], [1e-2, 1e-3], l1_strengths=[1e-4, 1e-5]))
    assert space["regularizer"].values == [
        "l1_l2:0.0001:0.01",
        "l1_l2:0.0001:0.001",
        "l1_l2:1e-05:0.01",
        "l1_l2:1e-05:0.001",
    ]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("none", {"kind": "none", "strength": None, "l1": None, "l2": None}),
        ("l1:0.01", {"kind": "l1", "strength": 0.01, "l1": 0.01, "l2": None}),
        ("l2:0.001", {"kind": "l2", "strength": 0.001, "l1": None, "l2": 0.001}),
        ("l1_l2:0.01:0.001", {"kind": "l1_l2", "strength": 0.001, "l1": 0.01, "l2": 0.001}),
    ],
)
def test_encoded_choices_decode_into_describe_keys(option, expected):
    piece = Regularizer(["none", "l1", "l2", "l1_l2"], [1e-2, 1e-3], l1_strengths=[1e-2])
    hp = kt.HyperParameters()
    piece.resolve(hp)
    hp.values["regularizer"] = option
    assert piece.resolve(hp) == {**expected, "target": "kernel"}


def test_log_range_declares_kind_choice_and_log_float():
    piece = Regularizer(["none", "l1", "l2"], LogRange(1e-6, 1e-1))
    config, space = declared(piece)
    assert list(space) == ["kind", "strength"]
    assert space["kind"].values == ["none", "l1", "l2"]
    strength = space["strength"]
    assert isinstance(strength, kt.engine.hyperparameters.Float)
    assert (strength.min_value, strength.max_value, strength.sampling) == (1e-6, 1e-1, "log")
    assert config["kind"] == "none" and config["strength"] is None  # none ignores strength


def test_l1_l2_log_ranges_declare_a_separate_l1():
    _, space = declared(
        Regularizer(["l1_l2"], LogRange(1e-6, 1e-2), l1_strengths=LogRange(1e-5, 1e-3))
    )
    assert list(space) == ["strength", "l1"]
    assert space["l1"].sampling == "log"


def test_searched_targets_and_placements():
    _, space = declared(Regularizer("l1", 1e-4, target=["kernel", "activity", "kernel+bias"]))
    assert space["target"].values == ["kernel", "activity", "kernel+bias"]
    _, space = declared(Placement(["after", "before"]))
    assert space["placement"].values == ["after", "before"]


def test_constraint_options_and_decoding():
    piece = Constraint(
        ["none", "max_norm", "unit_norm", "non_neg", "min_max_norm"], max_value=[2.0, 3.0], rate=0.5
    )
    config, space = declared(piece)
    assert space["constraint"].values == [
        "none",
        "max_norm:2.0",
        "max_norm:3.0",
        "unit_norm",
        "non_neg",
        "min_max_norm:0.0:2.0:0.5",
        "min_max_norm:0.0:3.0:0.5",
    ]
    assert config == {
        "constraint": "none",
        "max_value": None,
        "min_value": None,
        "rate": None,
        "constraint_target": "kernel",
    }
    hp = kt.HyperParameters()
    piece.resolve(hp)
    hp.values["constraint"] = "min_max_norm:0.0:3.0:0.5"
    config = piece.resolve(hp)
    assert (config["max_value"], config["min_value"], config["rate"]) == (3.0, 0.0, 0.5)
    made = make_constraint(config)
    assert isinstance(made, keras.constraints.MinMaxNorm)
    assert (made.min_value, made.max_value, made.rate) == (0.0, 3.0, 0.5)


def test_constraint_defaults_follow_keras():
    config, _ = declared(Constraint("max_norm"))
    assert config["max_value"] == 2.0
    assert (
        make_constraint(declared(Constraint("unit_norm"))[0]).__class__
        is keras.constraints.UnitNorm
    )
    assert make_constraint(declared(Constraint("non_neg"))[0]).__class__ is keras.constraints.NonNeg
    assert make_constraint(declared(Constraint("none"))[0]) is None


def test_dropout_grid_range_and_layers():
    config, space = declared(
        Dropout(["none", "dropout", "gaussian_noise"], [0.2, 0.5], where=["input", "both"])
    )
    assert space["dropout"].values == [
        "none",
        "dropout:0.2",
        "dropout:0.5",
        "gaussian_noise:0.2",
        "gaussian_noise:0.5",
    ]
    assert space["dropout_where"].values == ["input", "both"]
    assert config == {"dropout_kind": "none", "dropout_rate": None, "dropout_where": None}
    config, space = declared(Dropout("gaussian_dropout", [0.1, 0.3]))
    assert space["dropout_rate"].values == [0.1, 0.3]
    config, space = declared(Dropout(["dropout", "gaussian_dropout"], Range(0.1, 0.6)))
    assert list(space) == ["dropout_kind", "dropout_rate"]
    assert isinstance(
        make_dropout({"dropout_kind": "gaussian_noise", "dropout_rate": 0.3}, "n"),
        keras.layers.GaussianNoise,
    )


@pytest.mark.parametrize(
    ("kind", "cls", "attrs"),
    [
        ("l1", keras.regularizers.L1, {"l1": 0.01}),
        ("l2", keras.regularizers.L2, {"l2": 0.01}),
        ("l1_l2", keras.regularizers.L1L2, {"l1": 0.01, "l2": 0.01}),
    ],
)
def test_make_regularizer(kind, cls, attrs):
    regularizer = make_regularizer(declared(Regularizer(kind, 1e-2))[0])
    assert type(regularizer) is cls
    for name, value in attrs.items():
        assert float(getattr(regularizer, name)) == pytest.approx(value)
    assert make_regularizer(declared(Regularizer("none"))[0]) is None


def test_grid_search_visits_exactly_the_declared_decades(tmp_path):
    values = grid_values(tmp_path, Regularizer("l2", Decades(1e-1, 1e-6)))
    assert [v["strength"] for v in values] == DECADES


def test_grid_search_visits_every_kind_strength_placement_once(tmp_path):
    regularizer = Regularizer(["none", "l1", "l2"], Decades(1e-1, 1e-3), target="activity")
    values = grid_values(tmp_path, regularizer, Placement(["after", "before"]))
    seen = [(v["regularizer"], v["placement"]) for v in values]
    options = ["none", "l1:0.1", "l1:0.01", "l1:0.001", "l2:0.1", "l2:0.01", "l2:0.001"]
    assert sorted(seen) == sorted((o, p) for o in options for p in ("after", "before"))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Decades(0.3, 1e-3), "'start' must be a positive power of ten"),
        (lambda: Decades(1e-1, -1.0), "'stop' must be a positive power of ten"),
        (lambda: FineGrid(0.0), "'center' must be a positive number"),
        (lambda: FineGrid(1e-3, n=0), "'n' must be an integer >= 1"),
        (lambda: LogRange(0.0, 1.0), "LogRange: 'low' must be a positive number"),
        (lambda: LogRange(1e-2, 1e-3), "'high' must be a number greater than low=0.01"),
        (lambda: Range(0.5, 0.2), "'high' must be a number greater than low=0.5"),
        (
            lambda: Regularizer("l3"),
            "Regularizer: 'kinds' must be one of 'none', 'l1', 'l2', 'l1_l2'; got 'l3'.",
        ),
        (
            lambda: Regularizer("l2", -1e-3),
            "Regularizer: 'strengths' must be positive; got -0.001.",
        ),
        (lambda: Regularizer("l2", [1e-3, 1e-3]), "'strengths' must be a list without repeats"),
        (lambda: Regularizer("l2", Range(0.0, 1.0)), "'strengths' must be a grid or a LogRange"),
        (
            lambda: Regularizer("l2", 1e-3, target="weights"),
            "'target' must be one of 'kernel', 'bias', 'activity'",
        ),
        (
            lambda: Placement("inside"),
            "Placement: 'placement' must be one of 'after', 'before'; got 'inside'.",
        ),
        (lambda: Constraint("max_nrom"), "Constraint: 'kinds' must be one of 'none', 'max_norm'"),
        (lambda: Constraint("max_norm", max_value=-3.0), "'max_value' must be positive"),
        (
            lambda: Constraint("min_max_norm", max_value=0.5, min_value=1.0),
            "'max_value' must be at least min_value=1.0",
        ),
        (lambda: Constraint("min_max_norm", rate=2.0), "'rate' must be a number in [0, 1]"),
        (
            lambda: Constraint("max_norm", targets="activity"),
            "'targets' must be one of 'kernel', 'bias'",
        ),
        (lambda: Dropout("dropout", 1.0), "Dropout: 'rates' must be below 1.0; got 1.0."),
        (lambda: Dropout("gaussian_dropout", [0.2, 1.5]), "'rates' must be below 1.0; got 1.5."),
        (lambda: Dropout("dropout", Range(0.1, 1.0)), "'rates' must be a range below 1.0"),
        (lambda: Dropout("dropout", -0.1), "'rates' must be non-negative; got -0.1."),
        (lambda: Dropout("spatial"), "Dropout: 'kinds' must be one of 'none', 'dropout'"),
        (
            lambda: Dropout("dropout", 0.2, where="output"),
            "'where' must be one of 'input', 'hidden', 'both'",
        ),
    ],
)
def test_bad_settings_raise_setting_error(make, fragment):
    with pytest.raises(SettingError, match=None) as raised:
        make()
    assert fragment in str(raised.value)


def test_gaussian_noise_sigma_may_exceed_one():
    config, _ = declared(Dropout("gaussian_noise", 1.5))
    assert config["dropout_rate"] == 1.5
