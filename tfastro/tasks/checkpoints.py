"""Checkpoints of a training run: ``<save_dir>/ckpt-<iteration>.keras``.

Each file is a complete Keras archive: model weights, optimizer state (moments, the weight
moving averages, its step count), the model's iteration counter and sampling eta, and the
model configuration used to refuse a checkpoint of another configuration.
"""
import json
import os
import re
import zipfile

from tfastro.errors import UserInputError

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
