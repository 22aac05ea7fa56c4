"""The two loops on tiny models. Iteration loop: intervals of display, snapshot and test,
checkpoint rotation, the last iteration saved, exact resume, pretrained and fresh starts, a
changed --lr, validation epochs, divergence. Epoch loop: early stopping, resuming (also after a
kill at any write) equal to the uninterrupted run, divergence."""
import dataclasses
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfastro.core import atomic
from tfastro.core.checkpoints import read_run_state
from tfastro.core.loops import (Plateau, TrainingDiverged, epoch_seed, iteration,
                                train_epochs, train_iterations)

WEIGHTS = np.array([[1.0], [-2.0], [0.5]], np.float32)


@dataclasses.dataclass
class Config:
    save_dir: str
    gen_frm_dir: str
    max_iterations: int = 6
    display_interval: int = 2
    snapshot_interval: int = 1
    test_interval: int = 3
    keep_checkpoints: int = 2
    fresh_start: bool = False
    pretrained_model: str = ""
    seed: int = 0
    lr: float = 0.05


def _config(root, **overrides):
    return Config(save_dir=str(root / "ckpt"), gen_frm_dir=str(root / "res"), **overrides)


def _build():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _batch(number):
    """Batch ``number`` of the training stream: planted linear targets."""
    x = tf.random.stateless_normal((8, 3), tf.stack([tf.constant(7, tf.int64), number]))
    return x, x @ WEIGHTS


def _dataset(start):
    return tf.data.Dataset.counter(start).map(_batch)


class Recorder:
    """The loop's callables, recording what they are given."""

    def __init__(self):
        self.lines, self.restored, self.tested, self.displayed = [], [], [], []

    def run(self, cfg, **options):
        def restore(model, path, flag):
            self.restored.append((os.path.basename(path), flag))
            model.load_weights(path)

        def display(logs, steps):
            self.displayed.append(steps)
            return f"  loss {logs['loss']:.5f}"

        def test(model, out_dir):
            self.tested.append((iteration(model), os.path.relpath(out_dir, cfg.gen_frm_dir)))

        return train_iterations(cfg, tf.distribute.get_strategy(), _build, restore, _dataset,
                                lambda model, start: f"linear model from iteration {start}",
                                display, test=test, log=self.lines.append, **options)

    def iterations_logged(self):
        return [int(m.group(1)) for line in self.lines if (m := re.search(r" itr: (\d+)", line))]


def _state(model):
    return [np.asarray(v) for v in model.weights + model.optimizer.variables]


def test_intervals_rotation_and_exact_resume(tmp_path):
    whole = Recorder()
    reference = whole.run(_config(tmp_path / "a"))
    assert iteration(reference) == 6
    assert whole.iterations_logged() == [2, 4, 6] and whole.displayed == [2, 4, 6]
    assert whole.tested == [(3, "3"), (6, "6")]
    assert sorted(os.listdir(tmp_path / "a" / "ckpt")) == ["ckpt-5.keras", "ckpt-6.keras"]
    assert whole.lines[0] == "linear model from iteration 0" and not whole.restored
    keras.utils.set_random_seed(0)
    initial = np.asarray(_build().weights[0])  # what the loop built and trained
    error = np.abs(np.asarray(reference.weights[0]) - WEIGHTS).sum()
    assert error < np.abs(initial - WEIGHTS).sum() - 6 * 0.05  # each Adam step ~ lr closer

    split = Recorder()
    split.run(_config(tmp_path / "b", max_iterations=4))
    resumed = Recorder()
    model = resumed.run(_config(tmp_path / "b"))
    assert resumed.restored == [("ckpt-4.keras", f"--save_dir={tmp_path / 'b' / 'ckpt'}")]
    assert any(line.startswith("resuming from") and line.endswith("ckpt-4.keras")
               for line in resumed.lines)
    assert "linear model from iteration 4" in resumed.lines
    assert resumed.iterations_logged() == [6] and resumed.displayed == [2]
    assert split.tested + resumed.tested == whole.tested
    for a, b in zip(_state(reference), _state(model)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert sorted(os.listdir(tmp_path / "b" / "ckpt")) == ["ckpt-5.keras", "ckpt-6.keras"]

    again = Recorder()
    assert iteration(again.run(_config(tmp_path / "b"))) == 6
    assert any("nothing to train" in line for line in again.lines) and not again.tested
    assert sorted(os.listdir(tmp_path / "b" / "ckpt")) == ["ckpt-5.keras", "ckpt-6.keras"]


def test_pretrained_and_fresh_starts(tmp_path):
    Recorder().run(_config(tmp_path / "a", max_iterations=2))
    pretrained = Recorder()
    model = pretrained.run(_config(tmp_path / "b", max_iterations=3,
                                   pretrained_model=str(tmp_path / "a" / "ckpt")))
    assert pretrained.restored == [("ckpt-2.keras", "--pretrained_model")]
    assert any(line.startswith("starting from") for line in pretrained.lines)
    assert iteration(model) == 3 and pretrained.tested == [(3, "3")]
    assert sorted(os.listdir(tmp_path / "a" / "ckpt")) == ["ckpt-1.keras", "ckpt-2.keras"]

    fresh = Recorder()
    model = fresh.run(_config(tmp_path / "a", max_iterations=1, fresh_start=True))
    assert not fresh.restored and iteration(model) == 1
    assert any("--fresh_start: removed 2 checkpoint(s)" in line for line in fresh.lines)
    assert sorted(os.listdir(tmp_path / "a" / "ckpt")) == ["ckpt-1.keras"]


def test_validation_epochs_of_test_interval_iterations(tmp_path):
    seen = []

    class ValidationLosses(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["val_loss"])

    validation = _dataset(1000).take(2)
    recorder = Recorder()
    model = recorder.run(_config(tmp_path, max_iterations=5, test_interval=2),
                         validation=validation, callbacks=[ValidationLosses()])
    assert iteration(model) == 5
    logged = [(float(m.group(1)), int(m.group(2))) for line in recorder.lines
              if (m := re.fullmatch(r"validation loss (\S+) at iteration (\d+)", line))]
    assert [itr for _, itr in logged] == [2, 4, 5]
    np.testing.assert_allclose([loss for loss, _ in logged], seen, rtol=1e-4)
    final = np.mean([np.mean((model.predict_on_batch(x) - y) ** 2) for x, y in validation])
    np.testing.assert_allclose(seen[-1], final, rtol=1e-4)
    assert seen[-1] < seen[0]  # training on the planted weights lowers the validation loss
    resumed = Recorder()
    resumed.run(_config(tmp_path, max_iterations=9, test_interval=2), validation=validation)
    assert [line.split()[-1] for line in resumed.lines if line.startswith("validation")] \
        == ["6", "8", "9"]  # where an uninterrupted run validates


@pytest.mark.parametrize("number", [3, 4])
def test_learning_rate_plateau_resumes_where_the_uninterrupted_run_lowers_it(
        tmp_path, monkeypatch, number):
    """A plateau of patience 1 that no loss beats after the first validation halves the rate
    at every later validation (iterations 4 and 6): killed at ckpt-3 (inside an epoch) or at
    ckpt-4 (written after that validation), the resumed run validates and lowers the rate at
    the same iterations and ends with the uninterrupted run's state."""
    validation = _dataset(1000).take(2)
    plateau = Plateau(factor=0.5, patience=1, min_delta=1e9)
    options = dict(max_iterations=6, test_interval=2, keep_checkpoints=9)

    def run(recorder, cfg):
        return recorder.run(cfg, validation=validation, plateau=plateau)

    whole = Recorder()
    reference = run(whole, _config(tmp_path / "whole", **options))
    lowered = [line for line in whole.lines if "learning rate" in line]
    assert [line.split(":")[0] for line in lowered] == ["learning rate 0.05 -> 0.025",
                                                        "learning rate 0.025 -> 0.0125"]
    np.testing.assert_allclose(float(reference.optimizer.learning_rate.numpy()), 0.0125)
    cfg = _config(tmp_path / "killed", **options)
    killed, resumed = Recorder(), Recorder()
    with monkeypatch.context() as patch:
        kill_at_write(patch, number)
        with pytest.raises(Killed):
            run(killed, cfg)
    model = run(resumed, cfg)
    # resumed from ckpt-2 (after the validation at 2) or ckpt-3 (inside the second epoch)
    assert [line.split()[-1] for line in resumed.lines if line.startswith("validation loss ")] \
        == ["4", "6"]
    assert [line for line in resumed.lines if "learning rate" in line] == lowered
    for a, b in zip(_state(reference), _state(model), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert read_run_state(os.path.join(cfg.save_dir, "ckpt-6.keras"), "") == \
        read_run_state(os.path.join(tmp_path / "whole" / "ckpt", "ckpt-6.keras"), "")


def test_last_iteration_is_saved_and_a_changed_lr_applied_on_resume(tmp_path):
    first = Recorder()
    first.run(_config(tmp_path, max_iterations=3, snapshot_interval=2, keep_checkpoints=5))
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["ckpt-2.keras", "ckpt-3.keras"]
    same = Recorder()
    model = same.run(_config(tmp_path, max_iterations=4))
    assert not any("--lr" in line for line in same.lines)
    np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), 0.05)
    changed = Recorder()
    model = changed.run(_config(tmp_path, max_iterations=5, lr=0.01))
    assert "--lr=0.01 applied to the restored optimizer (it was trained with 0.05)" \
        in changed.lines
    np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), 0.01)
    again = Recorder()  # ckpt-5 records --lr=0.01: nothing changes
    model = again.run(_config(tmp_path, max_iterations=6, lr=0.01))
    assert not any("--lr" in line for line in again.lines)
    np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), 0.01)


@pytest.mark.parametrize("number", [2, pytest.param(1, marks=pytest.mark.slow),
                                    pytest.param(3, marks=pytest.mark.slow)])
def test_iteration_run_killed_at_a_write_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch,
                                                                          number):
    """Checkpoints at iterations 2, 4 and 5 (the last); a run killed at write ``number``, then
    rerun, equals the uninterrupted run."""
    options = dict(max_iterations=5, snapshot_interval=2, keep_checkpoints=5, test_interval=9)
    reference = Recorder().run(_config(tmp_path / "whole", **options))
    cfg = _config(tmp_path / "killed", **options)
    with monkeypatch.context() as patch:
        writes = kill_at_write(patch, number)
        with pytest.raises(Killed):
            Recorder().run(cfg)
    assert [os.path.basename(path) for path in writes] == \
        ["ckpt-2.keras", "ckpt-4.keras", "ckpt-5.keras"][:number]
    resumed = Recorder()
    model = resumed.run(cfg)
    assert f"removed ckpt-{[2, 4, 5][number - 1]}.partial.keras, left in {cfg.save_dir} by an " \
           "interrupted write" in resumed.lines
    for a, b in zip(_state(reference), _state(model)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert sorted(os.listdir(cfg.save_dir)) == ["ckpt-2.keras", "ckpt-4.keras", "ckpt-5.keras"]


def _diverging_dataset(start, bad=3):
    """The training stream with an infinite input in batch ``bad`` (iteration bad + 1)."""
    return tf.data.Dataset.counter(start).map(
        lambda n: (lambda x, y: (tf.where(n == bad, np.inf, x), y))(*_batch(n)))


def test_divergence_stops_without_a_checkpoint_and_keeps_the_good_ones(tmp_path):
    cfg = _config(tmp_path, max_iterations=6, snapshot_interval=1, keep_checkpoints=2)
    recorder = Recorder()
    with pytest.raises(TrainingDiverged) as caught:
        train_iterations(cfg, tf.distribute.get_strategy(), _build,
                         lambda model, path, flag: model.load_weights(path), _diverging_dataset,
                         lambda model, start: "", lambda logs, steps: "", log=recorder.lines.append)
    last = os.path.join(cfg.save_dir, "ckpt-3.keras")
    assert str(caught.value) == (
        f"training diverged at iteration 4: loss {np.nan}; stopped before writing a checkpoint, "
        f"the last checkpoint, {last}, is kept (lower --lr or check the data)")
    assert sorted(os.listdir(cfg.save_dir)) == ["ckpt-2.keras", "ckpt-3.keras"]  # lock released
    keras.utils.set_random_seed(0)
    model = _build()
    model.load_weights(last)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in model.weights)


@dataclasses.dataclass
class EpochConfig:
    save_dir: str
    epochs: int = 4
    patience: int = 2
    keep_checkpoints: int = 2
    fresh_start: bool = False
    pretrained_model: str = ""
    seed: int = 3
    lr: float = 0.05


def _dropout_model():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden), name="dropout_net")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


X = tf.random.stateless_normal((24, 3), (1, 2))
Y = X @ WEIGHTS


def _epoch_data(seed):
    """One epoch: the 24 samples shuffled and jittered from ``seed``, batches of 8."""
    noise = 0.1 * tf.random.stateless_normal(X.shape, (seed, 1))
    return tf.data.Dataset.from_tensor_slices((X + noise, Y)).shuffle(24, seed=seed).batch(8)


# targets of another slope: the validation loss has a minimum, then rises (early stopping)
VALIDATION = tf.data.Dataset.from_tensor_slices((X[:8], 0.8 * Y[:8])).batch(8)


def _train_epochs(cfg, lines=None, data=_epoch_data):
    return train_epochs(cfg, tf.distribute.get_strategy(), _dropout_model, "--model_name",
                        data, VALIDATION, (lines if lines is not None else []).append)


class Killed(BaseException):
    """What a kill does to the run: nothing after it runs (not even except Exception)."""


def kill_at_write(monkeypatch, number):
    """Make the ``number``-th atomic write of checkpoints stop the run after writing its
    temporary file, before renaming it (a kill between two writes)."""
    from tfastro.core import checkpoints
    writes = []

    def write_atomically(path, write):
        writes.append(path)
        if len(writes) == number:
            write(atomic.partial_path(path))
            raise Killed(path)
        return atomic.write_atomically(path, write)

    monkeypatch.setattr(checkpoints, "write_atomically", write_atomically)
    return writes


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory):
    """(config, model, log lines) of an uninterrupted run that early stopping ends after
    epoch 5 of 6 (patience 1)."""
    cfg = EpochConfig(str(tmp_path_factory.mktemp("whole")), epochs=6, patience=1)
    lines = []
    return cfg, _train_epochs(cfg, lines), lines


def test_early_stopping_keeps_the_best_epoch_apart(early_stopped):
    cfg, reference, lines = early_stopped
    epochs = [line for line in lines if " itr: " in line]
    assert len(epochs) == 5 and "best validation loss" in lines[-2]
    assert sorted(os.listdir(cfg.save_dir)) == ["best.keras", "ckpt-12.keras", "ckpt-15.keras"]
    state = read_run_state(os.path.join(cfg.save_dir, "ckpt-15.keras"), "")
    assert (state["epoch"], state["wait"], state["finished"]) == (5, 1, True)
    assert state["best_epoch"] == 3 and state["iteration"] == 15
    losses = [float(line.split()[-1]) for line in epochs]
    assert state["best"] == pytest.approx(min(losses), abs=1e-5) and np.argmin(losses) == 3
    for a, b in zip(reference.get_weights(), state["best_weights"]):
        np.testing.assert_array_equal(a, b)
    best = keras.saving.load_model(os.path.join(cfg.save_dir, "best.keras"))
    for a, b in zip(reference.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(a, b)
    last = keras.saving.load_model(os.path.join(cfg.save_dir, "ckpt-15.keras"))
    assert not np.array_equal(last.get_weights()[0], best.get_weights()[0])  # epoch 5's own


@pytest.mark.parametrize("number", [3, 6, *[pytest.param(n, marks=pytest.mark.slow)
                                            for n in (1, 2, 4, 5)]])
def test_epoch_run_killed_at_a_write_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch,
                                                                      early_stopped, number):
    """A run killed at write ``number`` (epochs 1-5, then best.keras), then rerun, ends in
    the uninterrupted run's state: dropout, shuffling and jitter included."""
    cfg, reference, _ = early_stopped
    killed = dataclasses.replace(cfg, save_dir=str(tmp_path))
    with monkeypatch.context() as patch:
        writes = kill_at_write(patch, number)
        with pytest.raises(Killed):
            _train_epochs(killed)
    assert len(writes) == number
    lines = []
    resumed = _train_epochs(killed, lines)
    assert any(line.startswith("removed ") and ".partial.keras" in line for line in lines)
    assert iteration(resumed) == 15
    for a, b in zip(_state(reference), _state(resumed)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert sorted(os.listdir(killed.save_dir)) == sorted(os.listdir(cfg.save_dir))


def test_epoch_resume_with_more_epochs_equals_the_longer_run(tmp_path):
    reference = _train_epochs(EpochConfig(str(tmp_path / "a"), epochs=3, patience=5))
    split = EpochConfig(str(tmp_path / "b"), epochs=1, patience=5)
    _train_epochs(split)
    lines = []
    again = _train_epochs(dataclasses.replace(split, epochs=3), lines)
    assert any(line.startswith("resuming from") and "ckpt-3.keras" in line for line in lines)
    for a, b in zip(_state(reference), _state(again)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    lines = []
    _train_epochs(dataclasses.replace(split, epochs=3), lines)
    assert any("training already finished at epoch 3" in line for line in lines)


def test_epoch_divergence_stops_and_keeps_the_last_checkpoint(tmp_path):
    cfg = EpochConfig(str(tmp_path), epochs=4, patience=5)

    def data(seed):  # the third epoch meets an infinite target
        bad = seed == epoch_seed(cfg.seed, 2)
        return _epoch_data(seed).map(lambda x, y: (x, y * np.inf if bad else y))

    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch 3, iteration 7: "
                                               r"loss (inf|nan).* the last checkpoint, .*"
                                               r"ckpt-6\.keras, is kept"):
        _train_epochs(cfg, data=data)
    assert sorted(os.listdir(cfg.save_dir)) == ["ckpt-3.keras", "ckpt-6.keras"]
