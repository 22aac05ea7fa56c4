"""The two training loops of the cases; both resume from ``<save_dir>/ckpt-<iteration>.keras``.

Iteration loop (:func:`train_iterations`: supernova, multifield, dm2gal). Training runs up to
``max_iterations`` iterations from the newest checkpoint in ``save_dir`` (resuming), else
``pretrained_model``, else afresh (``fresh_start`` first deletes save_dir's checkpoints). Every
``display_interval`` iterations a line is logged, every ``snapshot_interval`` a checkpoint
written (the ``keep_checkpoints`` newest kept), every ``test_interval`` the model evaluated
into ``<gen_frm_dir>/<iteration>/`` or, with validation data, validated. A case supplies small
callables: build its model, restore-check a checkpoint, its data from a given iteration on.

Epoch loop (:func:`train_epochs`: turbulence, prestellar), early stopping that survives
interruption. After every epoch a checkpoint is written (complete model, optimizer state and
step count) together with the early-stopping state: ``early_stopping.json`` (iteration,
epochs done, best validation loss, its epoch, epochs waited, finished) and
``best_weights.npz`` (the best epoch's weights). A run restarted on the same ``save_dir``
resumes from them; training ends on the best epoch's weights, which are checkpointed as the
final state (the run then counts as finished).
"""
import json
import math
import os
import time
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


def _timestamp():
    return f"{datetime.now():%Y-%m-%d %H:%M:%S}"


def train_iterations(cfg, strategy, build, restore, dataset, describe, display, *,
                     iterations_of=iteration, test=None, validation=None, callbacks=(),
                     log=print):
    """Train the model of ``build`` up to ``cfg.max_iterations`` (the iteration loop of the
    module docstring); returns the model.

    Args:
      cfg: the case's config; reads save_dir, gen_frm_dir (this worker's, see
        :func:`tfastro.core.checkpoints.worker_strategy`), fresh_start, pretrained_model,
        keep_checkpoints, seed, max_iterations, display_interval, snapshot_interval and
        test_interval.
      strategy: the tf.distribute strategy the model is built under.
      build: ``() -> model``, compiled and built (called in ``strategy``'s scope after
        seeding Keras with ``cfg.seed``).
      restore: ``(model, path, flag) -> None``: load checkpoint ``path`` into ``model`` after
        checking it was written for the same configuration (UserInputError naming ``flag``).
      dataset: ``start -> tf.data.Dataset`` of global training batches that continues the
        stream of a run from iteration 0 after ``start`` iterations (exact resume).
      describe: ``(model, start) -> str``, the line logged before training.
      display: ``(logs, steps) -> str``, what follows ``<time> itr: <iteration>`` every
        ``display_interval`` iterations (Keras' logs of the batch; ``steps``: iterations of
        this run so far).
      iterations_of: ``model -> int``, iterations done (default: its optimizer's steps).
      test: ``(model, out_dir) -> None``, an evaluation written into ``out_dir`` =
        ``<gen_frm_dir>/<iteration>`` every ``test_interval`` iterations.
      validation: a validation dataset: Keras epochs are then ``test_interval`` iterations
        long (the first from the starting iteration; the last ends at max_iterations), each
        ending with the validation loss, logged and seen by ``callbacks`` (e.g.
        ReduceLROnPlateau).
      callbacks: further Keras callbacks of ``fit``.
    """
    import keras

    from tfastro.core.checkpoints import results_dir, save_checkpoint, starting_checkpoint
    checkpoint, flag = starting_checkpoint(cfg.save_dir, cfg.fresh_start, cfg.pretrained_model, log)
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = build()
    if checkpoint:
        restore(model, checkpoint, flag)
        log(f"{'starting' if flag == '--pretrained_model' else 'resuming'} from {checkpoint}")
    start = iterations_of(model)
    log(describe(model, start))
    if start >= cfg.max_iterations:
        log(f"already at iteration {start} >= --max_iterations={cfg.max_iterations}: "
            "nothing to train")
        return model

    class Intervals(keras.callbacks.Callback):
        itr = start

        def on_train_batch_end(self, batch, logs=None):
            self.itr = itr = self.itr + 1
            if itr % cfg.display_interval == 0:
                log(f"{_timestamp()} itr: {itr}{display(logs, itr - start)}")
            if itr % cfg.snapshot_interval == 0:
                log(f"saved {save_checkpoint(model, cfg.save_dir, itr, cfg.keep_checkpoints)}")
            if test is not None and itr % cfg.test_interval == 0:
                test(model, results_dir(cfg.gen_frm_dir, itr))
            if itr >= cfg.max_iterations:
                model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if validation is not None:
                log(f"validation loss {logs['val_loss']:.5f} at iteration {self.itr}")

    if validation is None:
        epochs = dict(epochs=1, steps_per_epoch=cfg.max_iterations - start)
    else:
        epochs = dict(validation_data=validation, initial_epoch=start // cfg.test_interval,
                      epochs=math.ceil(cfg.max_iterations / cfg.test_interval),
                      steps_per_epoch=cfg.test_interval)
    began = time.time()
    model.fit(dataset(start), verbose=0, shuffle=False, callbacks=[Intervals(), *callbacks],
              **epochs)
    log(f"trained iterations {start + 1}..{cfg.max_iterations} in {time.time() - began:.1f} s")
    return model


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
            log(f"{_timestamp()} epoch {epoch}  itr: {iteration(model)}  "
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
