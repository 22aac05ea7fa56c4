"""The two training loops of the cases; both resume from ``<save_dir>/ckpt-<iteration>.keras``.

Both hold the lock of ``save_dir`` while they write there and start from the checkpoint
:class:`tfastro.core.checkpoints.RunCheckpoints` picks: the newest in ``save_dir`` (resuming),
else ``pretrained_model``, else afresh; ``fresh_start`` replaces save_dir's checkpoints once
the new run has written its first. A checkpoint of another kind of model, or one that cannot
be loaded, is refused in one line naming it. A ``--lr`` other than the one the checkpoint was
trained with is set on the restored optimizers (and logged). Every checkpoint records the
run's ``--lr`` and what decides the later steps (the iteration loop's learning-rate
:class:`Plateau`, the epoch loop's early stopping) inside its one atomic write.

Divergence guard: a non-finite training or validation loss, or non-finite weights when a
checkpoint is due, stops the run with :class:`TrainingDiverged` (a UserInputError: one line,
exit status 2 from run.py) naming the iteration and the last checkpoint, which is kept; no
checkpoint is written after it.

Iteration loop (:func:`train_iterations`: supernova, multifield, dm2gal). Training runs up to
``max_iterations`` iterations. Every ``display_interval`` iterations a line is logged, every
``snapshot_interval`` (and at ``max_iterations``) a checkpoint written (the
``keep_checkpoints`` newest kept), every ``test_interval`` the model evaluated into
``<gen_frm_dir>/<iteration>/`` or, with validation data, validated (a resumed run validates at
the same iterations as an uninterrupted one). A case supplies small
callables: build its model, restore-check a checkpoint, its data from a given iteration on.

Epoch loop (:func:`train_epochs`: turbulence, prestellar), early stopping that survives
interruption. Epoch ``e`` draws its shuffling and augmentation from the seed
:func:`epoch_seed` (``seed``, ``e``), so a resumed run repeats the uninterrupted one. After
every epoch a checkpoint is written (complete model, optimizer state, step count) holding the
early-stopping state (iteration, epochs done, best validation loss, its epoch, epochs waited,
finished, the best epoch's weights) and the states of the dropout generators. Training ends
on the best epoch's weights, written to ``<save_dir>/best.keras``.
"""
import dataclasses
import os
import time
from datetime import datetime

import numpy as np

from tfastro.core.errors import UserInputError

BEST_FILE = "best.keras"


class TrainingDiverged(UserInputError):
    """Training produced a non-finite loss or non-finite weights."""


def iteration(model):
    """Optimizer steps taken by ``model``."""
    return int(model.optimizer.iterations.numpy())


def shapes(model):
    """A functional model's name, input and output shapes (without the batch axis)."""
    return model.name, tuple(model.input_shape[1:]), tuple(model.output_shape[1:])


def epoch_seed(seed, epoch):
    """The seed (< 2^31) of epoch ``epoch``'s random draws in a run of seed ``seed``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def _timestamp():
    return f"{datetime.now():%Y-%m-%d %H:%M:%S}"


def _check_finite(values, where, checkpoints):
    """TrainingDiverged unless every number in ``values`` ({name: value}) is finite."""
    bad = {k: float(v) for k, v in (values or {}).items() if not np.all(np.isfinite(v))}
    if bad:
        _diverged(", ".join(f"{k} {v}" for k, v in bad.items()), where, checkpoints)


def _check_finite_weights(model, where, checkpoints):
    bad = [v.path for v in model.weights if not np.all(np.isfinite(np.asarray(v, np.float64)))]
    if bad:
        _diverged(f"non-finite weights ({', '.join(bad[:3])})", where, checkpoints)


def _diverged(what, where, checkpoints):
    last = checkpoints.latest()
    kept = f"the last checkpoint, {last}, is kept" if last else "no checkpoint was written"
    raise TrainingDiverged(f"training diverged at {where}: {what}; stopped before writing a "
                           f"checkpoint, {kept} (lower --lr or check the data)")


def _optimizers(model):
    """The optimizers of ``model`` (both of a GAN), without loss-scaling wrappers."""
    from tfastro.core.precision import base_optimizer
    return [base_optimizer(o) for o in getattr(model.optimizer, "optimizers", [model.optimizer])]


def _apply_learning_rate(model, lr, trained_with, log):
    """Set ``lr`` (--lr) on the restored optimizers if the checkpoint was trained with another
    (``trained_with``, None: unknown, then compared with the restored rate)."""
    for optimizer in _optimizers(model):
        restored = float(np.asarray(optimizer.learning_rate))
        if np.isclose(lr, restored if trained_with is None else trained_with, rtol=1e-6):
            continue
        if not hasattr(optimizer.learning_rate, "assign"):
            raise UserInputError(f"--lr={lr}: the checkpoint's optimizer follows a learning-rate "
                                 "schedule; resume with its --lr or use --fresh_start")
        optimizer.learning_rate.assign(lr)
        log(f"--lr={lr} applied to the restored optimizer (it was trained with "
            f"{restored if trained_with is None else trained_with:g})")


def _restore(restore, model, path, flag, what, cfg, log):
    """Load checkpoint ``path`` into ``model`` with the case's ``restore``; any failure to
    load it becomes one line naming ``flag`` and the file."""
    from tfastro.core.checkpoints import check_model_class, read_run_state
    check_model_class(path, flag, model, what)
    try:
        restore(model, path, flag)
    except UserInputError:
        raise
    except Exception as err:  # a damaged file: say which
        raise UserInputError(f"{flag}: cannot load {path!r} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
    state = read_run_state(path, flag) or {}
    _apply_learning_rate(model, cfg.lr, state.get("lr"), log)
    return state


@dataclasses.dataclass(frozen=True)
class Plateau:
    """Lower the learning rate by ``factor`` after ``patience`` validations in a row whose loss
    is not below the best by more than ``min_delta`` (the rule of Keras' ReduceLROnPlateau),
    its state (best loss, validations waited) kept in every checkpoint, so that a resumed run
    lowers the rate where the uninterrupted one does."""
    factor: float = 0.1
    patience: int = 5
    min_delta: float = 1e-4

    def update(self, state, loss, model, log):
        """Count validation loss ``loss`` into ``state`` ({"best", "wait"}, updated in place)
        and lower the rate of ``model``'s optimizers when the patience runs out."""
        if loss < state["best"] - self.min_delta:
            state.update(best=float(loss), wait=0)
            return
        state["wait"] += 1
        if state["wait"] >= self.patience:
            state["wait"] = 0
            for optimizer in _optimizers(model):
                rate = float(np.asarray(optimizer.learning_rate))
                optimizer.learning_rate.assign(rate * self.factor)
                log(f"learning rate {rate:g} -> {rate * self.factor:g}: the validation loss "
                    f"did not improve on {state['best']:.5g} for {self.patience} validations")


def train_iterations(cfg, strategy, build, restore, dataset, describe, display, *,
                     iterations_of=iteration, test=None, validation=None, plateau=None,
                     callbacks=(), what="the flags", log=print):
    """Train the model of ``build`` up to ``cfg.max_iterations`` (the iteration loop of the
    module docstring); returns the model.

    Args:
      cfg: the case's config; reads save_dir, gen_frm_dir (this worker's, see
        :func:`tfastro.core.checkpoints.worker_strategy`), fresh_start, pretrained_model,
        keep_checkpoints, seed, lr, max_iterations, display_interval, snapshot_interval and
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
      validation: a validation dataset, evaluated every ``test_interval`` iterations and at
        ``max_iterations`` (Keras epochs end there, also in a resumed run), its loss logged
        and seen by ``plateau`` and ``callbacks``; a checkpoint due at such an iteration is
        written after the validation.
      plateau: a :class:`Plateau` lowering the learning rate on the validation loss.
      callbacks: further Keras callbacks of ``fit``.
      what: the flags that choose the model, for the refusal of another model's checkpoint.
    """
    from tfastro.core.checkpoints import save_dir_lock
    if plateau is not None and validation is None:
        raise ValueError("plateau: needs a validation dataset")
    with save_dir_lock(cfg.save_dir, log):
        return _train_iterations(cfg, strategy, build, restore, dataset, describe, display,
                                 iterations_of, test, validation, plateau, callbacks, what, log)


def _train_iterations(cfg, strategy, build, restore, dataset, describe, display, iterations_of,
                      test, validation, plateau, callbacks, what, log):
    import keras

    from tfastro.core.checkpoints import RunCheckpoints, results_dir
    checkpoints = RunCheckpoints(cfg.save_dir, cfg.keep_checkpoints, cfg.fresh_start,
                                 cfg.pretrained_model, log)
    checkpoint, flag = checkpoints.start
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = build()
    state = {}
    if checkpoint:
        state = _restore(restore, model, checkpoint, flag, what, cfg, log)
        log(f"{'starting' if flag == '--pretrained_model' else 'resuming'} from {checkpoint}")
    start = iterations_of(model)
    log(describe(model, start))
    if start >= cfg.max_iterations:
        log(f"already at iteration {start} >= --max_iterations={cfg.max_iterations}: "
            "nothing to train")
        return model
    resumed = flag != "--pretrained_model" and state.get("plateau")
    plateau_state = dict(resumed) if resumed else {"best": np.inf, "wait": 0}

    def save(itr):
        _check_finite_weights(model, f"iteration {itr}", checkpoints)
        run_state = {"lr": cfg.lr}
        if plateau is not None:
            run_state["plateau"] = plateau_state
        log(f"saved {checkpoints.save(model, itr, run_state)}")

    def validated(itr):
        return validation is not None and (itr % cfg.test_interval == 0
                                           or itr >= cfg.max_iterations)

    class Intervals(keras.callbacks.Callback):
        itr = start
        save_after_validation = False

        def on_train_batch_end(self, batch, logs=None):
            self.itr = itr = self.itr + 1
            _check_finite(logs, f"iteration {itr}", checkpoints)
            if itr % cfg.display_interval == 0:
                log(f"{_timestamp()} itr: {itr}{display(logs, itr - start)}")
            if itr % cfg.snapshot_interval == 0 or itr >= cfg.max_iterations:
                if validated(itr):
                    self.save_after_validation = True
                else:
                    save(itr)
            if test is not None and itr % cfg.test_interval == 0:
                test(model, results_dir(cfg.gen_frm_dir, itr))
            if itr >= cfg.max_iterations:
                model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if validation is None:
                return
            loss = logs["val_loss"]
            _check_finite({"val_loss": loss}, f"iteration {self.itr}", checkpoints)
            log(f"validation loss {loss:.5f} at iteration {self.itr}")
            if plateau is not None:
                plateau.update(plateau_state, loss, model, log)
            if self.save_after_validation:
                self.save_after_validation = False
                save(self.itr)

    began = time.time()
    intervals = Intervals()
    for first, epochs in _fits(start, cfg.max_iterations,
                               cfg.test_interval if validation is not None else None):
        model.fit(dataset(first), validation_data=validation, verbose=0, shuffle=False,
                  callbacks=[*callbacks, intervals], **epochs)
    log(f"trained iterations {start + 1}..{cfg.max_iterations} in {time.time() - began:.1f} s")
    return model


def _fits(start, stop, interval):
    """``[(first iteration, fit's epoch arguments)]`` training iterations start + 1 .. stop:
    one Keras epoch without validation (``interval`` None), else epochs ending at the multiples
    of ``interval`` and at ``stop`` (the last is cut short there), a resumed run's first one
    in a fit of its own if it starts between two multiples."""
    if interval is None:
        return [(start, dict(epochs=1, steps_per_epoch=stop - start))]
    fits = []
    epoch = start // interval
    if start % interval:
        fits.append((start, dict(initial_epoch=epoch, epochs=epoch + 1,
                                 steps_per_epoch=min((epoch + 1) * interval, stop) - start)))
        start, epoch = (epoch + 1) * interval, epoch + 1
    if start < stop:
        fits.append((start, dict(initial_epoch=epoch, epochs=-(-stop // interval),
                                 steps_per_epoch=interval)))
    return fits


def load_checkpoint(path, flag, expected, what, signature=shapes):
    """The compiled model (weights, optimizer state, step count) of checkpoint ``path``.

    Refuses (UserInputError naming ``flag``) a checkpoint of another kind of model, a file
    Keras cannot load, or one whose ``signature`` (default: name, input and output shapes)
    differs from that of ``expected`` (the model the flags ask for; ``what`` names those
    flags). Its weight decay becomes ``expected``'s.
    """
    import keras

    from tfastro.core.checkpoints import check_model_class
    from tfastro.core.precision import base_optimizer
    check_model_class(path, flag, expected, what)
    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # a damaged or foreign file: say which
        raise UserInputError(f"{flag}: cannot load {path!r} as a {expected.name} checkpoint "
                             f"({type(err).__name__}: {err})") from None
    found, wanted = signature(model), signature(expected)
    if found != wanted:
        raise UserInputError(f"{flag}: checkpoint {path!r} holds {found}; the flags ({what}) "
                             f"ask for {wanted}")
    base_optimizer(model.optimizer).weight_decay = base_optimizer(expected.optimizer).weight_decay
    return model


def evaluation_model(cfg, expected, what, log, signature=shapes):
    """The model an ``is_training=False`` run of the epoch loop scores: the checkpoint
    ``cfg.pretrained_model`` (a file or a folder's newest), else the newest in
    ``cfg.save_dir``, with the best epoch's weights its early-stopping state holds."""
    from tfastro.core.checkpoints import evaluation_checkpoint, read_run_state
    path, flag = evaluation_checkpoint(cfg.save_dir, cfg.pretrained_model)
    model = load_checkpoint(path, flag, expected, what, signature)
    best = (read_run_state(path, flag) or {}).get("best_weights")
    if best is not None:
        model.set_weights(best)
    log(f"evaluating {path}{' (its best epoch weights)' if best is not None else ''}")
    return model


def _generator_states(model):
    """The states of the random-number generators of ``model``'s layers (dropout masks),
    which Keras does not save."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def train_epochs(cfg, strategy, build, what, train, validation, log, signature=shapes):
    """Train from the checkpoint of ``cfg.save_dir`` / ``cfg.pretrained_model`` (or afresh)
    until early stopping (``cfg.patience``) or ``cfg.epochs`` epochs, writing the checkpoints
    of the module docstring (``cfg.keep_checkpoints`` kept); returns the model on the best
    epoch's weights. A finished run only restores them.

    Args:
      cfg: reads save_dir, fresh_start, pretrained_model, keep_checkpoints, seed, lr, epochs
        and patience.
      strategy: the tf.distribute strategy the model is built (or loaded) under.
      build: ``() -> model``, compiled and built (called in ``strategy``'s scope after
        seeding Keras with ``cfg.seed``): the model the flags ask for.
      what: the flags fixing the model's shapes (for refusing a checkpoint).
      train: ``seed -> tf.data.Dataset``: one epoch of training batches, shuffled and
        augmented from ``seed``.
      validation: the validation dataset.
      signature: ``model -> value`` a checkpoint must share with the built model.
    """
    import keras

    from tfastro.core.checkpoints import RunCheckpoints, read_run_state, save_dir_lock, save_model
    with save_dir_lock(cfg.save_dir, log):
        checkpoints = RunCheckpoints(cfg.save_dir, cfg.keep_checkpoints, cfg.fresh_start,
                                     cfg.pretrained_model, log)
        keras.utils.set_random_seed(cfg.seed)
        path, flag = checkpoints.start
        with strategy.scope():
            model = build()
            if path:
                model = load_checkpoint(path, flag, model, what, signature)
        state = None
        if path:
            stored = read_run_state(path, flag) or {}
            _apply_learning_rate(model, cfg.lr, stored.get("lr"), log)
            state = stored if flag != "--pretrained_model" and "epoch" in stored else None
            log(f"{'resuming' if state else 'starting'} from {path} (iteration "
                f"{iteration(model)})")
        _fit_epochs(model, train, validation, state, checkpoints, cfg, log)
        log(f"{save_model(model, os.path.join(cfg.save_dir, BEST_FILE))} holds the best "
            "epoch's weights")
    return model


def _fit_epochs(model, train, validation, state, checkpoints, cfg, log):
    """The epochs of :func:`train_epochs` from ``state`` (None: the first); leaves ``model``
    on the best epoch's weights."""
    import keras
    state = state or {"epoch": 0, "best": np.inf, "best_epoch": -1, "wait": 0,
                      "finished": False, "best_weights": None}
    if state["wait"] >= cfg.patience or state["epoch"] >= cfg.epochs:
        log(f"training already finished at epoch {state['epoch']} (early stopping or --epochs)")

    class Guard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            _check_finite(logs, f"epoch {epoch + 1}, iteration {iteration(model)}", checkpoints)

    for variable, value in zip(_generator_states(model), state.get("generators", [])):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    for epoch in range(state["epoch"], cfg.epochs):
        if state["wait"] >= cfg.patience:
            break
        history = model.fit(train(epoch_seed(cfg.seed, epoch)), validation_data=validation,
                            initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=0,
                            callbacks=[Guard()])
        losses = {k: history.history[k][-1] for k in ("loss", "val_loss")}
        where = f"epoch {epoch + 1}, iteration {iteration(model)}"
        _check_finite(losses, where, checkpoints)
        _check_finite_weights(model, where, checkpoints)
        if losses["val_loss"] < state["best"]:
            state.update(best=float(losses["val_loss"]), best_epoch=epoch, wait=0,
                         best_weights=model.get_weights())
        else:
            state["wait"] += 1
        state.update(iteration=iteration(model), epoch=epoch + 1, lr=cfg.lr,
                     generators=[v.numpy().tolist() for v in _generator_states(model)],
                     finished=state["wait"] >= cfg.patience or epoch + 1 >= cfg.epochs)
        log(f"{_timestamp()} epoch {epoch + 1}  itr: {iteration(model)}  loss "
            f"{losses['loss']:.5f}  validation loss {losses['val_loss']:.5f}")
        checkpoints.save(model, iteration(model), state)
    if state["best_weights"] is not None:
        model.set_weights(state["best_weights"])
        log(f"best validation loss {state['best']:.5f} at epoch {state['best_epoch'] + 1}")


def write_json(out_dir, name, value):
    """Write ``value`` as ``out_dir/name`` (indented JSON), atomically."""
    from tfastro.core.atomic import write_json as write
    return write(os.path.join(out_dir, name), value)
