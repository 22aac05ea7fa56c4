"""Checkpoints of a training run (``<save_dir>/ckpt-<iteration>.keras``) and its result folders.

Each file is a complete Keras archive: model weights, optimizer state (moments, the weight
moving averages, its step count), the model's iteration counter and sampling eta, and the
model configuration used to refuse a checkpoint of another configuration.
"""
import dataclasses
import json
import os
import re
import zipfile

from tfastro.core.errors import UserInputError

_NAME = re.compile(r"^ckpt-(\d+)\.keras$")


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


def read_checkpoint_config(path, flag="--pretrained_model"):
    """(model config dict, build input shape) stored in checkpoint ``path``."""
    try:
        with zipfile.ZipFile(path) as archive:
            stored = json.loads(archive.read("config.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise UserInputError(f"{flag}: {path!r} is not a Keras checkpoint ({err})") from None
    return stored.get("config", {}), (stored.get("build_config") or {}).get("input_shape")


def starting_checkpoint(save_dir, fresh_start=False, pretrained_model="", log=print):
    """(path, flag) of the checkpoint a training run starts from, or (None, None).

    The newest checkpoint in ``save_dir`` (the run resumes), else ``pretrained_model`` (a file
    or a directory's newest). ``fresh_start`` first deletes save_dir's checkpoints (and
    nothing else there).
    """
    pretrained = resolve_checkpoint(pretrained_model) if pretrained_model else None
    existing = list_checkpoints(save_dir)
    if existing and fresh_start:
        for _, path in existing:
            os.remove(path)
        log(f"--fresh_start: removed {len(existing)} checkpoint(s) from {save_dir}")
        existing = []
    if existing:
        return existing[-1][1], f"--save_dir={save_dir}"
    if pretrained:
        return pretrained, "--pretrained_model"
    return None, None


def evaluation_checkpoint(save_dir, pretrained_model=""):
    """The checkpoint an ``is_training=False`` run uses: ``pretrained_model`` (a file or a
    directory's newest), else the newest in ``save_dir``; UserInputError naming the flag."""
    if not pretrained_model and not os.path.isdir(save_dir):
        raise UserInputError("--is_training=False needs --pretrained_model or a --save_dir "
                             f"with checkpoints; {save_dir!r} does not exist")
    return resolve_checkpoint(pretrained_model or save_dir,
                              "--pretrained_model" if pretrained_model else "--save_dir")


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


def save_checkpoint(model, save_dir, iteration, keep=5):
    """Write ``ckpt-<iteration>.keras`` atomically, then keep only the ``keep`` newest."""
    os.makedirs(save_dir, exist_ok=True)
    path = checkpoint_path(save_dir, iteration)
    partial = path[: -len(".keras")] + ".partial.keras"
    model.save(partial)
    os.replace(partial, path)
    for _, old in list_checkpoints(save_dir)[:-keep] if keep > 0 else []:
        os.remove(old)
    return path
