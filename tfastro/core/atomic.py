"""Writes a kill cannot leave half done: the file is written under a temporary name in the same
folder (``<stem>.partial<suffix>``), flushed to disk, then renamed onto its name. Every file
the library writes goes through :func:`write_atomically` (checkpoints, evaluation arrays,
figures, JSON reports, data files)."""
import json
import os
import re

import numpy as np

PARTIAL = re.compile(r"\.partial(\.[^.]+)?$")  # names of the temporary files


def partial_path(path):
    """``dir/stem.partial.ext`` of ``dir/stem.ext``: same folder and suffix (Keras and numpy
    choose the format by the suffix)."""
    stem, suffix = os.path.splitext(path)
    return f"{stem}.partial{suffix}"


def write_atomically(path, write):
    """Call ``write(temporary_path)``, then make that file ``path`` in one rename (after
    flushing it to disk): a kill leaves either the old ``path`` or the new one (and perhaps
    the temporary file, which :func:`tfastro.core.checkpoints.save_dir_lock` clears)."""
    partial = partial_path(path)
    try:
        write(partial)
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:  # an error (not a kill): nothing of the write stays behind
        if os.path.exists(partial):
            os.remove(partial)
        raise
    os.replace(partial, path)
    _sync_folder(os.path.dirname(path) or ".")
    return path


def _sync_folder(folder):
    """Flush the rename to disk (where the system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_npy(path, array):
    """Write ``array`` to ``path`` (a ``.npy`` name) in numpy's format, atomically."""
    return write_atomically(path, lambda partial: np.save(partial, array))


def write_json(path, value):
    """Write ``value`` to ``path`` as indented JSON, atomically."""
    def write(partial):
        with open(partial, "w") as f:
            json.dump(value, f, indent=1)
    return write_atomically(path, write)
