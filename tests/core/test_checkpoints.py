"""Checkpoint files and their folder: atomic writes, the save_dir lock (a second process
refused, a dead one's lock taken over), leftovers of interrupted writes, fresh starts that keep
the pretrained checkpoint, and one-line refusals naming the file."""
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfastro.core import atomic, checkpoints
from tfastro.core.checkpoints import (LOCK_FILE, RunCheckpoints, check_model_class,
                                      evaluation_checkpoint, list_checkpoints, read_run_state,
                                      save_checkpoint, save_dir_lock)
from tfastro.core.errors import UserInputError


def _model(name="linear", units=1):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)], name=name)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _names(folder):
    return sorted(os.listdir(folder))


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path):
    """Ctrl-C in the middle of a write: the old file stays, the half-written one is removed
    (a kill, which nothing can catch, leaves it for the save_dir lock to clear)."""
    path = str(tmp_path / "metrics.json")
    atomic.write_json(path, {"mse": 1.0})

    def interrupted(partial):
        with open(partial, "w") as f:
            f.write('{"ms')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomically(path, interrupted)
    with open(path) as f:
        assert json.load(f) == {"mse": 1.0}
    assert _names(tmp_path) == ["metrics.json"]


def test_checkpoint_holds_the_run_state(tmp_path):
    model = _model()
    weights = [np.full((3, 1), 2.0), np.array([0.5])]
    path = save_checkpoint(model, str(tmp_path), 7, state={"lr": 0.01, "epoch": 3,
                                                           "best_weights": weights})
    state = read_run_state(path, "--save_dir")
    assert state["lr"] == 0.01 and state["epoch"] == 3
    for stored, original in zip(state["best_weights"], weights):
        np.testing.assert_array_equal(stored, original)
    restored = keras.saving.load_model(path)  # Keras reads it as any checkpoint
    for a, b in zip(restored.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert read_run_state(save_checkpoint(model, str(tmp_path), 8), "--save_dir") is None


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    save_dir = str(tmp_path / "ckpt")
    lines = []
    with save_dir_lock(save_dir, lines.append):
        with open(os.path.join(save_dir, LOCK_FILE)) as f:
            assert json.load(f) == {"pid": os.getpid(), "host": socket.gethostname(),
                                    "started": checkpoints._process_start(os.getpid())}
        with pytest.raises(UserInputError, match=rf"--save_dir='{save_dir}': in use by pid "
                                                 rf"{os.getpid()} on host"):
            with save_dir_lock(save_dir, lines.append):
                pass
    assert not os.path.exists(save_dir)  # released, and the folder it made removed
    os.makedirs(save_dir)

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    with open(os.path.join(save_dir, LOCK_FILE), "w") as f:
        json.dump({"pid": pid, "host": socket.gethostname()}, f)
    for name in ("ckpt-3.partial.keras", "ckpt-2.keras"):
        (tmp_path / "ckpt" / name).write_bytes(b"x")
    with save_dir_lock(save_dir, lines.append):
        assert _names(save_dir) == ["ckpt-2.keras", LOCK_FILE]
    assert f"warning: taking over {save_dir}/{LOCK_FILE} of pid {pid}, which is no longer " \
           "running" in lines
    assert any(line.startswith("removed ckpt-3.partial.keras") for line in lines)

    # this process's pid, held by an earlier process (a restarted container): taken over
    with open(os.path.join(save_dir, LOCK_FILE), "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": 1}, f)
    with save_dir_lock(save_dir, lines.append):
        pass
    assert f"warning: taking over {save_dir}/{LOCK_FILE} of pid {os.getpid()}, which is no " \
           "longer running" in lines

    with open(os.path.join(save_dir, LOCK_FILE), "w") as f:  # cannot be checked from here
        json.dump({"pid": pid, "host": "another-host"}, f)
    with pytest.raises(UserInputError, match=f"in use by pid {pid} on host another-host"):
        with save_dir_lock(save_dir, lines.append):
            pass


def test_lock_refuses_a_second_process(tmp_path):
    save_dir = str(tmp_path / "ckpt")
    second = ("from tfastro.core.checkpoints import save_dir_lock\n"
              f"with save_dir_lock({save_dir!r}):\n    pass\n")
    with save_dir_lock(save_dir):
        other = subprocess.run([sys.executable, "-c", second], capture_output=True, text=True)
    assert other.returncode != 0
    assert f"--save_dir={save_dir!r}: in use by pid {os.getpid()}" in other.stderr


def test_lock_refuses_a_file_and_leaves_no_folder_behind(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserInputError, match="is a file, expected a folder"):
        with save_dir_lock(str(tmp_path / "file")):
            pass
    with pytest.raises(ValueError):
        with save_dir_lock(str(tmp_path / "new")):
            raise ValueError("a check failed before anything was written")
    assert _names(tmp_path) == ["file"]


def test_fresh_start_replaces_checkpoints_only_when_it_writes_and_spares_the_pretrained(tmp_path):
    save_dir, model = str(tmp_path), _model()
    for itr in (1, 2, 3):
        save_checkpoint(model, save_dir, itr)
    pretrained = os.path.join(save_dir, "ckpt-2.keras")
    lines = []
    run = RunCheckpoints(save_dir, 2, fresh_start=True, pretrained_model=pretrained,
                         log=lines.append)
    assert run.start == (pretrained, "--pretrained_model")
    assert _names(save_dir) == ["ckpt-1.keras", "ckpt-2.keras", "ckpt-3.keras"]  # nothing yet
    run.save(model, 3)
    run.save(model, 4)
    run.save(model, 5)
    assert _names(save_dir) == ["ckpt-2.keras", "ckpt-4.keras", "ckpt-5.keras"]
    assert any("--fresh_start: removed 2 checkpoint(s)" in line for line in lines)
    lines = []
    resumed = RunCheckpoints(save_dir, 2, pretrained_model=pretrained, log=lines.append)
    newest = os.path.join(save_dir, "ckpt-5.keras")
    assert resumed.start == (newest, f"--save_dir={save_dir}")
    assert lines == [f"--pretrained_model={pretrained!r} is not used: the run resumes from "
                     f"{newest} (--fresh_start starts from --pretrained_model instead)"]
    assert [itr for itr, _ in list_checkpoints(save_dir)] == [2, 4, 5]


def test_refusals_name_the_file_and_what_it_holds(tmp_path):
    other = _model("column_net", units=2)
    path = save_checkpoint(other, str(tmp_path / "ckpt"), 4)
    inputs = keras.Input((3,))
    mine = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="cnn")
    check_model_class(path, "--save_dir", other, "--model_name")  # the same kind passes
    with pytest.raises(UserInputError, match=rf"^--pretrained_model: '{path}' holds a "
                                             r"Sequential model \('column_net'\), not the "
                                             r"Functional model \('cnn'\) that --model_name"):
        check_model_class(path, "--pretrained_model", mine, "--model_name")
    with open(path, "wb") as f:
        f.write(b"truncated")
    found, flag = evaluation_checkpoint(str(tmp_path / "ckpt"))
    assert (found, flag) == (path, f"--save_dir={tmp_path / 'ckpt'}")
    with pytest.raises(UserInputError, match=rf"^--save_dir={tmp_path / 'ckpt'}: '{path}' is "
                                             "not a Keras checkpoint"):
        check_model_class(found, flag, mine, "--model_name")
