"""The one check every tfastro model passes.

``check_model(factory, x, y, tmp_path)`` makes a compiled model with ``factory()`` and asserts:
the first call creates every weight (``fit`` adds none) and ``summary()`` counts them; one
``fit`` step on the batch reports finite losses; a ``.keras`` save/load gives the same class,
config, variables, predictions, ``evaluate`` results and optimizer state (every optimizer
variable, the iteration count included), and one more ``fit`` step on the original and on the
loaded copy gives the same logs, weights and optimizer state; under the ``mixed_bfloat16``
global policy the model builds, trains a step with finite losses, keeps float32 variables,
and predicts within bfloat16 round-off of the float32 model with the same weights.

Hooks, not special cases, adapt it to each model: ``predict(model)`` reads its predictions
(default ``model.predict_on_batch(x)``), ``optimizers(model)`` lists its optimizers (default
``[model.optimizer]``), ``losses`` names the logged losses; ``evaluate`` and
``float32_outputs`` switch off a check a model cannot pass yet (say why where it is done).
"""
import dataclasses
import json
import pathlib

import keras
import numpy as np
from keras import ops


@dataclasses.dataclass
class CheckedModel:
    """What ``check_model`` leaves: ``model`` (two fit steps), ``loaded`` (read from ``path``,
    written after the first step, then one step) and ``path``."""

    model: keras.Model
    loaded: keras.Model
    path: pathlib.Path


def _numpy(outputs):
    """Predictions (an array, a tensor or a list/tuple of them) as a list of float32 arrays."""
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(ops.convert_to_numpy(ops.cast(o, "float32"))) for o in outputs]


def _json(config):
    """``config`` as the JSON text a .keras file stores (where tuples come back as lists)."""
    return json.dumps(config, sort_keys=True, default=repr)


def _values(variables):
    return [np.asarray(ops.convert_to_numpy(v)) for v in variables]


def _assert_equal(actual, expected, what):
    assert len(actual) == len(expected), f"{what}: {len(actual)} values, expected {len(expected)}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{what} {k}: shape {a.shape} != {e.shape}"
        np.testing.assert_array_equal(a, e, err_msg=f"{what} {k}")


def _assert_same_optimizers(restored, original, what):
    """The same optimizer classes, iteration counts and variables."""
    assert len(restored) == len(original), f"{what}: {len(restored)} optimizers"
    for k, (a, b) in enumerate(zip(restored, original)):
        assert type(a) is type(b), f"{what}: optimizer {k} is a {type(a)}"
        steps = [int(ops.convert_to_numpy(o.iterations)) for o in (a, b)]
        assert steps[0] == steps[1], f"{what}: optimizer {k} at step {steps[0]}, not {steps[1]}"
        _assert_equal(_values(a.variables), _values(b.variables), f"{what}: optimizer {k} variable")


def _assert_float32_variables(model):
    for w in model.weights:
        if "float" in keras.backend.standardize_dtype(w.dtype):
            assert w.dtype == "float32", f"{w.path} is {w.dtype} under mixed_bfloat16"


def _fit_step(model, x, y, losses):
    """One fit step on the whole batch, in order; returns its logs after checking that every
    logged value is finite and the ``losses`` are among them."""
    batch = len(keras.tree.flatten(x)[0])
    history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0).history
    logs = {name: float(values[-1]) for name, values in history.items()}
    assert set(losses) <= set(logs), f"fit logged {sorted(logs)}, expected {losses}"
    assert all(np.isfinite(v) for v in logs.values()), logs
    return logs


def _evaluate(model, x, y, losses):
    """``evaluate`` on the whole batch; returns its results after checking that every value
    is finite and the ``losses`` are among them."""
    batch = len(keras.tree.flatten(x)[0])
    results = model.evaluate(x, y, batch_size=batch, verbose=0, return_dict=True)
    assert set(losses) <= set(results), f"evaluate gave {sorted(results)}, expected {losses}"
    assert all(np.isfinite(float(v)) for v in results.values()), results
    return {name: float(v) for name, v in results.items()}


def _random_states(model):
    """The seed-generator states (dropout masks and other draws) of ``model``'s layers."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def check_model(factory, x, y=None, *, tmp_path, predict=None, optimizers=None,
                losses=("loss",), evaluate=True, float32_outputs=True):
    """Run the shared checks on ``factory()`` trained on ``(x, y)``; return a ``CheckedModel``.

    factory: callable () -> a compiled keras.Model, built or not; called again under the
      ``mixed_bfloat16`` global policy.
    x, y: one batch as ``fit`` takes it (y None for a model whose ``train_step`` reads x alone);
      x an array or a list of arrays with the batch first.
    tmp_path: folder for the ``.keras`` file.
    predict: callable (model) -> array or list/tuple of arrays, the predictions compared;
      its first call builds the model. Default ``model.predict_on_batch(x)``.
    optimizers: callable (model) -> list of its optimizers. Default ``[model.optimizer]``.
    losses: names of the losses ``fit`` (and ``evaluate``) logs.
    evaluate: check ``evaluate`` (it needs the model's ``test_step``).
    float32_outputs: the predictions of the mixed-precision model are float32.
    """
    predict = predict or (lambda model: model.predict_on_batch(x))
    optimizers = optimizers or (lambda model: [model.optimizer])

    # build: the first call creates every weight, and summary() counts the trainable ones
    model = factory()
    first = _numpy(predict(model))
    assert model.built and model.trainable_weights, "the first call must build the weights"
    assert all(np.all(np.isfinite(p)) for p in first), "predictions not finite"
    shapes = [tuple(w.shape) for w in model.weights]
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert f"Trainable params: {trainable:,}" in "\n".join(lines), "\n".join(lines)

    # one fit step
    _fit_step(model, x, y, losses)
    assert [tuple(w.shape) for w in model.weights] == shapes, "fit created weights"
    for optimizer in optimizers(model):
        assert int(ops.convert_to_numpy(optimizer.iterations)) > 0, "no optimizer step taken"

    # .keras round trip: the same variables, predictions and optimizer state
    path = pathlib.Path(tmp_path) / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), f"loaded a {type(loaded)}"
    assert _json(loaded.get_config()) == _json(model.get_config()), "config changed"
    _assert_equal(_values(loaded.weights), _values(model.weights), "variable")
    # same weights, same operations in the same order: the same float32 bits
    _assert_equal(_numpy(predict(loaded)), _numpy(predict(model)), "prediction")
    _assert_same_optimizers(optimizers(loaded), optimizers(model), "restored")
    if evaluate:
        results = _evaluate(model, x, y, losses)
        assert _evaluate(loaded, x, y, losses) == results, "evaluate changed"

    # continue training: the loaded copy takes the step the original takes (the same program
    # on the same state: the same bits). A .keras file holds variables, not random-number
    # states (dropout's seed generators) nor run settings: the copy is given both.
    states = _random_states(loaded), _random_states(model)
    assert len(states[0]) == len(states[1]), "loaded with other seed generators"
    for restored, original in zip(*states):
        restored.assign(original)
    loaded.run_eagerly = model.run_eagerly
    before = _values(model.trainable_weights)
    logs = _fit_step(model, x, y, losses)
    assert _fit_step(loaded, x, y, losses) == logs, "the loaded copy's step logged otherwise"
    assert any(np.any(b != w) for b, w in zip(before, _values(model.trainable_weights))), \
        "the step moved no weight"
    _assert_equal(_values(loaded.weights), _values(model.weights), "variable after a step")
    _assert_same_optimizers(optimizers(loaded), optimizers(model), "after a step")

    _check_mixed_bfloat16(factory, x, y, model, predict, losses, float32_outputs)
    return CheckedModel(model, loaded, path)


def _check_mixed_bfloat16(factory, x, y, reference, predict, losses, float32_outputs):
    """``factory()`` under the mixed_bfloat16 policy, given ``reference``'s weights: its
    predictions are within bfloat16 round-off of ``reference``'s, and it trains a step."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = factory()
        predict(mixed)  # builds
        mixed.set_weights(reference.get_weights())
        _assert_float32_variables(mixed)
        outputs = predict(mixed)
        if float32_outputs:
            for k, out in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                assert keras.backend.standardize_dtype(out.dtype) == "float32", \
                    f"output {k} is {out.dtype} under mixed_bfloat16"
        # bfloat16 keeps 8 significant bits (rounding 2^-9 relative); every layer rounds its
        # inputs, weights and products, and the errors of the larger terms carry through
        # cancellations and through the layers, so the bound is set by the scale of the
        # outputs, or of the O(1) inputs and activations where an output is a small sum of
        # them: 2^-5 of the largest of 1 and the outputs' magnitudes (as for a layer).
        expected = _numpy(predict(reference))
        outputs = _numpy(outputs)
        assert len(outputs) == len(expected), "mixed_bfloat16 changed the number of outputs"
        for k, (out, ref) in enumerate(zip(outputs, expected)):
            atol = 2.0**-5 * max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(out, ref, rtol=0, atol=atol,
                                       err_msg=f"mixed_bfloat16 vs float32 output {k}")
        assert any(np.any(out != ref) for out, ref in zip(outputs, expected)), \
            "the same bits as float32: nothing ran in bfloat16"
        _fit_step(mixed, x, y, losses)
        _assert_float32_variables(mixed)
    finally:
        keras.mixed_precision.set_global_policy(previous)
