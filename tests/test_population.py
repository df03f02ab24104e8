"""The population engine: a member trains as it would alone, and as model.fit trains it."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from sklearn.datasets import make_moons

from regsearch.population import group_by_structure, train_population
from regsearch.population.numbers import numbers_of, structure_of

X, Y = make_moons(100, noise=0.2, random_state=1)
X_TRAIN, Y_TRAIN = X[:30].astype("float32"), Y[:30].astype("float32")[:, None]
X_VAL, Y_VAL = X[30:].astype("float32"), Y[30:].astype("float32")[:, None]


def build(seed: int, l2: float | None, rate: float = 0.1, max_value: float | None = None,
          learning_rate: float = 1e-2, optimizer: type = keras.optimizers.Adam) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))
    h = keras.layers.Dense(16, activation="relu", name="hidden",
                           kernel_regularizer=None if l2 is None else keras.regularizers.L2(l2),
                           kernel_constraint=None if max_value is None else keras.constraints.MaxNorm(max_value))(inputs)
    if rate:
        h = keras.layers.Dropout(rate, name="noise")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="output")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def copy_of(model: keras.Model, *args: object, **kwargs: object) -> keras.Model:
    twin = build(*args, **kwargs)
    twin.set_weights(model.get_weights())
    return twin


def stopping() -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)


def test_numbers_and_structure_mask_only_what_varies() -> None:
    a, b = build(0, 1e-3, rate=0.1, max_value=2.0), build(1, 1e-1, rate=0.4, max_value=3.0)
    assert structure_of(a) == structure_of(b)  # automatic names and numbers differ, structure does not
    numbers = numbers_of(b)
    assert numbers["w0:l2"] == pytest.approx(1e-1) and numbers["w0:l1"] == 0.0
    assert numbers["w0:max_value"] == 3.0
    assert [value for key, value in numbers.items() if key.endswith(":rate")] == [pytest.approx(0.4)]
    # A penalty of none is a zero coefficient; a dropout of rate 0 is no draw at all: structure.
    assert structure_of(build(2, None, rate=0.1, max_value=2.0)) == structure_of(a)
    assert structure_of(build(2, 1e-3, rate=0.0, max_value=2.0)) != structure_of(a)
    assert structure_of(build(2, 1e-3, rate=0.1)) != structure_of(a)  # constraint kind
    assert group_by_structure([a, build(3, 1e-3, rate=0.0), b]) == [[0, 2], [1]]


def test_a_member_trains_as_it_would_alone() -> None:
    """Three members with different strengths, rates, bounds, learning rates, patiences and seeds."""
    settings = [(0, 1e-3, 0.1, 2.0, 1e-2), (1, 1e-1, 0.3, 1.5, 3e-2), (2, None, 0.2, 3.0, 5e-3)]
    models = [build(*s) for s in settings]
    alone = [copy_of(m, *s) for m, s in zip(models, settings)]
    together = train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=40, batch_size=8,
                                early_stopping=stopping(), patiences=[2, 5, 40], seeds=[10, 11, 12])
    for k in range(3):
        (one,) = train_population([alone[k]], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=40, batch_size=8,
                                  early_stopping=stopping(), patiences=[[2, 5, 40][k]], seeds=[10 + k])
        assert together[k].epochs_run == one.epochs_run
        assert together[k].best_epoch == one.best_epoch
        np.testing.assert_allclose(together[k].history["loss"], one.history["loss"], rtol=1e-6)
        for mine, theirs in zip(models[k].get_weights(), alone[k].get_weights()):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)
    # The patiences differ, so the members stop apart; the one with patience 40 runs every epoch.
    assert together[2].epochs_run == 40
    assert together[0].epochs_run < together[1].epochs_run or together[0].epochs_run < 40
    # Different seeds shuffle differently: a member given another seed trains otherwise.
    (other,) = train_population([copy_of(build(*settings[2]), *settings[2])], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL),
                                epochs=40, batch_size=8, early_stopping=stopping(), patiences=[40], seeds=[99])
    assert other.history["loss"] != together[2].history["loss"]


def test_a_member_matches_model_fit() -> None:
    model = build(5, 1e-2, rate=0.0)
    twin = copy_of(model, 5, 1e-2, rate=0.0)
    rule = dict(monitor="val_loss", min_delta=0.01, patience=2, start_from_epoch=9, restore_best_weights=True)
    (outcome,) = train_population([model], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=40, initial_epoch=4,
                                  batch_size=7, shuffle=False, early_stopping=keras.callbacks.EarlyStopping(**rule),
                                  seeds=[0])
    stop = keras.callbacks.EarlyStopping(**rule)
    history = twin.fit(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), epochs=40, initial_epoch=4, batch_size=7,
                       shuffle=False, callbacks=[stop], verbose=0)
    assert outcome.epochs_run == len(history.epoch) < 36  # epochs 4, 5, ...: it stopped early
    assert (outcome.stopped_epoch, outcome.best_epoch) == (stop.stopped_epoch, stop.best_epoch)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(outcome.history[key], history.history[key], rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_regsearch_fit_equals_model_fit_on_this_backend(recwarn: pytest.WarningsRecorder) -> None:
    """A population of one on either backend, and no fallback to model.fit."""
    import regsearch

    model = build(3, 1e-3, rate=0)
    twin = copy_of(model, 3, 1e-3, rate=0)
    history = regsearch.fit(model, X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), epochs=40, initial_epoch=5,
                            batch_size=7, shuffle=False, early_stopping=stopping())
    expected = twin.fit(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), epochs=40, initial_epoch=5, batch_size=7,
                        shuffle=False, callbacks=[stopping()], verbose=0)
    assert not [w for w in recwarn if "falls back" in str(w.message)]
    assert history.epoch == expected.epoch and history.epoch[0] == 5
    for key, values in expected.history.items():
        np.testing.assert_allclose(history.history[key], values, atol=1e-5, err_msg=key)
    for mine, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_the_population_tests_hold_on_jax(tmp_path) -> None:
    """This module and tests/test_checkpoints.py's in-process tests again under ``KERAS_BACKEND=jax``.

    Keras picks its backend once per process; one process for both modules starts Python, Keras and JAX once.
    """
    import subprocess
    import sys
    from pathlib import Path

    from on_jax import jax_environment
    from test_checkpoints import ON_JAX as CHECKPOINTS_ON_JAX
    from test_hypermodels import ON_JAX as HYPERMODELS_ON_JAX

    if keras.backend.backend() == "jax":
        pytest.skip("already on JAX")
    # With a compilation cache: the test of a later population traces its program again on purpose, and XLA's
    # compile of the same program is read back instead of run twice.
    env = jax_environment(tmp_path / "jax-cache")
    # The members' semantics; the tuners' side runs on JAX in tests/test_searches.py (a named search per code path).
    selected = (f"(alone or model_fit or scores or without_validation or diverging or mixed or {CHECKPOINTS_ON_JAX} "
                f"or {HYPERMODELS_ON_JAX}) and not tf_xla")
    others = [str(Path(__file__).with_name(name)) for name in ("test_checkpoints.py", "test_hypermodels.py")]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-rA",
                           __file__, *others, "-k", selected],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:]
    last = done.stdout.splitlines()[-1]
    assert " passed" in last and "skipped" not in last and "deselected" in last
    passed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("PASSED ")]
    assert {Path(node.split("::")[0]).name for node in passed} == {"test_population.py", "test_checkpoints.py",
                                                                   "test_hypermodels.py"}


# On TensorFlow's CPU: XLA, a plain graph. On JAX both are XLA: the JAX process below runs the second only.
@pytest.mark.parametrize("rate", [0.0, 0.2], ids=["tf_xla", "dropout"])
def test_members_trained_in_shares_on_threads_equal_members_trained_alone(rate: float,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """In a long run each core trains a share of the members through one program, traced once.

    Five members of different strengths, seeds and patiences (so they stop apart), one dropped halfway: each
    history and weight equals that of the same member trained in one share, bit for bit, its dropout masks
    included. A short run keeps one share on TensorFlow.
    """
    from regsearch import population

    monkeypatch.setattr(population, "XLA_MIN_STEPS", 0)

    def train(threads: int) -> tuple[list, list, Any]:
        monkeypatch.setattr(population, "THREADS", threads)
        population._PROGRAMS.clear()
        models = [build(seed, l2, rate=rate) for seed, l2 in ((0, 1e-1), (1, 1e-4), (2, 3e-2), (3, 1e-3), (4, 1e-2))]
        pop = population.Population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=40, batch_size=8,
                                    early_stopping=stopping(), patiences=[2, 40, 4, 40, 6], seeds=[5, 6, 7, 8, 9])
        pop.advance(12)
        pop.drop([3])
        pop.advance()
        return pop.finish(), [m.get_weights() for m in models], pop.program

    one, one_weights, alone = train(1)
    two, two_weights, program = train(2)
    trains = program.trains
    assert len(alone.trains) == 1
    assert len(trains) == 2  # 5 members padded to 8: two shares of 4
    # One program on JAX. On TensorFlow each share writes into a template of its own (XLA would lock one
    # template's variables for a whole call, and the shares would run one after the other), through the first
    # share's trace: one trace in all, run on each template's variables.
    if keras.backend.backend() == "jax":
        assert trains[0] is trains[1]
    else:
        assert trains[1].program is trains[0] and trains[1].fallback is None
        assert (trains[0].jit or trains[0].graph).experimental_get_tracing_count() == 1
        assert trains[0].xla is (rate == 0)
        # The second share's steps ran on its own template's variables (its optimizer counted their steps).
        assert trains[1].template is not program.template and int(trains[1].template.optimizer.iterations) > 0
    assert [o.epochs_run for o in two] == [o.epochs_run for o in one]
    assert two[3].epochs_run == 12 and two[1].epochs_run == 40 and two[0].epochs_run < 40  # dropped; ran; stopped
    for mine, theirs in zip(two, one):
        assert mine.history == theirs.history and mine.best_epoch == theirs.best_epoch
    for mine, theirs in zip(two_weights, one_weights):
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    monkeypatch.setattr(population, "XLA_MIN_STEPS", 10**9)  # a short run
    assert len(train(2)[2].trains) == (2 if keras.backend.backend() == "jax" else 1)


class _Offset(keras.layers.Layer):
    """A user's layer reading a TensorFlow variable of its own, which Keras does not track (and, to keep the test
    short, no XLA: a plain graph traces alike)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.supports_jit = False

    def build(self, input_shape: tuple) -> None:
        import tensorflow as tf

        self.offset = tf.Variable(0.25, trainable=False)

    def call(self, inputs: object) -> object:
        return inputs + self.offset


def test_a_trace_reading_a_resource_of_its_own_compiles_a_program_per_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the first share's trace reads a resource that is not a template variable, it cannot be redirected to
    another template: that share traces its own program, and trains as in one share."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's shares each have a template; JAX's steps are stateless")
    from regsearch import population

    monkeypatch.setattr(population, "XLA_MIN_STEPS", 0)

    def train(threads: int) -> tuple[list, Any]:
        monkeypatch.setattr(population, "THREADS", threads)
        population._PROGRAMS.clear()
        models = []
        for seed, l2 in ((0, 1e-1), (1, 1e-3)):
            keras.utils.set_random_seed(seed)
            inputs = keras.Input((2,))
            hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(inputs)
            model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(_Offset()(hidden)))
            model.compile(optimizer="adam", loss="binary_crossentropy")
            models.append(model)
        pop = population.Population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=3, batch_size=8, seeds=[3, 4])
        pop.advance()
        return [o.history for o in pop.finish()], pop.program

    alone, _ = train(1)
    shared, program = train(2)
    assert len(program.trains) == 2 and program.trains[1].fallback is not None
    assert program.trains[1].fallback is not program.trains[0] and not program.trains[0].xla
    assert shared == alone


def test_a_share_runs_the_first_shares_trace_only_on_a_copy_whose_variables_match_one_for_one() -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's shares each have a template; JAX's steps are stateless")
    from regsearch.population._tensorflow import _template_variables, _variable_pairs

    inputs = keras.Input((2,))
    wider = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(17)(inputs)))
    wider.compile(optimizer="adam", loss="binary_crossentropy")
    first, copy = build(0, 1e-3, rate=0.0), build(1, 1e-2, rate=0.0)
    for model in (first, copy, wider):
        model.optimizer.build(model.trainable_variables)
    pairs = _variable_pairs(first, copy)
    mine, theirs = _template_variables(first), _template_variables(copy)
    assert len(pairs) == len(mine) > len(first.weights)  # the optimizer's and the metrics' variables too
    assert [pairs[id(a.handle)] is b.handle for a, b in zip(mine, theirs)] == [True] * len(mine)
    assert _variable_pairs(first, wider) is None


def test_a_program_traces_each_step_once_wherever_it_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """30 training rows in batches of 8 and 70 validation rows: the first batch, the loop and the smaller last
    batch each take a step, traced once for all three, as an unknown number of rows."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("JAX traces the model's stateless steps")
    from regsearch import population
    from regsearch.population import _tensorflow

    traced = {"_train": 0, "_test": 0}

    def counting(name: str) -> object:
        step = getattr(_tensorflow.Backend, name)

        def counted(self: object, state: object, batch: object) -> object:
            traced[name] += 1
            return step(self, state, batch)
        return counted

    for name in traced:
        monkeypatch.setattr(_tensorflow.Backend, name, counting(name))
    population._PROGRAMS.clear()
    pop = population.Population([build(0, 1e-3, rate=0.0), build(1, 1e-2, rate=0.0)], (X_TRAIN, Y_TRAIN),
                                (X_VAL, Y_VAL), epochs=3, batch_size=8, seeds=[0, 1])
    pop.advance()
    assert traced == {"_train": 1, "_test": 2}  # validation: the program's, and one for the logs' shapes
    assert all(o.epochs_run == 3 for o in pop.finish())


def test_alive_members_are_dealt_out_evenly_among_the_shares() -> None:
    from regsearch.population import balanced_order

    alive = np.array([True, True, True, False, False, True, False, True, False, False, False, False])
    order = balanced_order(alive, 3)
    assert sorted(order) == list(range(12))
    shares = np.split(order, 3)
    assert [int(alive[share].sum()) for share in shares] == [2, 2, 1]  # 5 alive among 3 shares of 4
    assert list(shares[0][:2]) == [0, 5] and list(shares[1][:2]) == [1, 7] and list(shares[2][:1]) == [2]
    assert [int((~alive)[share].sum()) for share in np.split(balanced_order(~alive, 2), 2)] == [4, 3]
    assert list(balanced_order(np.zeros(4, bool), 2)) == [0, 1, 2, 3]


def test_a_diverging_member_stops_alone_and_the_rest_go_on() -> None:
    sgd = keras.optimizers.SGD
    models = [build(0, 1e-3, learning_rate=1e-2, optimizer=sgd), build(1, 1e-3, learning_rate=1e30, optimizer=sgd)]
    outcomes = train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=30, batch_size=8,
                                seeds=[0, 1])
    assert outcomes[1].diverged and outcomes[1].epochs_run < 30
    assert not outcomes[0].diverged and outcomes[0].epochs_run == 30


def test_epochs_beyond_a_chunk_and_huge_epochs_allocate_only_what_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from regsearch import population

    monkeypatch.setattr(population, "CHUNK", 7)
    (outcome,) = train_population([build(0, 1e-3)], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=2_000_000_000,
                                  batch_size=30, early_stopping=stopping(), patiences=[4], seeds=[0])
    assert 4 < outcome.epochs_run < 2_000_000_000
    assert len(outcome.history["loss"]) == outcome.epochs_run  # rows of every chunk, in order


def test_a_later_population_reuses_the_compiled_program_and_leaves_earlier_models_alone() -> None:
    from regsearch import population

    def train(models):
        return train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=12, batch_size=8,
                                early_stopping=stopping(), seeds=list(range(len(models))), evaluate=True)

    first = [build(seed, l2) for seed, l2 in ((0, 1e-2), (1, 1e-3), (2, 1e-4))]
    train(first)
    trained = [model.get_weights() for model in first]
    programs = dict(population._PROGRAMS)
    second = [build(seed, l2, rate=rate) for seed, l2, rate in ((3, 3e-2, 0.2), (4, 3e-4, 0.4), (5, 1e-1, 0.05),
                                                                (6, 1e-5, 0.3), (7, 1e-3, 0.1))]
    fresh = [copy_of(model, seed, l2, rate=rate) for model, (seed, l2, rate) in
             zip(second, ((3, 3e-2, 0.2), (4, 3e-4, 0.4), (5, 1e-1, 0.05), (6, 1e-5, 0.3), (7, 1e-3, 0.1)))]
    again = train(second)
    assert dict(population._PROGRAMS) == programs  # 3 and 5 members: both padded to 8, one program
    for model, weights in zip(first, trained):
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))

    population._PROGRAMS.clear()
    anew = train(fresh)
    assert len(population._PROGRAMS) == 1
    for kept, traced in zip(again, anew):
        assert kept.history == traced.history and kept.scores == traced.scores
    for model, twin in zip(second, fresh):
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))


def test_scores_are_model_evaluate_of_the_restored_model() -> None:
    models = [build(seed, l2) for seed, l2 in ((0, 1e-1), (1, 1e-4))]
    outcomes = train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=400, batch_size=8,
                                early_stopping=stopping(), seeds=[0, 1], evaluate=True)
    for model, outcome in zip(models, outcomes):
        assert outcome.epochs_run > outcome.best_epoch + 1  # it stopped after its best epoch: weights were restored
        for part, (x, y) in (("train", (X_TRAIN, Y_TRAIN)), ("validation", (X_VAL, Y_VAL))):
            expected = model.evaluate(x, y, batch_size=1024, verbose=0, return_dict=True)
            assert outcome.scores[part] == pytest.approx(expected, abs=1e-6)
        assert outcome.scores["validation"]["loss"] == pytest.approx(outcome.history["val_loss"][outcome.best_epoch],
                                                                     abs=1e-5)


def test_without_validation_rows_only_the_training_rows_are_scored() -> None:
    (model,) = models = [build(2, 1e-3, rate=0)]
    (outcome,) = train_population(models, (X_TRAIN, Y_TRAIN), None, epochs=5, batch_size=8, seeds=[2], evaluate=True)
    assert outcome.scores["validation"] == {}
    expected = model.evaluate(X_TRAIN, Y_TRAIN, batch_size=1024, verbose=0, return_dict=True)
    assert outcome.scores["train"] == pytest.approx(expected, abs=1e-6)


def test_a_population_larger_than_memory_trains_in_slices_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    from regsearch import population
    from regsearch.population import memory

    settings = [(seed, l2) for seed, l2 in zip(range(7), np.geomspace(1e-5, 1e-1, 7))]

    def train(models):
        return train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=20, batch_size=8,
                                early_stopping=stopping(), patiences=[2, 3, 4, 5, 6, 7, 8], seeds=list(range(7)),
                                evaluate=True)

    whole = train([build(*s) for s in settings])
    one = memory.footprint(build(0, 1e-3), 70).total
    monkeypatch.setattr(memory, "available_bytes", lambda: 3 * one + one // 2)
    sizes = []
    traced = population._program
    monkeypatch.setattr(population, "_program", lambda *a, **k: sizes.append(k["size"]) or traced(*a, **k))
    sliced = train([build(*s) for s in settings])  # 3 + 3 + 1
    assert sizes == [8, 8, 1]
    for mine, theirs in zip(sliced, whole):
        assert mine == theirs

    monkeypatch.setattr(memory, "available_bytes", lambda: one - 1)
    with pytest.raises(MemoryError, match=r"^train_population: one training run of this model needs about "
                                          r"[0-9.]+ GiB \(weights .*\), more than the 0.0 GiB available"):
        train([build(*s) for s in settings])


def test_the_footprint_counts_weights_optimizer_and_activations() -> None:
    from regsearch.population import memory

    model = build(0, 1e-3, rate=0.1)  # 2 -> 16 -> (dropout) -> 1
    model.optimizer.build(model.trainable_variables)
    found = memory.footprint(model, rows=10)
    weights = (2 * 16 + 16 + 16 + 1) * 4
    assert found.weights == weights
    assert 2 * weights + 8 <= found.optimizer <= 2 * weights + 16  # Adam: two slots a weight, iterations, rate
    assert found.activations == 3 * 10 * (2 + 16 + 16 + 1) * 4  # input, hidden, dropout, output
    assert found.total == 4 * found.weights + 2 * found.optimizer + found.activations


def test_refuses_mixed_structures_and_bad_modes() -> None:
    with pytest.raises(ValueError, match="one structure"):
        train_population([build(0, 1e-3), build(1, 1e-3, rate=0.0)], (X_TRAIN, Y_TRAIN), None, epochs=1,
                         batch_size=8, seeds=[0, 1])
    with pytest.raises(ValueError, match="'mode'"):
        train_population([build(0, 1e-3)], (X_TRAIN, Y_TRAIN), None, epochs=1, batch_size=8, seeds=[0], mode="wide")


# --- the tuners feed it ------------------------------------------------------------------------------------------


def grid_hypermodel():
    from regsearch import Dropout, RegularizedMLP, Regularizer

    # A plain graph on both sides: TensorFlow's XLA and graph kernels draw different random numbers from one
    # seed, and on a CPU a population with random layers runs as a graph (XLA's random kernels are slow there).
    return RegularizedMLP((2,), hidden=[16], learning_rate=1e-2, jit_compile=False,
                          regularizer=Regularizer("l2", [1e-1, 1e-4]),
                          dropout=Dropout("dropout", [0.1, 0.3]))


def grid_runs(tmp_path, engine: str, batch: int, sizes: list[int] | None = None) -> list[dict]:
    import keras_tuner as kt

    import regsearch
    from regsearch.tuners import read_runs

    hypermodel = grid_hypermodel()
    if sizes is not None:
        trained = hypermodel.run_population

        def counted(runs, *args, **kwargs):
            sizes.append(len(runs))
            return trained(runs, *args, **kwargs)

        hypermodel.run_population = counted
    tuner = regsearch.GridSearch(hypermodel, objective=kt.Objective("test_accuracy", "max"), repeats=2, seed=5,
                                 engine=engine, batch=batch, directory=str(tmp_path), project_name=engine)
    tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), epochs=25, batch_size=8, verbose=0,
                 early_stopping={"monitor": "val_loss", "patience": 3, "restore_best_weights": True})
    records, _ = read_runs(tuner)
    return sorted(records, key=lambda r: (r["param_strength"], r["param_dropout_rate"], r["seed"]))


def test_a_grid_trains_in_batches_of_trials_and_equals_the_sequential_engine(tmp_path, monkeypatch) -> None:
    from regsearch.hypermodels import base

    sizes: list[int] = []
    evaluate = base.evaluate_rows
    with monkeypatch.context() as patch:  # a population scores its members itself, not run by run
        patch.setattr(base, "evaluate_rows", lambda *a, **k: pytest.fail("evaluated run by run"))
        together = grid_runs(tmp_path, "population", batch=3, sizes=sizes)
    assert base.evaluate_rows is evaluate
    alone = grid_runs(tmp_path, "sequential", batch=3)
    assert sizes == [6, 2]  # 4 configurations, 3 per batch, 2 seeds each
    assert len(together) == len(alone) == 8
    assert {r["seed"] for r in together} == {5, 6}
    for mine, theirs in zip(together, alone):
        same = ("param_strength", "param_dropout_rate", "seed", "status", "best_epoch", "epochs_run")
        assert [mine[k] for k in same] == [theirs[k] for k in same]
        for key in ("val_loss", "train_loss", "test_loss", "test_accuracy"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-4), key


def test_tuners_build_only_the_runs_that_fit_in_memory_and_record_a_run_that_cannot(tmp_path, monkeypatch) -> None:
    from regsearch.population import memory

    import keras_tuner as kt

    one = memory.footprint(grid_hypermodel().build(kt.HyperParameters()), 30).total  # batches of up to 30 rows
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * one + one // 2)
    sizes: list[int] = []
    records = grid_runs(tmp_path / "fits", "population", batch=100, sizes=sizes)
    assert sizes == [2] * 4  # 4 configurations x 2 seeds, two runs built and trained at a time
    assert [r["status"] for r in records] == ["completed"] * 8

    monkeypatch.setattr(memory, "available_bytes", lambda: one // 2)
    records = grid_runs(tmp_path / "too_large", "population", batch=100, sizes=sizes)
    assert {r["status"] for r in records} == {"failed"} and len(records) == 8
    assert {r["reason"].split(" needs ")[0] for r in records} == {
        "MemoryError: GridSearch: one training run of this model"}


def test_what_a_population_cannot_train_falls_back_once_with_a_warning(tmp_path) -> None:
    import keras_tuner as kt

    import regsearch
    from regsearch import RegularizedMLP, Regularizer
    from regsearch.tuners import read_runs

    hypermodel = RegularizedMLP((2,), hidden=[8], regularizer=Regularizer("l2", [1e-1, 1e-3]))
    hypermodel.run_population = lambda *args, **kwargs: pytest.fail("a population was trained")
    tuner = regsearch.GridSearch(hypermodel, objective=kt.Objective("test_accuracy", "max"), engine="population",
                                 directory=str(tmp_path), project_name="weighted")
    with pytest.warns(UserWarning) as warned:
        tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), epochs=3, verbose=0,
                     class_weight={0: 1.0, 1: 2.0})
    said = [str(w.message) for w in warned if "population engine" in str(w.message)]
    assert said == ["GridSearch: the population engine cannot train 'class_weight'; each run trains on its own "
                    "(the sequential engine)."]
    records, _ = read_runs(tuner)
    assert [r["status"] for r in records] == ["completed", "completed"]


def test_random_layers_and_convolutions_run_as_a_plain_graph_on_a_cpu_and_other_models_under_xla() -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend's choice")
    import tensorflow as tf

    from regsearch.population import _tensorflow

    def backend(*extra, shape=(2,)):
        model = keras.Sequential([keras.Input(shape), *extra, keras.layers.Dense(4), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        return _tensorflow.Backend(model, lambda row: None)

    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert backend().xla is True
    assert backend(keras.layers.Dropout(0.2)).xla is gpu
    assert backend(keras.layers.GaussianNoise(0.2)).xla is gpu
    assert backend(keras.layers.Conv1D(2, 2), keras.layers.Flatten(), shape=(4, 1)).xla is gpu
    assert backend(keras.layers.LSTM(2), shape=(4, 1)).xla is True  # its cell's seed generator draws nothing
    assert backend(keras.layers.LSTM(2, recurrent_dropout=0.1), shape=(4, 1)).xla is gpu


def test_only_runs_long_enough_to_pay_back_the_compile_run_under_xla() -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend's choice (JAX always compiles)")
    from regsearch import population
    from regsearch.population import XLA_MIN_STEPS, planned_steps

    # 30 training rows in one batch of 32, 70 validation rows in batches of 32 (3): 4 steps an epoch.
    assert planned_steps((X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), 10, 32, 32) == 40
    assert planned_steps((X_TRAIN, Y_TRAIN), None, 10, 8, 8) == 40  # 4 batches of 8 (the last of 6)
    longest_short = XLA_MIN_STEPS // 4 - 1 if XLA_MIN_STEPS % 4 == 0 else XLA_MIN_STEPS // 4

    def compiled(epochs: int, jit_compile: bool | str = "auto") -> bool:
        population._PROGRAMS.clear()
        model = build(0, 1e-3, rate=0)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
        opened = next(population.open_populations([model], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=epochs,
                                                   batch_size=32, seeds=[0]))
        return opened.program.trains[0].xla

    assert compiled(longest_short) is False  # a plain graph: XLA's compile would cost more than it saves
    assert compiled(longest_short + 1) is True
    assert compiled(3, jit_compile=True) is True  # the user's own jit_compile=True is kept


def test_a_short_runs_programs_skip_grapplers_rewrites_and_a_long_plain_graph_keeps_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend's plain graph")
    from regsearch import population
    from regsearch.population import XLA_MIN_STEPS, _tensorflow

    entered = []
    real = _tensorflow._graph_rewrites_skipped
    monkeypatch.setattr(_tensorflow, "_graph_rewrites_skipped", lambda: entered.append(1) or real())

    def program(epochs: int) -> Any:
        population._PROGRAMS.clear()
        models = [build(seed, 1e-3) for seed in (0, 1)]  # dropout: a plain graph, short run or long
        return next(population.open_populations(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=epochs,
                                                 batch_size=32, seeds=[0, 1]))

    short = program(3)
    assert short.program.trains[0].rewrites is False and short.program.evaluate.rewrites is False
    short.advance(3)
    short.finish()
    assert entered  # its calls ran inside the block
    long = program(XLA_MIN_STEPS // 4 + 1)
    assert long.program.trains[0].xla is False and long.program.trains[0].rewrites is True
    assert long.program.evaluate.rewrites is False  # scoring runs once per population, whatever its length


def test_grapplers_rewrites_are_skipped_in_the_calling_thread_only_and_restored() -> None:
    """The private eager-context API :func:`regsearch.population._tensorflow._graph_rewrites_skipped` relies on."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's eager context")
    import threading

    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    from regsearch.population._tensorflow import _graph_rewrites_skipped

    def grappler_off() -> bool:
        options = context.context().function_call_options
        return config_pb2.ConfigProto.FromString(options.config_proto_serialized).graph_options.rewrite_options \
            .disable_meta_optimizer

    before = context.context().function_call_options.config_proto_serialized
    other = []
    with _graph_rewrites_skipped():
        assert grappler_off()
        thread = threading.Thread(target=lambda: other.append(grappler_off()))
        thread.start()
        thread.join()
    assert other == [False]
    assert not grappler_off() and context.context().function_call_options.config_proto_serialized == before


def test_a_listener_hears_every_chunk_with_members_alive_and_epochs_done(monkeypatch: pytest.MonkeyPatch) -> None:
    from regsearch import population
    from regsearch.population.progress import reporting

    monkeypatch.setattr(population, "CHUNK", 7)
    heard = []
    sgd = keras.optimizers.SGD
    models = [build(0, 1e-3, learning_rate=1e-2, optimizer=sgd), build(1, 1e-3, learning_rate=1e30, optimizer=sgd),
              build(2, 1e-2, learning_rate=1e-2, optimizer=sgd)]
    with reporting(heard.append):
        outcomes = train_population(models, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=30, batch_size=8,
                                    seeds=[0, 1, 2])
    train_population([build(0, 1e-3)], (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=3, batch_size=8, seeds=[0])
    assert len(heard) == 5  # chunks of 7 epochs up to 30, and no listener after the block
    assert [h.members for h in heard] == [3] * 5 and [h.epochs for h in heard] == [30] * 5
    diverged = outcomes[1].epochs_run
    assert diverged < 7  # so the diverged member trains no more after the first chunk, and counts as done
    assert [h.alive for h in heard] == [2, 2, 2, 2, 0]
    assert [h.epochs_done for h in heard] == [14 + diverged, 28 + diverged, 42 + diverged, 56 + diverged,
                                              60 + diverged]
    assert [h.runs_done for h in heard] == pytest.approx([1 + 14 / 30, 1 + 28 / 30, 1 + 42 / 30, 1 + 56 / 30, 3])
    assert sum(o.epochs_run for o in outcomes) == heard[-1].epochs_done
