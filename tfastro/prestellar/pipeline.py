"""tf.data of prestellar cores for the column network: whole PPV cubes with their
``(N, N, N, 2)`` targets (log10 density, v_z), optionally augmented by the 8 sky symmetries,
or windows of the PPV cube (``ppv_window_dataset``) for bounded memory.
"""
import numpy as np
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.core.symmetries import SQUARE_SYMMETRIES, random_elements, transform_tf

__all__ = ["core_dataset", "ppv_window_dataset"]


def _augmented(data, seed, target_is_column):
    """Apply one random symmetry of the sky plane (axes 0, 1; :data:`SQUARE_SYMMETRIES`) per
    element to PPV and (unless it is a central column, which the symmetries keep) the target."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def transform(pair, s):
        ppv, target = pair
        index = random_elements(s, [], SQUARE_SYMMETRIES)
        ppv = transform_tf(ppv, index, SQUARE_SYMMETRIES, axes=(0, 1))
        return ppv, (target if target_is_column
                     else transform_tf(target, index, SQUARE_SYMMETRIES, axes=(0, 1)))

    return tf.data.Dataset.zip((data, seeds)).map(transform,
                                                  num_parallel_calls=tf.data.AUTOTUNE)


def _core_reader(ppv, targets):
    """Dataset of core indices -> dataset of (ppv (N, N, Nv, 1), target (N, N, Nz, 2)) float32,
    read from the arrays one core at a time."""
    ppv_shape = tuple(ppv.shape[1:4]) + (1,)
    target_shape = tuple(targets.shape[1:])

    def read(index):
        i = int(index)
        return (np.asarray(ppv[i], np.float32).reshape(ppv_shape),
                np.asarray(targets[i], np.float32))

    def load(index):
        x, y = tf.numpy_function(read, [index], (tf.float32, tf.float32), stateful=False)
        return tf.ensure_shape(x, ppv_shape), tf.ensure_shape(y, target_shape)

    return load


def _cores(ppv, targets, shuffle, seed, repeat):
    """Dataset of the (PPV, target) cores read one by one, optionally in a new order every
    epoch and repeated."""
    data = tf.data.Dataset.range(len(ppv))
    if shuffle:
        data = data.shuffle(len(ppv), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    return data.map(_core_reader(ppv, targets), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)


def _check_pairs(ppv, targets, batch_size):
    if batch_size < 1:
        raise UserInputError(f"batch_size={batch_size}: expected at least 1")
    shape_ok = (ppv.ndim in (4, 5) and (ppv.ndim == 4 or ppv.shape[4] == 1)
                and targets.ndim == 5 and targets.shape[4] == 2
                and len(ppv) == len(targets) and ppv.shape[1:3] == targets.shape[1:3]
                and ppv.shape[1] == ppv.shape[2])
    if not shape_ok:
        raise ValueError(f"ppv {ppv.shape} and targets {targets.shape}: expected (cores, N, N, "
                         "Nv[, 1]) and (cores, N, N, Nz, 2) with the same cores and N")


def core_dataset(ppv, targets, batch_size, shuffle=True, seed=None, augment=False,
                 repeat=False, drop_remainder=False):
    """Batches of whole cores: ``(ppv (B, N, N, Nv, 1), targets (B, N, N, Nz, 2))`` float32.

    Args:
      ppv: ``(n_cores, N, N, Nv)`` (or with a trailing 1) array; targets: ``(n_cores, N, N, Nz,
        2)`` (:func:`prestellar_targets`). Arrays or array-likes indexable by core (e.g. an
        h5py dataset): each core is read when needed.
      shuffle: a new core order every epoch (seeded by ``seed``).
      augment: one random symmetry of the sky plane per core (module docstring), the same for
        PPV and targets; a seeded stream that changes from epoch to epoch.
      repeat: repeat forever; drop_remainder: drop a last, smaller batch.
    """
    _check_pairs(ppv, targets, batch_size)
    data = _cores(ppv, targets, shuffle, seed, repeat)
    if augment:
        data = _augmented(data, seed, False)
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _windows(ppv, target, window, stride, target_kind):
    """All ``window`` x ``window`` sky windows of one core at ``stride``, row-major over the
    window's start (i, j): ppv ``(W, w, w, Nv, 1)`` and target ``(W, w, w, Nz, 2)`` (window) or
    ``(W, Nz, 2)`` (the central column at (i + w // 2, j + w // 2))."""
    n = ppv.shape[0]
    n_v, n_z = ppv.shape[2], target.shape[2]

    def patches(cube, depth):
        flat = tf.image.extract_patches(tf.reshape(cube, (1, n, n, depth)),
                                        sizes=[1, window, window, 1],
                                        strides=[1, stride, stride, 1], rates=[1, 1, 1, 1],
                                        padding="VALID")
        return tf.reshape(flat, (-1, window, window, depth))

    ppv_windows = tf.reshape(patches(ppv, n_v), (-1, window, window, n_v, 1))
    if target_kind == "window":
        return ppv_windows, tf.reshape(patches(target, 2 * n_z), (-1, window, window, n_z, 2))
    count = (n - window) // stride + 1
    centre = window // 2
    columns = target[centre:centre + stride * (count - 1) + 1:stride,
                     centre:centre + stride * (count - 1) + 1:stride]
    return ppv_windows, tf.reshape(columns, (-1, n_z, 2))


def ppv_window_dataset(ppv, targets, window, batch_size, stride=1, target="column", shuffle=True,
                   seed=None, augment=False, shuffle_buffer=None, repeat=False,
                   drop_remainder=False):
    """Batches of sky windows of the cores (the windowed "scanner" training data).

    Windows are ``window`` x ``window`` pixels over all channels, starting at (i, j) = multiples
    of ``stride`` with the window inside the map (no padding), core by core, row-major.

    Args:
      ppv, targets: as in :func:`core_dataset`.
      target: "column": the target's central column at (i + window // 2, j + window // 2),
        ``(B, Nz, 2)`` (``window`` must then be odd); "window": the target's window
        ``(B, window, window, Nz, 2)``.
      shuffle: new core order every epoch and windows shuffled in a buffer of
        ``shuffle_buffer`` (default: the windows of 4 cores).
      augment: one random symmetry of the sky plane per window (about its centre), on the PPV
        and a target window alike (a central column is unchanged by it).
    Returns:
      dataset of float32 ``(ppv (B, window, window, Nv, 1), target)``.
    """
    _check_pairs(ppv, targets, batch_size)
    n = ppv.shape[1]
    if target not in ("column", "window"):
        raise UserInputError(f"target={target!r}: expected 'column' or 'window'")
    if not 1 <= window <= n or stride < 1 or (target == "column" and window % 2 == 0):
        raise UserInputError(f"window={window}, stride={stride}: expected 1 <= window <= {n}, "
                             "stride >= 1, and an odd window for central columns")
    per_core = ((n - window) // stride + 1) ** 2
    data = _cores(ppv, targets, shuffle, seed, repeat)
    data = data.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices(
        _windows(x[..., 0], y, window, stride, target)))
    if shuffle:
        data = data.shuffle(shuffle_buffer or 4 * per_core, seed=seed,
                            reshuffle_each_iteration=True)
    if augment:
        data = _augmented(data, seed, target == "column")
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
