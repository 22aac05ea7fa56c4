"""The one check every tfastro model passes, on any Keras backend.

``check_model(factory, x, y, tmp_path)`` makes a compiled model with ``factory()`` and asserts:
the first call creates every weight (``fit`` adds none) and ``summary()`` counts them; one
``fit`` step on the batch reports finite losses; a ``.keras`` save/load gives the same class,
config, variables, predictions, ``evaluate`` results and optimizer state (every optimizer
variable, the iteration count included), and one more ``fit`` step on the original and on the
loaded copy gives the same logs, weights and optimizer state; under the ``mixed_bfloat16``
global policy the model builds, trains a step with finite losses, keeps float32 variables,
and predicts within bfloat16 round-off of the float32 model with the same weights.

The Keras workflow, on the batch cut into equal smaller batches:
- epoch means: ``fit`` over an epoch of several batches logs the mean of the batches' losses,
  which the loaded copy gives fitting one batch at a time (ending with the same weights), and
  ``evaluate`` over the batches the loss of the whole batch evaluated in one call;
- ``predict`` on numpy arrays and on a ``tf.data`` dataset of another batch size gives the
  predictions of one call on the whole batch;
- callbacks: ``fit`` with ``validation_data`` (the batch; without ``evaluate`` the training
  loss is monitored instead), EarlyStopping (restoring the best weights), ModelCheckpoint
  (best only), TensorBoard and CSVLogger, on a fresh model: EarlyStopping stops after
  ``patience`` epochs without improvement and restores the best epoch's weights (on which
  ``evaluate`` gives the best validation loss), the checkpoint loads with the weights of the
  epoch of the lowest monitored value, the CSV and the TensorBoard event files hold History's
  epoch losses;
- resume: a ``fit`` interrupted after its first epoch, resumed by BackupAndRestore on the
  loaded copy (one epoch behind), runs only the second epoch and ends where the original
  ends after one more epoch.

Hooks, not special cases, adapt it to each model: ``predict(model)`` reads its predictions
(default ``model.predict_on_batch(x)``), ``optimizers(model)`` lists its optimizers (default
``[model.optimizer]``), ``losses`` names the logged losses; ``evaluate``, ``float32_outputs``,
``epoch_means``, ``predict_data``, ``callbacks`` and ``resume`` switch off a check a model
cannot pass yet (say why where it is done). Without ``evaluate`` (no ``test_step``) no
validation data is given.
"""
import csv
import dataclasses
import json
import pathlib
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import ops


@dataclasses.dataclass
class CheckedModel:
    """What ``check_model`` leaves: ``model`` (trained: one fit step, ``path`` written, then
    further steps and epochs), ``loaded`` (read from ``path``, then trained to the same weights
    and optimizer state as ``model``) and ``path``."""

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


def _copy_random_states(copy, model):
    """Give ``copy`` the seed-generator states of ``model`` (as values: on JAX a shared array
    would be deleted when ``model``'s next step donates it)."""
    states = _random_states(copy), _random_states(model)
    assert len(states[0]) == len(states[1]), "a copy with other seed generators"
    for restored, original in zip(*states):
        restored.assign(ops.convert_to_numpy(original))


def check_model(factory, x, y=None, *, tmp_path, predict=None, optimizers=None,
                losses=("loss",), evaluate=True, float32_outputs=True, epoch_means=True,
                predict_data=True, predict_inputs=None, callbacks=True, resume=True):
    """Run the shared checks on ``factory()`` trained on ``(x, y)``; return a ``CheckedModel``.

    factory: callable () -> a compiled keras.Model, built or not; called again under the
      ``mixed_bfloat16`` global policy.
    x, y: one batch as ``fit`` takes it (y None for a model whose ``train_step`` reads x alone);
      x an array or a list of arrays with the batch first, of at least 2 samples (cut into
      equal batches for the workflow checks).
    tmp_path: folder for the ``.keras`` file and the callbacks' files.
    predict: callable (model) -> array or list/tuple of arrays, the predictions compared;
      its first call builds the model. Default ``model.predict_on_batch(x)``.
    optimizers: callable (model) -> list of its optimizers. Default ``[model.optimizer]``.
    losses: names of the losses ``fit`` (and ``evaluate``) logs.
    evaluate: check ``evaluate`` (it needs the model's ``test_step``) and fit with
      validation data.
    float32_outputs: the predictions of the mixed-precision model are float32.
    epoch_means, predict_data, callbacks, resume: check History's epoch means, ``predict`` on
      arrays and on a tf.data dataset, the standard callbacks, BackupAndRestore's resume.
    predict_inputs: what ``model.predict`` takes (an array or a list of arrays with the batch
      first, at least 2 samples). Default x.
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
    _copy_random_states(loaded, model)
    loaded.run_eagerly = model.run_eagerly
    before = _values(model.trainable_weights)
    logs = _fit_step(model, x, y, losses)
    assert _fit_step(loaded, x, y, losses) == logs, "the loaded copy's step logged otherwise"
    assert any(np.any(b != w) for b, w in zip(before, _values(model.trainable_weights))), \
        "the step moved no weight"
    _assert_equal(_values(loaded.weights), _values(model.weights), "variable after a step")
    _assert_same_optimizers(optimizers(loaded), optimizers(model), "after a step")

    # the Keras workflow on equal smaller batches; model and loaded stay twins. The callbacks
    # write in a folder of their own (TensorBoard reads every event file of its folder).
    size = _batch_size(len(keras.tree.flatten(x)[0]))
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f"{model.name}_", dir=tmp_path))
    if epoch_means:
        _check_epoch_means(model, loaded, x, y, losses, evaluate, size)
    if predict_data:
        inputs = x if predict_inputs is None else predict_inputs
        _check_predict_data(model, inputs, _batch_size(len(keras.tree.flatten(inputs)[0])))
    if resume:
        _check_resume(model, loaded, optimizers, x, y, losses, size, folder)
    if callbacks:
        _check_callbacks(factory, x, y, losses, evaluate, size, folder)

    _check_mixed_bfloat16(factory, x, y, model, predict, losses, float32_outputs)
    return CheckedModel(model, loaded, path)


def _batch_size(n):
    """The size of the fewest equal batches (at least two) that ``n`` samples make."""
    assert n >= 2, f"the checks need a batch of at least 2 samples, got {n}"
    return next(n // k for k in range(2, n + 1) if n % k == 0)


def _cut(data, start, stop):
    """Samples ``start:stop`` of ``data`` (None, an array or a list/tuple of arrays)."""
    return None if data is None else keras.tree.map_structure(lambda a: a[start:stop], data)


def _check_epoch_means(model, twin, x, y, losses, evaluate, size):
    """``fit`` over an epoch of batches of ``size`` logs the mean of the batches' losses, which
    ``twin`` (``model``'s state) gives fitting one batch at a time, ending with the same
    weights; ``evaluate`` over the batches gives the loss of the whole batch in one call."""
    n = len(keras.tree.flatten(x)[0])
    pieces = [(_cut(x, i, i + size), _cut(y, i, i + size)) for i in range(0, n, size)]
    history = model.fit(x, y, batch_size=size, epochs=1, shuffle=False, verbose=0).history
    steps = [_fit_step(twin, xb, yb, losses) for xb, yb in pieces]
    for name in losses:  # float32 sums in another order
        np.testing.assert_allclose(history[name][0], np.mean([s[name] for s in steps]),
                                   rtol=1e-6, err_msg=f"fit's {name} over {len(steps)} batches")
    _assert_equal(_values(twin.weights), _values(model.weights), "variable after an epoch")
    if evaluate:
        # the losses are sample means and the batches equal: the mean over the batches is the
        # loss of the whole batch in one call (whose noise, where a model draws any in
        # evaluation, is the same rows: a model may index it by sample)
        results = model.evaluate(x, y, batch_size=size, verbose=0, return_dict=True)
        whole = _evaluate(model, x, y, losses)
        for name in losses:
            np.testing.assert_allclose(results[name], whole[name], rtol=1e-5,
                                       err_msg=f"evaluate's {name} over batches of {size}")


def _check_predict_data(model, x, size):
    """``predict`` on arrays in batches of ``size`` and on a tf.data dataset in batches of
    another size gives the predictions of one call on the whole batch (within float32
    round-off: kernels may sum in another order for another batch size)."""
    n = len(keras.tree.flatten(x)[0])
    other = n - 1 if n - 1 != size else n
    whole = _numpy(model.predict_on_batch(x))
    inputs = tuple(x) if isinstance(x, list) else x
    dataset = tf.data.Dataset.from_tensor_slices((inputs,)).batch(other)
    for what, outputs in (("arrays", model.predict(x, batch_size=size, verbose=0)),
                          ("tf.data", model.predict(dataset, verbose=0))):
        outputs = _numpy(outputs)
        assert len(outputs) == len(whole), f"predict on {what}: {len(outputs)} outputs"
        for k, (out, ref) in enumerate(zip(outputs, whole)):
            assert out.shape == ref.shape, f"predict on {what}: output {k} shape {out.shape}"
            np.testing.assert_allclose(out, ref, rtol=1e-5,
                                       atol=1e-6 * max(1.0, float(np.abs(ref).max())),
                                       err_msg=f"predict on {what}, output {k}")


class _Interruption(Exception):
    """What ``_Interrupt`` raises: a fit stopped as a crash would stop it."""


class _Interrupt(keras.callbacks.Callback):
    """Stops a fit at the end of its first epoch (after the callbacks before it ran)."""

    def on_epoch_end(self, epoch, logs=None):
        raise _Interruption(f"interrupted after epoch {epoch}")


def _check_resume(model, twin, optimizers, x, y, losses, size, folder):
    """A two-epoch ``fit`` of ``model`` interrupted after its first epoch and resumed by
    BackupAndRestore on ``twin`` (in ``model``'s state before that fit) runs the second epoch
    only, logging and ending as ``model`` does in one more epoch; the backup is then deleted."""
    backup = folder / "backup"

    def fit(network, epochs, callbacks):
        return network.fit(x, y, batch_size=size, epochs=epochs, shuffle=False, verbose=0,
                           callbacks=callbacks).history

    try:
        fit(model, 2, [keras.callbacks.BackupAndRestore(str(backup)), _Interrupt()])
        raise AssertionError("the fit was not interrupted")
    except _Interruption:
        pass
    assert (backup / "latest.weights.h5").exists(), "BackupAndRestore wrote no backup"
    # a backup holds variables, not random-number states: the resumed copy is given them
    _copy_random_states(twin, model)
    resumed = fit(twin, 2, [keras.callbacks.BackupAndRestore(str(backup))])
    continued = fit(model, 1, [])
    assert {len(v) for v in resumed.values()} == {1}, f"the resumed fit ran {resumed}"
    for name in losses:
        assert resumed[name] == continued[name], f"resumed {name} {resumed[name]}, not " \
            f"{continued[name]}"
    _assert_equal(_values(twin.weights), _values(model.weights), "variable after the resume")
    _assert_same_optimizers(optimizers(twin), optimizers(model), "after the resume")
    assert not (backup / "latest.weights.h5").exists(), "the backup outlived a completed fit"


def _event_scalars(folder):
    """{tag: values in step order} of the scalar summaries in the event files in ``folder``."""
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {folder}"
    scalars = {}
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    return {tag: [v for _, v in sorted(steps)] for tag, steps in scalars.items()}


def _check_callbacks(factory, x, y, losses, evaluate, size, folder):
    """``fit`` of a fresh ``factory()`` with validation data (where the model evaluates) and
    the standard callbacks: each does its job (see the module doc)."""
    model = factory()
    monitor = ("val_" if evaluate else "") + losses[0]
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(_values(model.weights)))
    best, events, table = folder / "best.keras", folder / "tensorboard", folder / "history.csv"
    # no epoch improves on the first by an infinite margin: EarlyStopping stops after
    # patience = 1 epoch more and restores the first epoch's weights
    history = model.fit(
        x, y, batch_size=size, epochs=4, shuffle=False, verbose=0,
        validation_data=(x, y) if evaluate else None,
        callbacks=[record,
                   keras.callbacks.EarlyStopping(monitor, min_delta=np.inf, patience=1,
                                                 mode="min", restore_best_weights=True),
                   keras.callbacks.ModelCheckpoint(best, monitor, save_best_only=True,
                                                   mode="min"),
                   keras.callbacks.TensorBoard(events, write_graph=False),
                   keras.callbacks.CSVLogger(table)]).history
    epochs = len(history[monitor])
    assert epochs == 2, f"EarlyStopping (patience 1) let {epochs} epochs run"
    _assert_equal(_values(model.weights), snapshots[0], "variable restored by EarlyStopping")
    if evaluate:  # the restored weights give the first epoch's validation losses
        results = model.evaluate(x, y, batch_size=size, verbose=0, return_dict=True)
        for name in losses:
            np.testing.assert_allclose(results[name], history["val_" + name][0], rtol=1e-6,
                                       err_msg=f"evaluate after the restore: {name}")
    checkpoint = keras.saving.load_model(best)
    assert type(checkpoint) is type(model), f"the checkpoint holds a {type(checkpoint)}"
    _assert_equal(_values(checkpoint.weights), snapshots[int(np.argmin(history[monitor]))],
                  "checkpoint variable (its best epoch)")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == list(range(epochs)), rows
    for name, values in history.items():  # written as text
        np.testing.assert_allclose([float(row[name]) for row in rows], values, rtol=1e-6,
                                   err_msg=f"CSV column {name}")
    for split, prefix in (("train", ""), ("validation", "val_"))[:1 + evaluate]:
        scalars = _event_scalars(events / split)
        for name in losses:
            np.testing.assert_allclose(scalars.get(f"epoch_{name}"), history[prefix + name],
                                       rtol=1e-6, err_msg=f"TensorBoard {split} {name}")


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
