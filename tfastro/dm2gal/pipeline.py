"""dm2gal samples: candidate centres, buffered train/validation/test regions, mass-bin weighted
sampling and the streamed window ``tf.data`` pipeline (windows turned by the 24 rotations of
the cube, :data:`tfastro.core.symmetries.CUBE_ROTATIONS`).

Grids are ``(N, N, N)`` voxel arrays indexed ``[x, y, z]`` (the inputs carry a trailing channel
axis: 0 the standardised log dark-matter mass, 1 the standardised log subhalo mass); they may be
in memory or memory-mapped (``np.load(path, mmap_mode="r")``) and are only read window by window.

A sample is the ``window``^3 cube of inputs centred on a voxel (``window`` odd, half-width
``h = window // 2``, 65 -> ±32) and the target value at that voxel. Windows are cut
NON-periodically: a window must lie inside the grid (the candidate rule 32 <= x, y, z < N - 48
keeps the 65^3 windows inside), and so the buffer between regions needs no wrap-around.

Regions (half-open voxel boxes ``[lo, hi)`` on each of the three axes): a test or validation
sample's centre lies inside its box; a training sample's whole window lies outside both boxes,
i.e. a buffer of ``h`` voxels separates training centres from the held-out voxels (the original
used test [64, 932]^3, validation [1000, 1800]^3 and all the rest for training, without one).
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.core.symmetries import CUBE_ROTATIONS, random_elements, transform_tf

__all__ = ["candidate_centres", "DM2GalRegions", "split_regions", "centre_allowed",
           "split_centres", "mass_bin_weights", "weighted_sample_indices",
           "weighted_index_dataset", "window_dataset", "SPLITS"]


SPLITS = ("train", "validation", "test")


def _as_box(box, name):
    """``(lo, hi)`` ints with lo < hi, or UserInputError naming ``name``."""
    try:
        lo, hi = (int(v) for v in box)
    except (TypeError, ValueError):
        raise UserInputError(f"{name}={box!r}: expected a half-open voxel box (lo, hi)") from None
    if not 0 <= lo < hi:
        raise UserInputError(f"{name}={box!r}: expected 0 <= lo < hi")
    return lo, hi


def candidate_centres(target_mass, threshold=1e8, low=32, high=48, region=None, slab=16):
    """Voxels whose target mass exceeds ``threshold``, away from the grid edges.

    Args:
      target_mass: ``(N, N, N)`` stellar mass per voxel in Msun/h (memory-mapped is fine: it is
        scanned ``slab`` x-planes at a time).
      threshold: keep voxels with ``target_mass > threshold`` (Msun/h).
      low, high: keep ``low <= x, y, z < N - high``.
      region: optional further restriction: a half-open box ``(lo, hi)`` applied to every axis,
        or a boolean ``(N, N, N)`` mask.
      slab: x-planes read at a time.
    Returns:
      int64 ``(M, 3)`` voxel indices ``[x, y, z]`` in C order.
    """
    shape = np.shape(target_mass)
    if len(shape) != 3 or len(set(shape)) != 1:
        raise ValueError(f"target_mass: expected a cubic (N, N, N) grid, got shape {shape}")
    n = shape[0]
    lo, hi = max(int(low), 0), n - int(high)
    mask = None
    if region is not None:
        if np.ndim(region) == 3:
            mask = np.asarray(region)
            if mask.shape != shape or mask.dtype != bool:
                raise ValueError(f"region: expected a boolean mask of shape {shape}")
        else:
            box = _as_box(region, "region")
            lo, hi = max(lo, box[0]), min(hi, box[1])
    found = []
    for x0 in range(lo, hi, slab):
        x1 = min(x0 + slab, hi)
        keep = np.asarray(target_mass[x0:x1, lo:hi, lo:hi]) > threshold
        if mask is not None:
            keep &= mask[x0:x1, lo:hi, lo:hi]
        idx = np.argwhere(keep)
        found.append(idx + np.array([x0, lo, lo]))
    if not found:
        return np.zeros((0, 3), np.int64)
    return np.concatenate(found).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class DM2GalRegions:
    """Held-out boxes of a dm2gal grid and the window that sets the training buffer.

    Attributes:
      grid_size: N of the ``(N, N, N)`` grid.
      test, validation: half-open voxel boxes ``(lo, hi)``, the same on the three axes.
      window: odd side of a sample window; training windows keep ``window // 2`` voxels away.
    """
    grid_size: int
    test: tuple
    validation: tuple
    window: int

    @property
    def half_width(self):
        return self.window // 2


def split_regions(grid_size=2048, test=(64, 933), validation=(1000, 1801), window=65):
    """The dm2gal regions: the original test [64, 932]^3 and validation [1000, 1800]^3 boxes (as
    half-open ``(lo, hi)``), training everywhere else that a window of ``window``^3 voxels
    reaches no held-out voxel. Scale the boxes for small grids, e.g. ``split_regions(96, (8, 40),
    (56, 88), 17)``."""
    n = int(grid_size)
    if n < 1:
        raise UserInputError(f"grid_size={grid_size}: expected a positive integer")
    if int(window) != window or window < 1 or window % 2 == 0 or window > n:
        raise UserInputError(f"window={window}: expected an odd number of voxels <= {n}")
    test, validation = _as_box(test, "test"), _as_box(validation, "validation")
    for name, (lo, hi) in (("test", test), ("validation", validation)):
        if hi > n:
            raise UserInputError(f"{name}=({lo}, {hi}): the box leaves the {n}^3 grid")
    if test[0] < validation[1] and validation[0] < test[1]:
        raise UserInputError(f"test={test} and validation={validation} overlap: expected "
                             "disjoint held-out boxes")
    return DM2GalRegions(n, test, validation, int(window))


def _window_inside_grid(centres, half, n):
    return np.all((centres >= half) & (centres < n - half), axis=-1)


def _window_overlaps_box(centres, half, box):
    lo, hi = box
    return np.all((centres + half >= lo) & (centres - half < hi), axis=-1)


def centre_allowed(centres, regions, split):
    """Whether each centre may give a sample of ``split``.

    Every sample's window must lie inside the grid (windows are cut non-periodically). A
    ``"test"``/``"validation"`` centre must lie inside its box; a ``"train"`` centre's whole
    window (±``window // 2``) must miss both the test and the validation box.

    Args:
      centres: int ``(M, 3)`` voxel indices.
      regions: :class:`DM2GalRegions`.
      split: ``"train"``, ``"validation"`` or ``"test"``.
    Returns:
      bool ``(M,)``.
    """
    centres = np.asarray(centres).reshape(-1, 3)
    half = regions.half_width
    inside = _window_inside_grid(centres, half, regions.grid_size)
    if split == "train":
        return (inside & ~_window_overlaps_box(centres, half, regions.test)
                & ~_window_overlaps_box(centres, half, regions.validation))
    if split in ("test", "validation"):
        return inside & _window_overlaps_box(centres, 0, getattr(regions, split))
    raise ValueError(f"split={split!r}: expected one of {SPLITS}")


def split_centres(centres, regions):
    """``{"train", "validation", "test"}`` -> the int64 ``(M_s, 3)`` centres allowed in each
    (see :func:`centre_allowed`); centres in the buffer belong to none."""
    centres = np.asarray(centres, np.int64).reshape(-1, 3)
    return {split: centres[centre_allowed(centres, regions, split)] for split in SPLITS}


def mass_bin_weights(targets, bins=100):
    """Sampling weight of each training sample: 1 / (number of samples in its bin), the
    (standardised) targets being cut into ``bins`` equal-width bins over [min, max].

    Args:
      targets: ``(M,)`` centre targets of the training samples.
    Returns:
      float64 ``(M,)``; each occupied bin carries total weight 1.
    """
    targets = np.asarray(targets, np.float64).ravel()
    if targets.size == 0 or not np.isfinite(targets).all():
        raise ValueError("targets: expected a non-empty array of finite values")
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins={bins}: expected a positive integer")
    lo, span = targets.min(), np.ptp(targets)
    scaled = (targets - lo) / span * bins if span > 0 else np.zeros_like(targets)
    which = np.minimum(scaled.astype(np.int64), int(bins) - 1)
    return 1.0 / np.bincount(which, minlength=int(bins))[which]


def _probabilities(weights):
    weights = np.asarray(weights, np.float64).ravel()
    if weights.size == 0 or not np.isfinite(weights).all() or (weights < 0).any() \
            or weights.sum() <= 0:
        raise ValueError("weights: expected finite, non-negative weights with a positive sum")
    return weights / weights.sum()


def weighted_sample_indices(weights, n, seed=0):
    """``n`` int64 sample indices drawn with replacement with probability ∝ ``weights``."""
    p = _probabilities(weights)
    return np.random.default_rng(seed).choice(p.size, size=int(n), replace=True, p=p)


def weighted_index_dataset(weights, seed=0, num_samples=None, chunk=256, first_sample=0):
    """A ``tf.data`` stream of int64 sample indices drawn with replacement with probability
    ∝ ``weights`` (``tf.random.stateless_categorical`` over log weights, ``chunk`` draws per
    call, seeded by (seed, chunk number): the same seed, the same stream).

    Args:
      num_samples: stop after this many indices (None: endless).
      first_sample: start the stream at this draw (the same indices from there on).
    """
    with np.errstate(divide="ignore"):  # zero weight -> logit -inf, never drawn
        logits = tf.constant(np.log(_probabilities(weights))[None], tf.float64)

    def draw(step):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), step])
        return tf.random.stateless_categorical(logits, chunk, seed_pair, dtype=tf.int64)[0]

    first_chunk, skip = divmod(int(first_sample), chunk)
    ds = tf.data.Dataset.counter(first_chunk).map(draw).unbatch().skip(skip)
    return ds if num_samples is None else ds.take(int(num_samples) - int(first_sample))


def _check_grids(inputs, target):
    in_shape, t_shape = np.shape(inputs), np.shape(target)
    if len(in_shape) != 4 or len(t_shape) != 3 or in_shape[:3] != t_shape \
            or len(set(t_shape)) != 1:
        raise ValueError(f"inputs {in_shape}, target {t_shape}: expected (N, N, N, C) inputs "
                         "and an (N, N, N) target on the same grid")
    return t_shape[0], in_shape[3]


def window_dataset(inputs, target, centres, window=65, batch_size=32, weights=None,
                   augment=True, shuffle=True, seed=0, repeat=True, first_sample=0):
    """Streamed batches of (input window, centre target) samples.

    Sample indices are drawn first (weighted with replacement via
    :func:`weighted_index_dataset` when ``weights`` are given, otherwise each centre once per
    epoch, in an order drawn from (seed, epoch) when ``shuffle``); each window is then sliced
    out of the
    (memory-mapped) arrays in a ``tf.numpy_function``, so windows are never all materialised,
    and, when ``augment``, turned by a random one of the 24 rotations
    (:data:`~tfastro.core.symmetries.CUBE_ROTATIONS`, the same for every channel, seeded by
    (seed, sample number)).

    Args:
      inputs: ``(N, N, N, C)`` array (C = 2 for dm2gal), in memory or memory-mapped.
      target: ``(N, N, N)`` standardised target array on the same grid.
      centres: int ``(M, 3)`` window centres; each window must lie inside the grid (windows
        are not wrapped periodically): otherwise ValueError naming the first such centre.
      window: odd window side in voxels.
      batch_size: samples per batch.
      weights: optional ``(M,)`` sampling weights (e.g. :func:`mass_bin_weights`).
      augment: random cube rotation of each window.
      shuffle: visit unweighted centres in random order (ignored with weights).
      seed: seed of the shuffle, the weighted draws and the rotations.
      repeat: endless stream (batches of exactly ``batch_size``); otherwise one epoch of M
        samples, the last batch possibly smaller.
      first_sample: start at this sample of the stream: the samples (windows, rotations) that
        the stream from 0 has from there on, so that a resumed run sees what an uninterrupted
        one would.
    Returns:
      dataset of ``(windows, targets)``: float32 ``(B, window, window, window, C)`` and float32
      ``(B, 1)``, prefetched.
    """
    n, channels = _check_grids(inputs, target)
    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window={window}: expected an odd number of voxels")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected a positive integer")
    centres = np.asarray(centres)
    if centres.ndim != 2 or centres.shape[1] != 3 or centres.shape[0] == 0 \
            or not np.issubdtype(centres.dtype, np.integer):
        raise ValueError(f"centres: expected a non-empty int (M, 3) array, got {centres.shape}")
    half = window // 2
    outside = np.flatnonzero(~_window_inside_grid(centres, half, n))
    if outside.size:
        raise ValueError(f"centres[{outside[0]}] = {centres[outside[0]].tolist()}: its "
                         f"{window}^3 window leaves the {n}^3 grid (windows are not wrapped)")
    centres = centres.astype(np.int64)
    if weights is not None and np.size(weights) != len(centres):
        raise ValueError(f"weights: expected {len(centres)} values, one per centre, got "
                         f"{np.size(weights)}")

    def read_sample(index):
        x, y, z = centres[int(index)]
        cube = inputs[x - half:x + half + 1, y - half:y + half + 1, z - half:z + half + 1]
        return (np.asarray(cube, np.float32),
                np.asarray(target[x, y, z], np.float32).reshape(1))

    def load(number, index):
        cube, value = tf.numpy_function(read_sample, [index], (tf.float32, tf.float32),
                                        stateful=False)
        cube = tf.ensure_shape(cube, (window, window, window, channels))
        value = tf.ensure_shape(value, (1,))
        if augment:
            k = random_elements(tf.stack([tf.constant(seed, tf.int64), number]), [],
                                CUBE_ROTATIONS)
            cube = transform_tf(cube, k, CUBE_ROTATIONS, axes=(0, 1, 2))
        return cube, value

    if int(first_sample) != first_sample or first_sample < 0 \
            or (not repeat and first_sample > len(centres)):
        raise ValueError(f"first_sample={first_sample}: expected a sample number of the stream")
    first_sample = int(first_sample)
    if weights is not None:
        ds = weighted_index_dataset(weights, seed, None if repeat else len(centres),
                                    first_sample=first_sample)
    else:
        ds = _epoch_orders(len(centres), seed, shuffle, first_sample // len(centres))
        ds = ds.skip(first_sample % len(centres))
        if not repeat:
            ds = ds.take(len(centres) - first_sample)
    ds = ds.enumerate(first_sample).map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                        deterministic=True)
    ds = ds.batch(int(batch_size), drop_remainder=repeat)
    if not repeat:  # known to Keras, which otherwise warns at the end of the first pass
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            -(-(len(centres) - first_sample) // int(batch_size))))
    return ds.prefetch(tf.data.AUTOTUNE)


def _epoch_orders(m, seed, shuffle, first_epoch):
    """Endless int64 stream of the indices 0..m-1, epoch after epoch from ``first_epoch``, each
    epoch in the order drawn from (seed, epoch) when ``shuffle``."""
    def order(epoch):
        indices = tf.range(m, dtype=tf.int64)
        if shuffle:
            indices = tf.random.experimental.stateless_shuffle(
                indices, tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(indices)
    return tf.data.Dataset.counter(first_epoch).flat_map(order)
