"""The iteration loop on a linear model: intervals of display, snapshot and test, checkpoint
rotation, exact resume, pretrained and fresh starts, validation epochs."""
import dataclasses
import os
import re

import keras
import numpy as np
import tensorflow as tf

from tfastro.core.loops import iteration, train_iterations

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
    resumed.run(_config(tmp_path, max_iterations=7, test_interval=2), validation=validation)
    assert [line.split()[-1] for line in resumed.lines if line.startswith("validation")] \
        == ["7"]  # epochs count from the starting iteration
