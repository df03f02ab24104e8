"""Any Keras model with a regularization configuration attached: choose layers, clone, rewrite.

A resolved configuration (the flat dict of ``describe``: kind, strength,
target, placement, constraint, dropout) becomes Keras objects on an existing
architecture. Each chosen layer is re-created from its config with the
penalties and constraints it can take; placement ``"before"`` moves its
activation into an ``Activation`` layer of the layer's own name after a
linear copy named ``<name>_linear`` (the tutorials' by-hand rewrite); noise
layers go after the chosen layers (``<name>_dropout``) and after the float
inputs. Every weight is new (freshly initialized), and the result holds only
built-in Keras layers, regularizers and constraints, so a saved copy loads in
safe mode without regsearch.

Sequential models stay Sequential (built from ``model.inputs``, so one built
by ``build(shape)`` without an ``Input`` works too); functional models are
rewritten with ``keras.models.clone_model``'s ``clone_function`` and
``call_function``. A model used as a layer inside another (a nested
Sequential or functional model) is rewritten the same way, recursively: its
layers are named by path, ``"encoder/dense_1"``, and chosen like the others.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from regsearch.errors import SettingError
from regsearch.space import make_constraint, make_dropout, make_regularizer

__all__ = ["LayerPlan", "default_layer_types", "is_rewritable", "layer_paths", "plan_layers", "regularized", "rewrite",
           "select_layers"]

#: Weight names a regularizer or constraint target maps to in a layer's config.
WEIGHT_KEYS = {
    "kernel": ("kernel", "depthwise", "pointwise"),
    "bias": ("bias",),
    "recurrent": ("recurrent",),
    "embeddings": ("embeddings",),
}
_RECURRENT = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
_WRAPPERS = (keras.layers.Bidirectional, keras.layers.TimeDistributed)


def default_layer_types() -> tuple[type, ...]:
    """The layer classes chosen when ``layers`` is not given: Dense, Conv, recurrent, Embedding.

    ``Bidirectional`` and ``TimeDistributed`` wrappers of them are chosen too;
    their penalties go on the wrapped layers' weights.
    """
    layers = keras.layers
    return (
        layers.Dense, layers.EinsumDense,
        layers.Conv1D, layers.Conv2D, layers.Conv3D,
        layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose,
        layers.SeparableConv1D, layers.SeparableConv2D, layers.DepthwiseConv1D, layers.DepthwiseConv2D,
        *_RECURRENT, layers.Embedding,
    )


@dataclass(frozen=True)
class LayerPlan:
    """What one chosen layer can take.

    Attributes:
        name: The layer's name (kept by the rewritten layer, or by its Activation with placement before);
            inside a nested model, its path: ``"encoder/dense_1"``.
        targets: Regularizer targets the layer has (``activity`` always; ``kernel``, ``bias``, ...).
        constraint_targets: Constraint targets it has.
        can_go_before: True if its activation can move into its own layer (Dense, Conv).
    """

    name: str
    targets: frozenset[str]
    constraint_targets: frozenset[str]
    can_go_before: bool


def layer_paths(model: keras.Model) -> Iterator[tuple[str, keras.layers.Layer]]:
    """Every layer but the inputs, in model order, by path; a nested model's layers follow it.

    A top-level layer's path is its name; a layer inside a nested Sequential
    or functional model is ``"<model name>/<layer name>"`` (deeper: more parts).
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        yield layer.name, layer
        if _is_nested(layer):
            for path, inner in layer_paths(layer):
                yield f"{layer.name}/{path}", inner


def select_layers(model: keras.Model, layers: Any = None, where: str = "Regularize") -> list[keras.layers.Layer]:
    """The model's layers that ``layers`` picks, in model order, nested models' layers included.

    Args:
        model: A Sequential or functional model.
        layers: None (every Dense, Conv, recurrent and Embedding layer except
            the output layers, inside nested models too), or a name, glob
            pattern (``"dense_*"``), layer class, or a list of them. A name or
            pattern matches a layer's name or its path (``"encoder/dense_1"``);
            one that names a nested model picks that model's Dense, Conv,
            recurrent and Embedding layers.
        where: Names the caller in error messages.

    Raises:
        SettingError: A selector matches no layer (the message lists the layers
            there are), or nothing is left to regularize.
    """
    paths = list(layer_paths(model))
    leaves = [(path, layer) for path, layer in paths if not _is_nested(layer)]
    names = [path for path, _ in paths]
    if layers is None:
        outputs = output_layer_names(model)
        chosen = [layer for path, layer in leaves
                  if isinstance(_unwrapped(layer), default_layer_types()) and path not in outputs]
        if not chosen:
            raise SettingError("layers", "given: the model has no Dense, Conv, recurrent or Embedding layer "
                               f"besides its output layers (its layers: {', '.join(names)})", None, where)
        return chosen
    selectors = [layers] if isinstance(layers, (str, type)) else layers
    if not isinstance(selectors, Sequence) or not selectors:
        raise SettingError("layers", "a layer name, glob pattern, layer class or a non-empty list of them",
                           layers, where)
    nested = [path for path, layer in paths if _is_nested(layer)]
    picked: set[int] = set()
    for selector in selectors:
        matched = {id(layer) for path, layer in leaves if _matches(path, layer, selector, where)}
        if isinstance(selector, str):  # a nested model's name stands for its regularizable layers
            for model_path in (p for p in nested if fnmatch.fnmatchcase(p, selector)):
                matched |= {id(layer) for path, layer in leaves if path.startswith(f"{model_path}/")
                            and isinstance(_unwrapped(layer), default_layer_types())}
        if not matched:
            raise SettingError("layers", f"a name, pattern or class matching one of the model's layers: "
                               f"{', '.join(names)}", selector, where)
        picked |= matched
    return [layer for _, layer in leaves if id(layer) in picked]


def plan_layers(layers: Sequence[keras.layers.Layer], model: keras.Model | None = None) -> list[LayerPlan]:
    """What each chosen layer can take, read from its config.

    Args:
        layers: The chosen layers (``select_layers``).
        model: The model they are in: names each plan by the layer's path
            (needed for layers of nested models). None: by the layer's name.
    """
    paths = {id(layer): path for path, layer in layer_paths(model)} if model is not None else {}
    plans = []
    for layer in layers:
        config = _weight_configs(layer.get_config())[0]
        weights = {target for target, keys in WEIGHT_KEYS.items()
                   if any(f"{key}_regularizer" in config for key in keys) and _has_weight(config, target)}
        constrained = {target for target, keys in WEIGHT_KEYS.items()
                       if any(f"{key}_constraint" in config for key in keys) and _has_weight(config, target)}
        before = "activation" in config and not isinstance(layer, (*_RECURRENT, *_WRAPPERS))
        plans.append(LayerPlan(paths.get(id(layer), layer.name), frozenset(weights | {"activity"}),
                               frozenset(constrained), before))
    return plans


def rewrite(model: keras.Model, plans: Sequence[LayerPlan], config: dict[str, Any],
            constraint_targets: Sequence[str] = ("kernel",)) -> keras.Model:
    """A new, uncompiled model: ``model``'s architecture with ``config`` attached to the planned layers.

    Args:
        model: A built Sequential or functional model (not changed).
        plans: The chosen layers (``plan_layers``).
        config: A resolved configuration (``RegularizedHyperModel.describe``).
        constraint_targets: The weights the constraint acts on.

    Returns:
        The rewritten model, with fresh weights.
    """
    return _rewrite(model, _Edits(config, {plan.name: plan for plan in plans}, tuple(constraint_targets)))


def _rewrite(model: keras.Model, edits: _Edits) -> keras.Model:
    if isinstance(model, keras.Sequential):
        return _rewrite_sequential(model, edits)
    return _rewrite_functional(model, edits)


def regularized(layer: keras.layers.Layer, config: dict[str, Any], constraint_targets: Sequence[str] = ("kernel",),
                plan: LayerPlan | None = None) -> list[keras.layers.Layer]:
    """``layer`` re-created with the configuration's penalties and constraints, and what must follow it.

    The first layer returned takes ``layer``'s place: its config plus new
    regularizer and constraint objects for the weights it has. With placement
    ``"before"`` it is a linear copy named ``<name>_linear``, followed by an
    ``Activation`` of the layer's own name and activation. The built-in
    HyperModels build their layers through this too.
    """
    plan = plan or plan_layers([layer])[0]
    layer_config, edited = layer.get_config(), layer.get_config()
    regularizes = config.get("kind", "none") != "none"
    targets = config["target"].split("+") if regularizes else []
    if "activity" in targets:  # on the layer's output (a wrapper's too)
        edited["activity_regularizer"] = make_regularizer(config)
    for weights in _weight_configs(edited):  # the layer's own config, or the wrapped layers' (Bidirectional)
        for target in targets:
            if target in plan.targets and target != "activity":
                for key in WEIGHT_KEYS[target]:
                    if f"{key}_regularizer" in weights:
                        weights[f"{key}_regularizer"] = make_regularizer(config)
        if config.get("constraint", "none") != "none":
            for target in constraint_targets:
                if target in plan.constraint_targets:
                    for key in WEIGHT_KEYS[target]:
                        if f"{key}_constraint" in weights:
                            weights[f"{key}_constraint"] = make_constraint(config, _norm_axis(weights, key))
    if not (plan.can_go_before and config.get("placement") == "before"):
        return [layer.__class__.from_config(edited)]
    edited.update(activation="linear", name=f"{layer.name}_linear")
    return [layer.__class__.from_config(edited), keras.layers.Activation(layer_config["activation"], name=layer.name)]


class _Edits:
    """The per-layer changes of one configuration, and the layers they add (once per layer, shared layers too)."""

    def __init__(self, config: dict[str, Any], plans: dict[str, LayerPlan], constraint_targets: tuple[str, ...],
                 outermost: bool = True):
        self.config, self.plans, self.constraint_targets = config, plans, constraint_targets
        drops = config.get("dropout_kind", "none") != "none"
        self.hidden_noise = drops and config.get("dropout_where") in ("hidden", "both")
        # Input noise goes on the whole model's inputs, not again on a nested model's.
        self.input_noise = outermost and drops and config.get("dropout_where") in ("input", "both")
        self.followers: dict[str, list[keras.layers.Layer]] = {}

    def clone(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        if _is_nested(layer):
            prefix = f"{layer.name}/"
            inner = {name[len(prefix):]: dataclasses.replace(plan, name=name[len(prefix):])
                     for name, plan in self.plans.items() if name.startswith(prefix)}
            if inner:
                return _rewrite(layer, _Edits(self.config, inner, self.constraint_targets, outermost=False))
        plan = self.plans.get(layer.name)
        if plan is None:
            return layer.__class__.from_config(layer.get_config())
        new, *activation = regularized(layer, self.config, self.constraint_targets, plan)
        noise = [make_dropout(self.config, f"{layer.name}_dropout")] if self.hidden_noise else []
        self.followers[layer.name] = activation + noise
        return new

    def following(self, original: keras.layers.Layer) -> list[keras.layers.Layer]:
        """The layers after a chosen layer (cloned first): its activation (placement before), then noise."""
        return self.followers.get(original.name, [])


def _rewrite_sequential(model: keras.Sequential, edits: _Edits) -> keras.Sequential:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise SettingError("model", "a built Sequential model (start it with keras.Input(shape))",
                           model.name, "Regularize")
    source = inputs[0]
    stack: list[Any] = [keras.Input(batch_shape=source.shape, dtype=source.dtype, name=source.name)]
    if edits.input_noise and _is_float(source):
        stack.append(make_dropout(edits.config, "input_dropout"))
    for layer in model.layers:
        stack += [edits.clone(layer), *edits.following(layer)]
    return keras.Sequential(stack, name=model.name)


def _rewrite_functional(model: keras.Model, edits: _Edits) -> keras.Model:
    inputs = keras.tree.map_structure(
        lambda tensor: keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name), model.input
    )
    noised: dict[int, Any] = {}
    if edits.input_noise:
        floats = [tensor for tensor in keras.tree.flatten(inputs) if _is_float(tensor)]
        for tensor in floats:
            name = "input_dropout" if len(floats) == 1 else f"{tensor.name}_dropout"
            noised[id(tensor)] = make_dropout(edits.config, name)(tensor)
    originals: dict[int, keras.layers.Layer] = {}

    def clone_function(layer: keras.layers.Layer) -> keras.layers.Layer:
        new = edits.clone(layer)
        originals[id(new)] = layer
        return new

    def call_function(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if noised:
            args, kwargs = keras.tree.map_structure(lambda value: noised.get(id(value), value), (args, kwargs))
        outputs = layer(*args, **kwargs)
        for follower in edits.following(originals[id(layer)]) if id(layer) in originals else ():
            outputs = follower(outputs)
        return outputs

    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_function,
                                    call_function=call_function)


def is_rewritable(model: keras.Model) -> bool:
    """True for Sequential and functional models; a subclassed model's layers live in Python code.

    ``keras.Model(inputs, outputs)`` makes an instance of Keras's private
    ``Functional`` class (Keras 3.15), the one class ``clone_model`` can rewrite.
    """
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def output_layer_names(model: keras.Model) -> set[str]:
    """The layers with weights that make each output: the output layer, or the one before a weightless tail.

    A model ending in ``Dense(10) -> Activation("softmax")`` has ``Dense`` as its
    output layer; where a nested model makes an output, its own output layer
    does (by path, ``"head/dense"``). Reads the producing layer of a tensor from
    ``KerasTensor._keras_history`` (Keras 3.15), a private attribute.
    """
    if isinstance(model, keras.Sequential):
        for layer in reversed(model.layers):
            if layer.weights:
                return _output_paths(layer)
        return set()
    names = set()
    for tensor in keras.tree.flatten(model.outputs):
        layer = tensor._keras_history.operation
        while not layer.weights and isinstance(getattr(layer, "input", None), keras.KerasTensor):
            layer = layer.input._keras_history.operation
        if not isinstance(layer, keras.layers.InputLayer):
            names |= _output_paths(layer)
    return names


def _output_paths(layer: keras.layers.Layer) -> set[str]:
    """A layer that makes an output: its name, or a nested model's own output layers by path."""
    if _is_nested(layer):
        return {f"{layer.name}/{name}" for name in output_layer_names(layer)}
    return {layer.name}


def _is_nested(layer: keras.layers.Layer) -> bool:
    """True for a Sequential or functional model used as a layer (its layers are rewritten too)."""
    return isinstance(layer, keras.Model) and is_rewritable(layer)


def _matches(path: str, layer: keras.layers.Layer, selector: Any, where: str) -> bool:
    if isinstance(selector, type):
        return isinstance(layer, selector)
    if isinstance(selector, str):
        return fnmatch.fnmatchcase(path, selector) or fnmatch.fnmatchcase(layer.name, selector)
    raise SettingError("layers", "layer names, glob patterns or layer classes", selector, where)


def _has_weight(config: dict[str, Any], target: str) -> bool:
    return target != "bias" or config.get("use_bias", True)


def _norm_axis(config: dict[str, Any], key: str) -> int | list[int]:
    """The axes a norm constraint reduces over: per output unit or filter; per word vector for embeddings."""
    if key == "embeddings":
        return 1
    rank = len(config.get("kernel_size") or ())  # Conv layers: their spatial dimensions
    if key in ("kernel", "depthwise", "pointwise") and rank > 0:
        return list(range(rank + 1))
    return 0


def _weight_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The configs that hold a layer's weight settings: its own, or those of the layers a wrapper wraps."""
    wrapped = [config[key]["config"] for key in ("layer", "backward_layer") if isinstance(config.get(key), dict)]
    return wrapped or [config]


def _unwrapped(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The layer a ``Bidirectional`` or ``TimeDistributed`` wraps; the layer itself otherwise."""
    return getattr(layer, "forward_layer", None) or getattr(layer, "layer", None) or layer


def _is_float(tensor: Any) -> bool:
    return "float" in str(tensor.dtype)
