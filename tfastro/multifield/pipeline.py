"""tf.data of CAMELS multifield maps for training: the 8 flips/rotations, periodic shifts,
and batches of ``(maps, normalised parameters)`` streamed from a :class:`~tfastro.multifield.io.CMDMaps`.
"""
import numpy as np
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.core.symmetries import SQUARE_SYMMETRIES, source_indices, square_symmetry_of
from tfastro.multifield.io import check_param_names, normalise_maps, normalise_params

__all__ = ["augment_maps", "cmd_dataset"]


def augment_maps(x, seed):
    """A random symmetry of the periodic square for each map: one of the 8 dihedral transforms
    (rotations by 90 degrees, flips) and a periodic shift along both axes.

    Args:
      x: ``(R, R, C)`` or ``(B, R, R, C)`` tensor; every channel of a map gets the same
        transform, each map of a batch its own.
      seed: int tensor ``(2,)`` for the stateless random ops: the same seed, the same transforms.
    Returns:
      a tensor of ``x``'s shape and dtype.
    """
    x = tf.convert_to_tensor(x)
    single = x.shape.rank == 3
    if single:
        x = x[None]
    batch, size = tf.shape(x)[0], tf.shape(x)[1]
    transform_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    # (transpose, flip rows, flip columns): a uniform draw of the square's 8 symmetries
    bits = tf.unstack(tf.random.stateless_uniform([batch, 3], transform_seed, 0, 2,
                                                  dtype=tf.int32), axis=1)
    shifts = tf.random.stateless_uniform([batch, 2], shift_seed, 0, size, dtype=tf.int32)
    sources = source_indices(square_symmetry_of(*bits), SQUARE_SYMMETRIES, [size, size])
    out = tf.gather_nd(x, (sources + shifts[:, None, None, :]) % size, batch_dims=1)
    return out[0] if single else out


def cmd_dataset(cmd, map_indices, batch_size, param_names=("Omega_m", "sigma_8"), augment=True,
                shuffle=True, seed=0, repeat=True, drop_remainder=True, start_batch=0):
    """Streamed batches ``(maps, theta)`` of CMD maps for training and evaluation.

    The map indices are shuffled and batched; each batch is then read from the memory-mapped
    files (``tf.numpy_function``), normalised, augmented and prefetched: the maps are never
    all in memory.

    Args:
      cmd: :class:`CMDMaps`.
      map_indices: the maps to visit (e.g. ``map_indices(split["train"])``).
      batch_size: maps per batch.
      param_names: the parameters returned, in order.
      augment: apply :func:`augment_maps`, seeded by (seed, batch number).
      shuffle: visit the maps in a random order, a new one every epoch (seeded).
      seed: integer seed of the shuffle and the augmentation.
      repeat: repeat forever.
      drop_remainder: drop a last batch smaller than ``batch_size`` (static batch size).
      start_batch: skip this many batches first (indices only, nothing is read): with the
        same seed the sequence continues where a run stopped after ``start_batch`` batches.
    Returns:
      dataset of ``(maps, theta)``: maps float32 ``(B, R, R, C)`` normalised by
      :func:`normalise_maps`, theta float32 ``(B, len(param_names))`` by :func:`normalise_params`.
    """
    indices = np.asarray(map_indices).ravel()
    if indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError("map_indices: expected a non-empty sequence of integer map indices")
    cmd._indices(indices)
    param_names = check_param_names(param_names)
    if int(batch_size) != batch_size or batch_size < 1:
        raise UserInputError(f"batch_size={batch_size}: expected a positive integer")
    if drop_remainder and not repeat and batch_size > indices.size:
        raise UserInputError(f"batch_size={batch_size} exceeds the {indices.size} maps given: "
                             "with drop_remainder and no repeat there would be no batch")
    size, n_channels = cmd.resolution, len(cmd.fields)

    def read_batch(batch):
        maps = normalise_maps(cmd.read(batch), cmd.fields)
        theta = normalise_params(cmd.parameters(batch, param_names), param_names)
        return maps, theta.astype(np.float32)

    def load(step, batch):
        maps, theta = tf.numpy_function(read_batch, [batch], (tf.float32, tf.float32),
                                        stateful=False)
        rows = batch_size if drop_remainder else None
        maps = tf.ensure_shape(maps, (rows, size, size, n_channels))
        theta = tf.ensure_shape(theta, (rows, len(param_names)))
        if augment:
            maps = augment_maps(maps, tf.stack([tf.constant(seed, tf.int64), step]))
        return maps, theta

    ds = tf.data.Dataset.from_tensor_slices(indices.astype(np.int64))
    if shuffle:
        ds = ds.shuffle(indices.size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder).enumerate().skip(start_batch)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
