"""Turbulent-gas images for the networks: slices of the class cubes cut into tiles.

Each cube is sliced along its first axis and cut into parts (``buffered_split``: training,
validation and test slices from parts a whole part apart, also across the periodic wrap).
A slice goes through log10 and min-max over its cube (``to_byte_scale``), optionally phases
only (``flatten_power``), periodic shifts, tiles (``tile_image``) and histogram equalisation;
``project_slices`` averages adjacent slices. ``turbulence_dataset`` batches the images with
random flips. Images are ``(N, H, W, 1)`` float32 in [0, 1]. ``cube_images`` preprocesses every
slice of one cube the same way, without split or shifts (to apply a trained model).
"""
import numpy as np
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.core.symmetries import SQUARE_SYMMETRIES, square_symmetry_of, transform_each_tf
from tfastro.turbulence.io import read_fits_cube

__all__ = ["SPLITS", "to_byte_scale", "flatten_power", "periodic_shift", "tile_image",
           "untile_image", "equalise_histogram", "project_slices", "buffered_split",
           "slice_separation", "assert_buffered", "classification_images", "mapping_images",
           "cube_images", "turbulence_dataset"]


#: Split name -> part of the slicing axis (parts numbered from 0).
SPLITS = {"train": 1, "validation": 3, "test": 5}


def to_byte_scale(cube):
    """log10, then min-max over all finite values of ``cube`` to [0, 255]; non-finite -> 0.

    A cube whose finite log values are all equal maps to 0. Returns float32, same shape.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log10(np.asarray(cube, dtype=np.float64))
    finite = np.isfinite(log)
    if not finite.any():
        return np.zeros(log.shape, np.float32)
    lo, hi = log[finite].min(), log[finite].max()
    scaled = (log - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(log)
    return np.where(finite, scaled, 0.0).astype(np.float32)


def flatten_power(slices):
    """Phases only: real(IFFT2(F / |F|)) with F = FFT2 of each ``(..., H, W)`` slice.

    Modes with |F| = 0 (below 1e-10 of the slice's largest |F|, i.e. zero up to round-off)
    stay 0; the result's |FFT2| is 1 at every other mode. float32.
    """
    spectrum = np.fft.fft2(np.asarray(slices, dtype=np.float64))
    amplitude = np.abs(spectrum)
    nonzero = amplitude > 1e-10 * amplitude.max(axis=(-2, -1), keepdims=True)
    phases = np.divide(spectrum, amplitude, out=np.zeros_like(spectrum), where=nonzero)
    return np.fft.ifft2(phases).real.astype(np.float32)


def periodic_shift(img, dy, dx):
    """Roll the last two axes of ``img`` by (dy, dx) pixels (periodic)."""
    return np.roll(img, (dy, dx), axis=(-2, -1))


def tile_image(img, tile):
    """Cut ``(..., H, W)`` into ``(..., (H / tile) (W / tile), tile, tile)`` tiles, row-major.

    The tiles cover every pixel exactly once; ValueError unless ``tile`` divides H and W.
    """
    img = np.asarray(img)
    h, w = img.shape[-2:]
    if tile < 1 or h % tile or w % tile:
        raise ValueError(f"tile={tile}: expected a divisor of the image size {h} x {w}")
    lead = img.shape[:-2]
    tiles = img.reshape(lead + (h // tile, tile, w // tile, tile))
    tiles = np.moveaxis(tiles, -3, -2)  # (..., ny, nx, tile, tile)
    return tiles.reshape(lead + ((h // tile) * (w // tile), tile, tile))


def untile_image(tiles, height, width):
    """Inverse of :func:`tile_image`: ``(..., n, tile, tile)`` tiles -> ``(..., H, W)``."""
    tiles = np.asarray(tiles)
    tile = tiles.shape[-1]
    lead = tiles.shape[:-3]
    grid = tiles.reshape(lead + (height // tile, width // tile, tile, tile))
    return np.moveaxis(grid, -2, -3).reshape(lead + (height, width))


def equalise_histogram(tiles, bins=256):
    """Histogram-equalise each ``(..., H, W)`` tile to (0, 1] (float32).

    Per tile: a histogram of ``bins`` equal bins over [min, max]; each pixel gets the
    cumulative fraction of pixels, linearly interpolated between bin centres (clamped at the
    first and last centre). The output histogram is therefore flat up to the bin resolution.
    A constant tile maps to 1.
    """
    if bins < 2:
        raise ValueError(f"bins={bins}: expected at least 2 bins")
    tiles = np.asarray(tiles, dtype=np.float64)
    shape = tiles.shape
    flat = tiles.reshape((-1, shape[-2] * shape[-1]))
    lo = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - lo
    position = np.divide(flat - lo, span, out=np.ones_like(flat), where=span > 0) * bins
    index = np.clip(position.astype(np.int64), 0, bins - 1)
    offsets = np.arange(len(flat))[:, None] * bins
    counts = np.bincount((index + offsets).ravel(), minlength=len(flat) * bins)
    cdf = np.cumsum(counts.reshape(len(flat), bins), axis=1) / flat.shape[1]
    t = np.clip(position - 0.5, 0.0, bins - 1.0)
    left = np.minimum(t.astype(np.int64), bins - 2)
    weight = t - left
    rows = np.arange(len(flat))[:, None]
    out = cdf[rows, left] * (1.0 - weight) + cdf[rows, left + 1] * weight
    return out.reshape(shape).astype(np.float32)


def project_slices(cube, n, starts=None):
    """Average of ``n`` adjacent slices along axis 0, periodic windows.

    Image i is the mean of slices ``starts[i], .., starts[i] + n - 1`` (mod N); default starts
    ``0 .. N - 1`` (overlapping windows, one per slice). Returns float32 ``(len(starts), H, W)``.
    """
    cube = np.asarray(cube)
    size = cube.shape[0]
    if not 1 <= n <= size:
        raise ValueError(f"n={n}: expected 1 <= n <= {size} slices")
    starts = np.arange(size) if starts is None else np.asarray(starts, dtype=np.int64)
    total = np.zeros((len(starts),) + cube.shape[1:], dtype=np.float64)
    for offset in range(n):
        total += cube[(starts + offset) % size]
    return (total / n).astype(np.float32)


def _part_edges(n_slices, parts):
    return [(p * n_slices) // parts for p in range(parts + 1)]


def buffered_split(n_slices, parts=6, projection=1):
    """Window starts of the train / validation / test images along the slicing axis.

    Parts are numbered 0 .. parts - 1 (module docstring); train, validation and test use parts
    1, 3 and 5 (``SPLITS``). A start s is used only if its whole window s .. s + projection - 1
    lies inside the part.

    Returns:
      {"train", "validation", "test"} -> int64 arrays of window starts (slice indices).
    """
    if parts < 6 or parts % 2:
        raise ValueError(f"parts={parts}: expected an even number >= 6 (sets at odd parts, "
                         "buffers between)")
    edges = _part_edges(n_slices, parts)
    shortest = min(np.diff(edges))
    if not 1 <= projection <= shortest:
        raise UserInputError(f"projection={projection}: expected 1 .. {shortest} slices (the "
                             f"shortest of {parts} parts of {n_slices} slices)")
    return {name: np.arange(edges[part], edges[part + 1] - projection + 1, dtype=np.int64)
            for name, part in SPLITS.items()}


def _covered(starts, projection, n_slices):
    return np.unique((np.asarray(starts)[:, None] + np.arange(projection)) % n_slices)


def slice_separation(starts_a, starts_b, n_slices, projection=1):
    """Fewest slices lying strictly between any slice used by set a and any used by set b.

    A set's images use the slices start .. start + projection - 1 (mod ``n_slices``) of each
    start; the distance is periodic. -1 when the sets share a slice.
    """
    a = _covered(starts_a, projection, n_slices)
    b = _covered(starts_b, projection, n_slices)
    if not a.size or not b.size:
        return n_slices
    gap = np.abs(a[:, None] - b[None, :])
    return int(np.minimum(gap, n_slices - gap).min()) - 1


def assert_buffered(split, n_slices, parts=6, projection=1):
    """ValueError unless every pair of sets of ``split`` is at least one (shortest) part apart,
    i.e. at least ``n_slices // parts`` slices lie between them, also across the wrap."""
    buffer = n_slices // parts
    names = list(split)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            gap = slice_separation(split[a], split[b], n_slices, projection)
            if gap < buffer:
                raise ValueError(f"sets {a} and {b} are {gap} slices apart; expected at least "
                                 f"{buffer} (one part of {n_slices} / {parts})")


def _check_tile(cube, tile):
    if cube.shape[1] % tile or cube.shape[2] % tile:
        raise UserInputError(f"tile={tile}: expected a divisor of the slice size "
                             f"{cube.shape[1]} x {cube.shape[2]}")


def _byte_scaled_slices(cube, projection):
    """Every slice (``projection`` > 1: every periodic window of that many slices, averaged)
    of one cube, log10 and min-max over the cube to [0, 255]: float32 (N, H, W)."""
    return to_byte_scale(project_slices(cube, projection) if projection > 1 else cube)


def _split_slices(cube, split, tile, projection):
    """Byte-scaled slices (or projections) of one cube for ``split``: float32 (n, H, W)."""
    if split not in SPLITS:
        raise UserInputError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    _check_tile(cube, tile)
    starts = buffered_split(cube.shape[0], projection=projection)[split]
    return _byte_scaled_slices(cube, projection)[starts]


def _rolls(slices, split, tile, shifts, rng):
    """(dy, dx) rolls of every copy: one random roll per slice, plus the extra ``shifts``
    (default half a tile in y and x) for training slices. A list of (n, 2) arrays, one per
    copy."""
    if shifts is None:
        shifts = ((tile // 2, tile // 2),)
    offsets = [(0, 0)] + ([tuple(s) for s in shifts] if split == "train" else [])
    random = rng.integers(0, slices.shape[-2:], size=(len(slices), 2))
    return [random + offset for offset in offsets]


def _shifted_tiles(slices, rolls, tile):
    """Tiles of every slice rolled by its row of each array in ``rolls``."""
    return np.concatenate([tile_image(periodic_shift(img, *roll), tile)
                           for copy in rolls for img, roll in zip(slices, copy)])


def classification_images(files, split, tile=128, field="density", phase_only=False,
                          projection=1, shifts=None, seed=0):
    """Equalised tiles and class labels of ``split`` from FITS snapshots.

    Args:
      files: ``[(path, label), ...]`` (:func:`class_files`).
      split: "train", "validation" or "test" (parts 1, 3, 5 of the slicing axis).
      tile: tile side in pixels (a divisor of the slice side).
      field: the FITS extension to image.
      phase_only: flatten the power spectrum of each full slice (:func:`flatten_power`).
      projection: average this many adjacent raw slices per image.
      shifts: extra (dy, dx) rolls giving extra copies of training slices (default
        ``((tile // 2, tile // 2),)``; ``()`` for none).
      seed: seed of the per-slice random rolls.
    Returns:
      ``(images, labels)``: float32 ``(n, tile, tile, 1)`` in (0, 1], int32 ``(n,)``; per
      file, copy by copy, slice by slice, tiles row-major.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for path, label in files:
        slices = _split_slices(read_fits_cube(path, field), split, tile, projection)
        if phase_only:
            slices = flatten_power(slices)
        tiles = equalise_histogram(_shifted_tiles(slices, _rolls(slices, split, tile, shifts,
                                                                 rng), tile))
        images.append(tiles)
        labels.append(np.full(len(tiles), label, dtype=np.int32))
    return np.concatenate(images)[..., None], np.concatenate(labels)


def mapping_images(files, split, tile, input_field="density",
                   target_field="magnetic_energy_density", projection=1, shifts=None, seed=0):
    """Input and target tiles of ``split`` for field-to-field mapping (U-net).

    Both fields go through :func:`to_byte_scale` / 255 (log10, min-max over each cube to
    [0, 1]; no per-tile equalisation, which would change the mapping from tile to tile), then
    the same slices, projections, rolls and tiles as :func:`classification_images` (the
    target rolled exactly like its input). ``files`` may be ``[(path, label), ...]`` or paths.
    Returns:
      ``(inputs, targets)``: float32 ``(n, tile, tile, 1)`` each, in [0, 1].
    """
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for entry in files:
        path = entry[0] if isinstance(entry, (tuple, list)) else entry
        pair = [_split_slices(read_fits_cube(path, field), split, tile, projection) / 255.0
                for field in (input_field, target_field)]
        rolls = _rolls(pair[0], split, tile, shifts, rng)
        inputs.append(_shifted_tiles(pair[0], rolls, tile))
        targets.append(_shifted_tiles(pair[1], rolls, tile))
    return (np.concatenate(inputs)[..., None].astype(np.float32),
            np.concatenate(targets)[..., None].astype(np.float32))


def cube_images(cube, tile, projection=1, flattened_power=False, equalised=True):
    """Tiles of every slice of one raw cube, preprocessed as the training images are.

    Args:
      cube: ``(N, H, W)`` raw field (physical or code units; axis 0 is sliced).
      tile: tile side, a divisor of H and W.
      projection: average this many adjacent raw slices per image (periodic windows).
      flattened_power: phases only (:func:`flatten_power`) of each byte-scaled slice.
      equalised: histogram-equalise each tile to (0, 1] (the classifier's images); False:
        byte scale / 255, in [0, 1] (the U-net's).
    Returns:
      float32 ``(N, (H / tile) (W / tile), tile, tile)``: image by image, tiles row-major.
    """
    cube = np.asarray(cube)
    _check_tile(cube, tile)
    slices = _byte_scaled_slices(cube, projection)
    if flattened_power:
        slices = flatten_power(slices)
    tiles = tile_image(slices, tile)
    return equalise_histogram(tiles) if equalised else (tiles / 255.0).astype(np.float32)


def _random_flips(x, y, seed):
    """Flip each example of a batch left-right and/or up-down (and y with it when y is an
    image); ``seed`` is a stateless seed pair."""
    flip_x, flip_y = tf.unstack(tf.random.stateless_uniform((2, tf.shape(x)[0]), seed) < 0.5)
    k = square_symmetry_of(False, flip_y, flip_x)
    return (transform_each_tf(x, k, SQUARE_SYMMETRIES),
            transform_each_tf(y, k, SQUARE_SYMMETRIES) if len(y.shape) == 4 else y)


def turbulence_dataset(images, labels_or_targets, batch_size, shuffle=True, flips=True,
                       seed=None):
    """Batched ``tf.data.Dataset`` of (image, label) or (input, target) pairs.

    Args:
      images: ``(n, H, W, C)``; labels_or_targets: ``(n,)`` class labels or ``(n, H, W, C')``
        target images (flipped together with their inputs).
      shuffle: reshuffle every epoch (seeded by ``seed``).
      flips: random horizontal and vertical flips, each with probability 1/2, drawn per
        example from a seeded stream that differs from epoch to epoch.
    """
    images = np.asarray(images, dtype=np.float32)
    targets = np.asarray(labels_or_targets)
    if len(images) != len(targets):
        raise ValueError(f"images ({len(images)}) and labels_or_targets ({len(targets)}) "
                         "differ in length")
    if targets.ndim == 4:
        targets = targets.astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((images, targets))
    if shuffle:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if flips:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip((data, seeds)).map(
            lambda pair, s: _random_flips(pair[0], pair[1], s),
            num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)
