"""A multifield network used through Keras' own machinery, on the backend that runs it: the
TensorFlow tests call these checks directly and the JAX tests in a subprocess.

``check_workflow(factory, data, tmp_path)`` asserts that ``summary()`` counts the weights of a
model as made (it is built by its constructor); that ``fit`` with ``validation_data`` runs with
EarlyStopping and ModelCheckpoint on ``val_loss``, CSVLogger and TensorBoard (where the
tensorboard package is installed): the CSV holds the history, the checkpoint the best epoch,
which EarlyStopping restored; that a fit interrupted after its first epoch and restarted with
BackupAndRestore ends as the uninterrupted one; that ``evaluate`` gives the loss recomputed from
the model's own outputs; and that ``predict`` on numpy arrays and on a tf.data pipeline, in
batches that do not divide the data, gives what one call on everything gives.
"""
import csv
import importlib.util
import os

import keras
import numpy as np
from keras import ops

EPOCHS = 3


def _numpy(outputs):
    return [np.asarray(ops.convert_to_numpy(o), "float64")
            for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _mse(predictions, targets):
    """Keras' ``loss="mse"`` of a model with one or several outputs: the sum over outputs of
    the mean squared error."""
    return sum(float(np.mean((p - t) ** 2)) for p, t in zip(_numpy(predictions), _numpy(targets)))


class Interrupt(keras.callbacks.Callback):
    """Raise at the end of the first epoch (after BackupAndRestore has backed it up)."""

    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("interrupted")


def _fit(model, data, callbacks):
    (x, y), validation = data
    return model.fit(x, y, batch_size=3, epochs=EPOCHS, shuffle=False, validation_data=validation,
                     callbacks=callbacks, verbose=0).history


def check_workflow(factory, data, tmp_path):
    """Run the checks of the module docstring on ``factory()`` (a model compiled with
    ``loss="mse"``); data: ((x, y), (x_val, y_val)), x an array or a list of arrays."""
    tmp_path = str(tmp_path)
    model = factory()
    assert model.built, "the constructor builds the model"
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable and f"Trainable params: {trainable:,}" in "\n".join(lines), "\n".join(lines)
    initial = model.get_weights()

    # fit with validation data and callbacks
    best_path = os.path.join(tmp_path, "best.keras")
    csv_path = os.path.join(tmp_path, "history.csv")
    callbacks = [keras.callbacks.EarlyStopping("val_loss", patience=EPOCHS,
                                               restore_best_weights=True),
                 keras.callbacks.ModelCheckpoint(best_path, "val_loss", save_best_only=True),
                 keras.callbacks.CSVLogger(csv_path)]
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(tmp_path, "logs")))
    history = _fit(model, data, callbacks)
    assert len(history["val_loss"]) == EPOCHS and np.all(np.isfinite(history["val_loss"]))
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([float(r[key]) for r in rows], history[key], rtol=1e-6)
    (x, y), (x_val, y_val) = data
    best = keras.saving.load_model(best_path)
    for a, b in zip(_numpy(best.predict_on_batch(x_val)), _numpy(model.predict_on_batch(x_val))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_mse(model.predict_on_batch(x_val), y_val),
                               min(history["val_loss"]), rtol=1e-4)
    if tensorboard:
        for split in ("train", "validation"):
            assert os.listdir(os.path.join(tmp_path, "logs", split)), split

    # an interrupted fit resumed by BackupAndRestore ends as the uninterrupted one
    backup = keras.callbacks.BackupAndRestore(os.path.join(tmp_path, "backup"))
    resumed = factory()
    resumed.set_weights(initial)
    try:
        _fit(resumed, data, [backup, Interrupt()])
        raise AssertionError("the first fit was not interrupted")
    except RuntimeError as err:
        assert "interrupted" in str(err)
    rest = _fit(resumed, data, [backup])
    assert len(rest["loss"]) == EPOCHS - 1  # it resumed after the first epoch
    np.testing.assert_allclose(rest["loss"], history["loss"][1:], rtol=1e-5)
    np.testing.assert_allclose(rest["val_loss"], history["val_loss"][1:], rtol=1e-5)

    # evaluate and predict, in batches that do not divide the data
    whole = model.predict_on_batch(x)
    results = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    np.testing.assert_allclose(results["loss"], _mse(whole, y), rtol=1e-5)
    import tensorflow as tf
    dataset = tf.data.Dataset.from_tensor_slices((tuple(x) if isinstance(x, list) else x,))
    for predicted in (model.predict(x, batch_size=2, verbose=0),
                      model.predict(dataset.batch(3), verbose=0)):
        for a, b in zip(_numpy(predicted), _numpy(whole)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
