"""tf.data pipeline over sn clips (:class:`tfastro.supernova.io.SNData`).

Elements are float32 batches ``(batch, time, X, Y, Z, C)``: each sample is one clip's input
frames followed by its output frames, cut to ``total_length`` frames, channels-last.
The dataset walks clip indices; each clip is cut out of the frame array only when it is
read, so no second copy of all clips is made.
"""
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.supernova.io import SNData


def sn_dataset(data: SNData, total_length, batch_size, *, shuffle=False, seed=None,
               repeat=False, drop_remainder=False, start_batch=0) -> tf.data.Dataset:
    """Batches of clips as a ``tf.data.Dataset``.

    Args:
      data: loaded sn data.
      total_length: frames per sample; every clip must have at least this many.
      batch_size: clips per batch.
      shuffle: visit the clips in a random order (a new order every epoch).
      seed: seed of the shuffle order (None: nondeterministic).
      repeat: repeat forever; each epoch visits every clip once.
      drop_remainder: drop a last batch smaller than ``batch_size``; without it one epoch
        yields every clip exactly once.
      start_batch: skip the clips of this many batches first; with a fixed ``seed`` and
        ``repeat`` the sequence then continues exactly where a run that stopped after
        ``start_batch`` batches left off (resuming training).
    Returns:
      dataset of float32 tensors ``(batch, total_length, X, Y, Z, C)`` (the batch dimension
      is static when ``drop_remainder``), prefetched.
    """
    if batch_size < 1:
        raise UserInputError(f"batch_size={batch_size} must be >= 1")
    lengths = data.clips[0, :, 1] + data.clips[1, :, 1]
    if total_length < 1 or total_length > lengths.min():
        raise UserInputError(f"total_length={total_length} must be between 1 and the "
                             f"shortest clip of {','.join(data.paths)} "
                             f"({int(lengths.min())} frames)")
    c, x, y, z = data.dims
    sample_shape = (total_length, x, y, z, c)

    def read_clip(index):
        return data.clip(int(index), total_length)

    def load(index):
        clip = tf.numpy_function(read_clip, [index], tf.float32, stateful=False)
        return tf.ensure_shape(clip, sample_shape)

    ds = tf.data.Dataset.range(data.num_clips)
    if shuffle:
        ds = ds.shuffle(data.num_clips, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.skip(start_batch * batch_size)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
