"""Checkpoints of a training run (``<save_dir>/ckpt-<iteration>.keras``), the lock of their
folder, and result folders.

Each file is a complete Keras archive: model weights, optimizer state (moments, the weight
moving averages, its step count), the model's iteration counter and sampling eta, and the
model configuration used to refuse a checkpoint of another configuration. The archive also
holds ``tfastro.json``, the run's state at that point (the ``--lr`` it was trained with; for
epoch-based training the early-stopping state, the best epoch's weights in
``best_weights.npz``), written in the same atomic write as the model.

A training run holds ``<save_dir>/tfastro.lock`` (its pid and host) while it writes there
(:func:`save_dir_lock`); :class:`RunCheckpoints` decides what it starts from and writes,
rotates and (``--fresh_start``) replaces the checkpoints.
"""
import contextlib
import dataclasses
import io
import json
import os
import re
import socket
import zipfile

import numpy as np

from tfastro.core.atomic import PARTIAL, write_atomically
from tfastro.core.errors import UserInputError

_NAME = re.compile(r"^ckpt-(\d+)\.keras$")
LOCK_FILE = "tfastro.lock"
STATE_ENTRY, BEST_WEIGHTS_ENTRY = "tfastro.json", "best_weights.npz"


def checkpoint_path(save_dir, iteration):
    return os.path.join(save_dir, f"ckpt-{int(iteration)}.keras")


def list_checkpoints(save_dir):
    """[(iteration, path)] of the checkpoints in ``save_dir``, oldest first."""
    if not os.path.isdir(save_dir):
        return []
    found = [(int(m.group(1)), os.path.join(save_dir, f))
             for f in os.listdir(save_dir) if (m := _NAME.match(f))]
    return sorted(found)


def latest_checkpoint(save_dir):
    found = list_checkpoints(save_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(path, flag="--pretrained_model"):
    """A checkpoint file, or the latest checkpoint of a directory; UserInputError otherwise."""
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise UserInputError(f"{flag}: directory {path!r} holds no checkpoint (ckpt-<N>.keras)")
        return latest
    if not os.path.isfile(path):
        raise UserInputError(f"{flag}: {path!r} is neither a checkpoint file nor a directory")
    return path


def _archive_entry(path, name, flag):
    """The bytes of ``name`` in the Keras archive ``path`` (None if absent)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name) if name in archive.namelist() else None
    except (OSError, zipfile.BadZipFile) as err:
        raise UserInputError(f"{flag}: {path!r} is not a Keras checkpoint ({err})") from None


def read_checkpoint_config(path, flag="--pretrained_model"):
    """(model config dict, build input shape) stored in checkpoint ``path``."""
    stored = _model_entry(path, flag)
    return stored.get("config", {}), (stored.get("build_config") or {}).get("input_shape")


def _model_entry(path, flag):
    raw = _archive_entry(path, "config.json", flag)
    try:
        return json.loads(raw)
    except (TypeError, ValueError) as err:
        raise UserInputError(f"{flag}: {path!r} is not a Keras checkpoint (config.json: "
                             f"{'missing' if raw is None else err})") from None


def check_model_class(path, flag, expected, what):
    """UserInputError naming ``flag``, ``path`` and the model it holds when checkpoint ``path``
    holds another kind of model than ``expected`` (``what``: the flags choosing it)."""
    stored = _model_entry(path, flag)
    theirs, ours = stored.get("class_name"), type(expected).__name__
    if theirs != ours:
        name = (stored.get("config") or {}).get("name")
        raise UserInputError(f"{flag}: {path!r} holds a {theirs} model ({name!r}), not the "
                             f"{ours} model ({expected.name!r}) that {what} ask for")


def read_run_state(path, flag):
    """The run state stored in checkpoint ``path`` (module docstring), with ``best_weights``
    (a list of arrays) when it has them; None for a checkpoint without one."""
    raw = _archive_entry(path, STATE_ENTRY, flag)
    if raw is None:
        return None
    state = json.loads(raw)
    best = _archive_entry(path, BEST_WEIGHTS_ENTRY, flag)
    if best is not None:
        with np.load(io.BytesIO(best)) as arrays:
            state["best_weights"] = [arrays[f"w{i}"] for i in range(len(arrays.files))]
    return state


def evaluation_checkpoint(save_dir, pretrained_model=""):
    """(path, flag) of the checkpoint an ``is_training=False`` run uses: ``pretrained_model``
    (a file or a directory's newest), else the newest in ``save_dir``; UserInputError naming
    the flag."""
    if not pretrained_model and not os.path.isdir(save_dir):
        raise UserInputError("--is_training=False needs --pretrained_model or a --save_dir "
                             f"with checkpoints; {save_dir!r} does not exist")
    flag = "--pretrained_model" if pretrained_model else f"--save_dir={save_dir}"
    return resolve_checkpoint(pretrained_model or save_dir, flag), flag


def worker_strategy(cfg):
    """(the tf.distribute strategy of ``cfg.strategy`` / ``cfg.n_gpu``, ``cfg`` with the
    save_dir and gen_frm_dir this process writes to): the chief's own, or ``<dir>/worker<k>``
    for another worker of a multi-worker run (see :func:`tfastro.core.distribute.worker_dir`)."""
    from tfastro.core.distribute import get_strategy, worker_dir
    strategy = get_strategy(cfg.strategy, cfg.n_gpu)
    return strategy, dataclasses.replace(cfg, save_dir=worker_dir(cfg.save_dir, strategy),
                                         gen_frm_dir=worker_dir(cfg.gen_frm_dir, strategy))


def results_dir(gen_frm_dir, iteration):
    """``<gen_frm_dir>/<iteration>``, or ``<iteration>_2``, ``_3`` ... if that one is taken;
    UserInputError naming a file found there."""
    base = os.path.join(gen_frm_dir, str(int(iteration)))
    path, n = base, 1
    while os.path.exists(path):
        if not os.path.isdir(path):
            raise UserInputError(f"--gen_frm_dir: {path!r} is a file; expected the results "
                                 f"folder of iteration {int(iteration)} (move the file away)")
        if not os.listdir(path):
            break
        n += 1
        path = f"{base}_{n}"
    os.makedirs(path, exist_ok=True)
    return path


def save_checkpoint(model, save_dir, iteration, state=None):
    """Write ``ckpt-<iteration>.keras`` (with the run ``state``, module docstring) atomically;
    returns its path."""
    os.makedirs(save_dir, exist_ok=True)
    return save_model(model, checkpoint_path(save_dir, iteration), state)


def save_model(model, path, state=None):
    """Write ``model`` (and the run ``state``, module docstring) to ``path`` atomically."""
    return write_atomically(path, lambda partial: _save_model(model, partial, state))


def _save_model(model, path, state):
    model.save(path)
    if state is None:
        return
    state = dict(state)
    best = state.pop("best_weights", None)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(STATE_ENTRY, json.dumps(state, indent=1))
        if best is not None:
            arrays = io.BytesIO()
            np.savez(arrays, **{f"w{i}": np.asarray(w) for i, w in enumerate(best)})
            archive.writestr(BEST_WEIGHTS_ENTRY, arrays.getvalue())


class RunCheckpoints:
    """The checkpoints one training run reads and writes in ``save_dir``.

    ``start`` is (path, flag) of the checkpoint the run starts from, or (None, None): the
    newest in ``save_dir`` (the run resumes), else ``pretrained_model`` (a file or a
    directory's newest). With ``fresh_start`` the run starts from ``pretrained_model`` or
    afresh, and save_dir's checkpoints are removed only once it has written its first one
    (never the ``pretrained_model`` one, which rotation spares as well).
    """

    def __init__(self, save_dir, keep, fresh_start=False, pretrained_model="", log=print):
        self.save_dir, self.keep, self.log = save_dir, keep, log
        pretrained = resolve_checkpoint(pretrained_model) if pretrained_model else None
        self.spared = {os.path.realpath(pretrained)} if pretrained else set()
        existing = [path for _, path in list_checkpoints(save_dir)]
        self.replaced = []
        if existing and fresh_start:
            self.replaced = [p for p in existing if os.path.realpath(p) not in self.spared]
            log(f"--fresh_start: the {len(self.replaced)} checkpoint(s) in {save_dir} are "
                "removed when this run writes its first")
            existing = []
        if existing:
            self.start = existing[-1], f"--save_dir={save_dir}"
            if pretrained:
                log(f"--pretrained_model={pretrained_model!r} is not used: the run resumes from "
                    f"{existing[-1]} (--fresh_start starts from --pretrained_model instead)")
        else:
            self.start = (pretrained, "--pretrained_model") if pretrained else (None, None)

    def save(self, model, iteration, state=None):
        """Write ``ckpt-<iteration>.keras`` (with ``state``), remove the checkpoints it
        replaces, keep the ``keep`` newest (and the spared); returns its path."""
        path = save_checkpoint(model, self.save_dir, iteration, state)
        for old in self.replaced:
            if old != path and os.path.exists(old):
                os.remove(old)
        if self.replaced:
            self.log(f"--fresh_start: removed {len(self.replaced)} checkpoint(s) of the "
                     f"previous run from {self.save_dir}")
            self.replaced = []
        rotated = [p for _, p in list_checkpoints(self.save_dir)
                   if os.path.realpath(p) not in self.spared]
        for old in rotated[:-self.keep] if self.keep > 0 else []:
            os.remove(old)
        return path

    def latest(self):
        return latest_checkpoint(self.save_dir)


@contextlib.contextmanager
def save_dir_lock(save_dir, log=print):
    """Hold ``<save_dir>/tfastro.lock`` (created with O_EXCL, holding this process's pid, host
    and start time) while the body runs; a folder locked by a live process is refused
    (UserInputError), the lock of a dead process on this host taken over with a warning (dead
    also when its pid now belongs to a process started later, as after a container restart).
    A lock of another host is refused: whether its process runs cannot be seen from here.
    Leftover temporary files of interrupted writes are removed once the lock is held. A
    save_dir the body leaves empty is removed again if the lock created it."""
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise UserInputError(f"--save_dir={save_dir!r}: is a file, expected a folder")
    created = not os.path.exists(save_dir)
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, LOCK_FILE)
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": _process_start(os.getpid())}
    _take_lock(path, mine, save_dir, log)
    try:
        for name in sorted(os.listdir(save_dir)):
            if PARTIAL.search(name):
                os.remove(os.path.join(save_dir, name))
                log(f"removed {name}, left in {save_dir} by an interrupted write")
        yield
    finally:
        if _lock_holder(path) == mine:
            os.remove(path)
        if created and not os.listdir(save_dir):
            os.rmdir(save_dir)


def _take_lock(path, mine, save_dir, log):
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is None or holder.get("host") != mine["host"] or _alive(holder):
                held = (f"by pid {holder.get('pid')} on host {holder.get('host')}" if holder
                        else "(unreadable lock file)")
                raise UserInputError(
                    f"--save_dir={save_dir!r}: in use {held}; two runs must not write one "
                    f"save_dir (if that run is over, remove {path})") from None
            log(f"warning: taking over {path} of pid {holder['pid']}, which is no longer "
                "running")
            os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        return
    raise UserInputError(f"--save_dir={save_dir!r}: another run took its lock {path} first")


def _lock_holder(path):
    """{"pid", "host"} of lock file ``path``, or None if it cannot be read."""
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _alive(holder):
    """Whether the process of lock ``holder`` (on this host) still runs: its pid is in use, by
    a process started when it was (where the start times are known)."""
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started, now = holder.get("started"), _process_start(holder["pid"])
    return started is None or now is None or started == now


def _process_start(pid):
    """Start time of process ``pid`` in clock ticks after boot (Linux /proc), None where
    unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
