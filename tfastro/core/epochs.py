"""Epoch-based training with early stopping that survives interruption (turbulence, column).

After every epoch a checkpoint ``<save_dir>/ckpt-<iteration>.keras`` is written (complete
model, optimizer state and step count) together with the early-stopping state:
``early_stopping.json`` (iteration, epochs done, best validation loss, its epoch, epochs
waited, finished) and ``best_weights.npz`` (the best epoch's weights). A run restarted on the
same ``save_dir`` resumes from them; training ends on the best epoch's weights, which are
checkpointed as the final state (the run then counts as finished).
"""
import json
import os
from datetime import datetime

import numpy as np

from tfastro.core.errors import UserInputError

STATE_FILE, BEST_WEIGHTS_FILE = "early_stopping.json", "best_weights.npz"


def iteration(model):
    """Optimizer steps taken by ``model``."""
    return int(model.optimizer.iterations.numpy())


def shapes(model):
    """A functional model's name, input and output shapes (without the batch axis)."""
    return model.name, tuple(model.input_shape[1:]), tuple(model.output_shape[1:])


def load_checkpoint(path, flag, expected, what, signature=shapes):
    """The compiled model (weights, optimizer state, step count) of checkpoint ``path``.

    Refuses (UserInputError naming ``flag``) a file Keras cannot load, or one whose
    ``signature`` (default: name, input and output shapes) differs from that of ``expected``
    (the model the flags ask for; ``what`` names those flags). Its learning rate and weight
    decay become ``expected``'s.
    """
    import keras

    from tfastro.core.precision import base_optimizer
    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # a damaged or foreign file: say which
        raise UserInputError(f"{flag}: cannot load {path!r} as a {expected.name} checkpoint "
                             f"({type(err).__name__}: {err})") from None
    found, wanted = signature(model), signature(expected)
    if found != wanted:
        raise UserInputError(f"{flag}: checkpoint {path!r} holds {found}; the flags ({what}) "
                             f"ask for {wanted}")
    model.optimizer.learning_rate.assign(float(expected.optimizer.learning_rate.numpy()))
    base_optimizer(model.optimizer).weight_decay = base_optimizer(expected.optimizer).weight_decay
    return model


def starting_model(cfg, expected, what, log, signature=shapes):
    """(model, early-stopping state) a training run starts from: the newest checkpoint in
    ``cfg.save_dir`` with its state (resuming), else ``cfg.pretrained_model`` (state None),
    else ``expected``, the freshly built model (``what``: the flags fixing its shapes)."""
    from tfastro.core.checkpoints import starting_checkpoint
    checkpoint, flag = starting_checkpoint(cfg.save_dir, cfg.fresh_start, cfg.pretrained_model, log)
    if not checkpoint:
        return expected, None
    model = load_checkpoint(checkpoint, flag, expected, what, signature)
    resuming = flag != "--pretrained_model"
    log(f"{'resuming' if resuming else 'starting'} from {checkpoint}")
    return model, read_state(cfg.save_dir, iteration(model), log) if resuming else None


def evaluation_model(cfg, expected, what, log, signature=shapes):
    """The model of the checkpoint an ``is_training=False`` run scores: ``cfg.pretrained_model``
    (a file or a folder's newest), else the newest in ``cfg.save_dir``."""
    from tfastro.core.checkpoints import evaluation_checkpoint
    path = evaluation_checkpoint(cfg.save_dir, cfg.pretrained_model)
    model = load_checkpoint(path, "--pretrained_model" if cfg.pretrained_model else "--save_dir",
                            expected, what, signature)
    log(f"evaluating {path}")
    return model


def read_state(save_dir, step, log):
    """The early-stopping state saved with the checkpoint of iteration ``step``, or None."""
    path = os.path.join(save_dir, STATE_FILE)
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
        if state.get("iteration") == step:
            with np.load(os.path.join(save_dir, BEST_WEIGHTS_FILE)) as best:
                state["best_weights"] = [best[f"w{i}"] for i in range(len(best.files))]
            return state
    log(f"no early-stopping state for iteration {step} in {save_dir}: it starts afresh")
    return None


def _write_state(save_dir, state, best_weights):
    """Write the early-stopping state and best weights (each atomically)."""
    weights = os.path.join(save_dir, BEST_WEIGHTS_FILE)
    np.savez(weights + ".partial.npz", **{f"w{i}": w for i, w in enumerate(best_weights)})
    os.replace(weights + ".partial.npz", weights)
    path = os.path.join(save_dir, STATE_FILE)
    with open(path + ".partial", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(path + ".partial", path)


def _early_stopping(patience, state):
    """Keras early stopping on the validation loss that restores the best weights at the
    end, continued from a saved ``state`` (best loss, its epoch and weights, epochs waited)."""
    import keras

    class Resumed(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if state:
                self.best, self.best_epoch = state["best"], state["best_epoch"]
                self.wait, self.best_weights = state["wait"], state["best_weights"]

    return Resumed(monitor="val_loss", patience=patience, restore_best_weights=True)


def train_epochs(model, train, validation, state, cfg, log):
    """Train ``model`` on the ``train`` / ``validation`` datasets from ``state`` (None: from
    the start) until early stopping (``cfg.patience``) or ``cfg.epochs`` epochs, writing the
    checkpoints and state of the module docstring to ``cfg.save_dir`` (``cfg.keep_checkpoints``
    kept). A finished state (patience or epochs used up) only restores the best weights."""
    import keras

    from tfastro.core.checkpoints import save_checkpoint
    if state and (state["wait"] >= cfg.patience or state["epoch"] >= cfg.epochs):
        log(f"training already finished at epoch {state['epoch']} (early stopping or --epochs)")
        if not state.get("finished"):  # stopped before the best weights were checkpointed
            model.set_weights(state["best_weights"])
        return
    stopping = _early_stopping(cfg.patience, state)
    epoch = state["epoch"] if state else 0

    def snapshot(finished):
        step = iteration(model)
        path = save_checkpoint(model, cfg.save_dir, step, cfg.keep_checkpoints)
        _write_state(cfg.save_dir, {"iteration": step, "epoch": epoch, "best": stopping.best,
                                    "best_epoch": stopping.best_epoch, "wait": stopping.wait,
                                    "finished": finished}, stopping.best_weights)
        return path

    class Snapshots(keras.callbacks.Callback):
        def on_epoch_end(self, index, logs=None):
            nonlocal epoch
            epoch = index + 1
            log(f"{datetime.now():%Y-%m-%d %H:%M:%S} epoch {epoch}  itr: {iteration(model)}  "
                f"loss {logs['loss']:.5f}  validation loss {logs['val_loss']:.5f}")
            snapshot(False)

    model.fit(train, validation_data=validation, initial_epoch=epoch, epochs=cfg.epochs,
              shuffle=False, verbose=0, callbacks=[stopping, Snapshots()])
    log(f"best validation loss {stopping.best:.5f} at epoch {stopping.best_epoch + 1}; "
        f"{snapshot(True)} holds its weights")


def write_json(out_dir, name, value):
    """Write ``value`` as ``out_dir/name`` (indented JSON)."""
    with open(os.path.join(out_dir, name), "w") as f:
        json.dump(value, f, indent=1)
