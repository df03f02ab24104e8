"""The model rewriter: which layers are chosen, what each gets, and that the result is plain Keras."""

from __future__ import annotations


import keras
import numpy as np
import pytest

from regsearch.errors import SettingError
from regsearch.rewrite import output_layer_names, plan_layers, rewrite, select_layers
from regsearch.sparsity import activation_sparsity
from safe_load import load_without_regsearch

NONE = dict(kind="none", target="none", constraint="none", dropout_kind="none")


def config(**changes) -> dict:
    return {**NONE, **changes}


def functional() -> keras.Model:
    """Two inputs, a shared layer, BatchNormalization, two outputs (one through a weightless Activation)."""
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    shared = keras.layers.Dense(5, activation="relu", name="shared")
    h = keras.layers.Concatenate(name="concat")([shared(keras.layers.Dense(3, name="front")(a)), shared(b)])
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dense(8, activation="tanh", name="hidden", use_bias=False)(h)
    first = keras.layers.Dense(1, activation="sigmoid", name="first")(h)
    second = keras.layers.Activation("softmax", name="second_softmax")(keras.layers.Dense(3, name="second")(h))
    return keras.Model([a, b], [first, second])


def sequential() -> keras.Sequential:
    return keras.Sequential([keras.Input((2,), name="inputs"), keras.layers.Dense(6, activation="relu", name="hidden_1"),
                             keras.layers.Dense(4, activation="relu", name="hidden_2"),
                             keras.layers.Dense(1, activation="sigmoid", name="output")])


def test_default_selection_skips_output_layers_and_weightless_layers():
    model = functional()
    assert output_layer_names(model) == {"first", "second"}  # "second" through its softmax Activation
    assert [layer.name for layer in select_layers(model)] == ["front", "shared", "hidden"]
    assert [layer.name for layer in select_layers(sequential())] == ["hidden_1", "hidden_2"]


def test_selection_by_name_pattern_and_class():
    model = functional()
    assert [layer.name for layer in select_layers(model, "hidden")] == ["hidden"]
    assert [layer.name for layer in select_layers(model, ["sh*", "front", "second"])] == ["front", "shared", "second"]
    assert [layer.name for layer in select_layers(model, keras.layers.BatchNormalization)] == ["bn"]


@pytest.mark.parametrize("selector, expected", [
    ("dense_*", "matching one of the model's layers: front, shared, concat, bn, hidden, second, first, second_softmax"),
    ([], "a non-empty list"),
    ([3], "layer names, glob patterns or layer classes"),
])
def test_selectors_that_match_nothing_list_the_layers(selector, expected):
    with pytest.raises(SettingError, match="'layers' must be") as error:
        select_layers(functional(), selector)
    assert expected in str(error.value) and "\n" not in str(error.value)


def nested() -> keras.Model:
    """A Sequential block inside a functional model, and a functional head (holding the output layer) after it."""
    block = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="relu", name="inner_dense"),
                              keras.layers.BatchNormalization(name="bn")], name="block")
    head_in = keras.Input((2,))
    head_hidden = keras.layers.Dense(4, activation="relu", name="head_dense")(head_in)
    head = keras.Model(head_in, keras.layers.Dense(1, name="out")(head_hidden), name="head")
    inputs = keras.Input((2,))
    return keras.Model(inputs, head(keras.layers.Dense(2, name="front")(block(inputs))))


def test_layers_inside_nested_models_are_chosen_by_path_and_rewritten():
    keras.utils.set_random_seed(0)  # weights whose hidden ReLUs are neither all dead nor all alive on these rows
    model = nested()
    assert output_layer_names(model) == {"head/out"}
    chosen = plan_layers(select_layers(model), model)
    assert [p.name for p in chosen] == ["block/inner_dense", "front", "head/head_dense"]
    assert [p.name for p in plan_layers(select_layers(model, "inner_*"), model)] == ["block/inner_dense"]
    assert [p.name for p in plan_layers(select_layers(model, "head"), model)] == ["head/head_dense", "head/out"]
    assert [p.name for p in plan_layers(select_layers(model, "block/bn"), model)] == ["block/bn"]
    settings = config(kind="l2", strength=0.02, target="kernel", dropout_kind="dropout", dropout_rate=0.1,
                      dropout_where="both")
    new = rewrite(model, plan_layers(select_layers(model, ["inner_dense", "head/head_dense"]), model), settings)
    block, head = new.get_layer("block"), new.get_layer("head")
    assert isinstance(block, keras.Sequential) and block is not model.get_layer("block")
    assert block.get_layer("inner_dense").kernel_regularizer.l2 == pytest.approx(0.02)
    assert head.get_layer("head_dense").kernel_regularizer.l2 == pytest.approx(0.02)
    assert new.get_layer("front").kernel_regularizer is None and head.get_layer("out").kernel_regularizer is None
    assert [layer.name for layer in block.layers] == ["inner_dense", "inner_dense_dropout", "bn"]
    assert "input_dropout" in [layer.name for layer in new.layers]  # once, on the whole model's input
    assert "input_dropout" not in [layer.name for layer in block.layers + head.layers]
    new.set_weights(model.get_weights())  # without noise (inference) it computes the source's function
    rows = np.random.default_rng(2).normal(size=(50, 2))
    np.testing.assert_allclose(new.predict(rows, verbose=0), model.predict(rows, verbose=0), atol=1e-6)
    # Sparsity reaches into the nested models: the head's hidden layer, on the front layer's output.
    inner = keras.ops.convert_to_numpy(head.get_layer("head_dense")(new.get_layer("front")(block(rows))))
    measured = activation_sparsity(new, "head/head_dense", rows)
    assert measured["mean_activation"] == pytest.approx(inner.mean(), abs=1e-6)
    assert measured["zero_fraction"] == pytest.approx((inner == 0).mean()) and 0 < measured["zero_fraction"] < 1


def test_penalties_go_on_the_chosen_layers_only_and_on_the_weights_each_has():
    model = functional()
    plans = plan_layers(select_layers(model, ["front", "hidden"]))
    assert "bias" not in {t for p in plans if p.name == "hidden" for t in p.targets}  # use_bias=False
    new = rewrite(model, plans, config(kind="l2", strength=0.03, target="kernel+bias"))
    front, hidden = new.get_layer("front"), new.get_layer("hidden")
    assert front.kernel_regularizer.l2 == pytest.approx(0.03) and front.bias_regularizer.l2 == pytest.approx(0.03)
    assert hidden.kernel_regularizer.l2 == pytest.approx(0.03) and hidden.bias_regularizer is None
    assert front.kernel_regularizer is not hidden.kernel_regularizer
    for name in ("shared", "first", "second"):
        assert new.get_layer(name).kernel_regularizer is None, name
    assert new.get_layer("bn").gamma_regularizer is None


def test_l1_l2_and_activity_values_are_not_swapped():
    model = sequential()
    new = rewrite(model, plan_layers(select_layers(model)), config(kind="l1_l2", l1=0.5, l2=0.002, target="activity"))
    regularizer = new.get_layer("hidden_1").activity_regularizer
    assert (regularizer.l1, regularizer.l2) == (pytest.approx(0.5), pytest.approx(0.002))
    assert new.get_layer("hidden_1").kernel_regularizer is None


def test_placement_before_moves_the_activation_and_computes_the_same_function():
    model = functional()
    plans = plan_layers(select_layers(model))
    new = rewrite(model, plans, config(kind="none", placement="before"))
    assert new.get_layer("hidden_linear").get_config()["activation"] == "linear"
    assert new.get_layer("hidden").get_config()["activation"] == "tanh"
    assert isinstance(new.get_layer("shared"), keras.layers.Activation)
    new.set_weights(model.get_weights())
    rows = [np.random.default_rng(0).normal(size=(5, 4)), np.random.default_rng(1).normal(size=(5, 3))]
    for ours, reference in zip(new.predict(rows, verbose=0), model.predict(rows, verbose=0)):
        np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_constraints_act_per_unit_filter_and_word_vector():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.Dense(5, name="dense")(keras.layers.Flatten()(h))
    conv_model = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    settings = config(constraint="max_norm", max_value=3.0)
    new = rewrite(conv_model, plan_layers(select_layers(conv_model)), settings, ("kernel", "bias"))
    assert new.get_layer("conv").kernel_constraint.axis == [0, 1, 2]
    assert new.get_layer("dense").kernel_constraint.axis == 0
    assert new.get_layer("conv").kernel_constraint.max_value == 3.0
    assert new.get_layer("dense").bias_constraint is not None and new.get_layer("out").kernel_constraint is None
    tokens = keras.Input((5,), dtype="int32")
    lstm_model = keras.Model(tokens, keras.layers.Dense(1, name="out")(
        keras.layers.LSTM(3, name="lstm")(keras.layers.Embedding(10, 4, name="embedding")(tokens))))
    new = rewrite(lstm_model, plan_layers(select_layers(lstm_model)), settings, ("embeddings", "recurrent"))
    assert new.get_layer("embedding").embeddings_constraint.axis == 1
    assert new.get_layer("lstm").cell.recurrent_constraint is not None
    assert new.get_layer("lstm").cell.kernel_constraint is None


def test_noise_goes_after_chosen_layers_and_float_inputs_once_per_shared_layer():
    model = functional()
    settings = config(dropout_kind="gaussian_noise", dropout_rate=0.3, dropout_where="both")
    new = rewrite(model, plan_layers(select_layers(model)), settings)
    names = [layer.name for layer in new.layers]
    for name in ("a_dropout", "b_dropout", "front_dropout", "shared_dropout", "hidden_dropout"):
        assert names.count(name) == 1, name
    assert "first_dropout" not in names
    assert new.get_layer("shared_dropout").stddev == pytest.approx(0.3)
    seq = rewrite(sequential(), plan_layers(select_layers(sequential())), {**settings, "dropout_where": "hidden"})
    assert [layer.name for layer in seq.layers] == ["hidden_1", "hidden_1_dropout", "hidden_2", "hidden_2_dropout",
                                                     "output"]


def test_every_build_has_fresh_weights_and_the_source_is_untouched():
    model = sequential()
    before = [w.copy() for w in model.get_weights()]
    plans = plan_layers(select_layers(model))
    keras.utils.set_random_seed(3)
    first = rewrite(model, plans, config(kind="l2", strength=0.1, target="kernel"))
    keras.utils.set_random_seed(3)
    again = rewrite(model, plans, config(kind="l2", strength=0.1, target="kernel"))
    keras.utils.set_random_seed(4)
    other = rewrite(model, plans, config(kind="l2", strength=0.1, target="kernel"))
    assert not np.allclose(first.get_weights()[0], model.get_weights()[0])
    np.testing.assert_array_equal(first.get_weights()[0], again.get_weights()[0])
    assert not np.allclose(first.get_weights()[0], other.get_weights()[0])
    assert model.get_layer("hidden_1").kernel_regularizer is None
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_saved_rewrite_loads_in_safe_mode_without_regsearch(tmp_path):
    model = functional()
    settings = config(kind="l1", strength=0.01, target="kernel+activity", placement="before", constraint="unit_norm",
                      dropout_kind="dropout", dropout_rate=0.25, dropout_where="hidden")
    path = tmp_path / "rewritten.keras"
    rewrite(model, plan_layers(select_layers(model)), settings).save(path)
    printed = load_without_regsearch(
        path, "round(float(m.get_layer('hidden_linear').kernel_regularizer.l1), 6), m.get_layer('hidden_dropout').rate"
    )
    assert printed.split()[-2:] == ["0.01", "0.25"]


def test_token_inputs_get_no_noise():
    tokens, numbers = keras.Input((5,), dtype="int32", name="tokens"), keras.Input((3,), name="numbers")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4, name="embedding")(tokens))
    model = keras.Model([tokens, numbers], keras.layers.Dense(1, name="out")(keras.layers.Concatenate()([h, numbers])))
    settings = config(dropout_kind="dropout", dropout_rate=0.5, dropout_where="input")
    names = [layer.name for layer in rewrite(model, plan_layers(select_layers(model)), settings).layers]
    assert "input_dropout" in names and "tokens_dropout" not in names  # one float input: the usual name
    sequential_tokens = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(10, 4, name="embedding"),
                                          keras.layers.Flatten(), keras.layers.Dense(1, name="out")])
    names = [layer.name for layer in rewrite(sequential_tokens, plan_layers(select_layers(sequential_tokens)),
                                             settings).layers]
    assert "input_dropout" not in names


def test_wrapped_layers_get_the_penalties_of_the_layers_they_wrap():
    tokens = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(20, 4, name="embedding")(tokens)
    h = keras.layers.TimeDistributed(keras.layers.Dense(5, activation="relu"), name="per_step")(h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(3), name="bilstm")(h)
    model = keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid", name="out")(h))
    chosen = select_layers(model)
    assert [layer.name for layer in chosen] == ["embedding", "per_step", "bilstm"]
    settings = config(kind="l2", strength=0.004, target="kernel+recurrent+activity", placement="before",
                      constraint="max_norm", max_value=2.0)
    new = rewrite(model, plan_layers(chosen), settings, ("recurrent",))
    bilstm = new.get_layer("bilstm")
    for direction in (bilstm.forward_layer, bilstm.backward_layer):
        assert float(direction.cell.kernel_regularizer.l2) == pytest.approx(0.004)
        assert float(direction.cell.recurrent_regularizer.l2) == pytest.approx(0.004)
        assert direction.cell.recurrent_constraint.max_value == 2.0
    assert float(bilstm.activity_regularizer.l2) == pytest.approx(0.004)
    per_step = new.get_layer("per_step")
    assert float(per_step.layer.kernel_regularizer.l2) == pytest.approx(0.004)
    assert per_step.layer.get_config()["activation"] == "relu"  # a wrapper keeps its activation inside
    assert new.get_layer("embedding").embeddings_regularizer is None  # no 'embeddings' in the target
