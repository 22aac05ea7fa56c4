"""dm2gal: a 3D CNN mapping a dark-matter neighbourhood to the stellar mass at its centre.

The network (Kasmanoff et al. 2020) reads a ``window``^3 two-channel cube (standardised
log10(1 + M) of the gravity-only dark matter and of its mass-weighted subhalo field) and
returns the standardised log10(1 + M*) of the centre voxel. :func:`predict_cube` slides it over
every voxel of a region (the test cube) in batches cut from a possibly memory-mapped grid.

The model carries the (mean, std) of log10(1 + M) it was trained with (``standardisation``, a
config entry), so a saved model applies on its own to raw mass grids in Msun/h per voxel:
:meth:`DM2Gal.predict_stellar_mass` returns the stellar mass per voxel in Msun/h.
"""
import itertools

import keras
import numpy as np

from tfastro.core.models import OwnCompile
from tfastro.dm2gal.io import (STANDARDISATION, destandardise, inverse_log_mass, log_mass,
                               standardise)

__all__ = ["DM2Gal", "INPUT_FIELDS", "TARGET_FIELD", "dm2gal_kernel_sizes", "predict_cube"]


#: The input channels, in order: gravity-only dark matter and subhalo mass per voxel.
INPUT_FIELDS = ("dark_matter", "subhalo")


#: The field whose standardised log10(1 + M) the network predicts: hydro stellar mass.
TARGET_FIELD = "stellar"


#: Stride-1 kernel sizes of the three stages of the released 65^3 model (upper bounds).
RELEASED_KERNELS = (7, 5, 3)


#: Adam's learning rate in the paper's training (reduced on plateau there).
LEARNING_RATE = 1e-5


def _stage_sizes(window, kernel_sizes):
    """Side of the feature cube after each of the nine convolutions (valid padding).

    Stage j is two stride-1 convolutions of kernel ``kernel_sizes[j]`` and one of kernel 3,
    stride 2: 65 -> 59 -> 53 -> 26 -> 22 -> 18 -> 8 -> 6 -> 4 -> 1 for (7, 5, 3).
    """
    sizes, side = [], int(window)
    for k in kernel_sizes:
        for _ in range(2):
            side -= k - 1
            sizes.append(side)
        side = (side - 3) // 2 + 1 if side >= 3 else 0
        sizes.append(side)
    return sizes


def _checked_standardisation(standardisation):
    """{field: (mean, std)} of INPUT_FIELDS and TARGET_FIELD, floats with std > 0."""
    fields = INPUT_FIELDS + (TARGET_FIELD,)
    try:
        stats = {f: tuple(float(v) for v in standardisation[f]) for f in fields}
    except (KeyError, TypeError, ValueError):
        stats = {}
    if len(stats) != len(fields) or not all(
            len(v) == 2 and np.all(np.isfinite(v)) and v[1] > 0 for v in stats.values()):
        raise ValueError(f"standardisation: expected {{field: (mean, std)}} with std > 0 for "
                         f"{', '.join(fields)}, got {standardisation!r}")
    return stats


def _maps_to_one(window, kernel_sizes):
    sizes = _stage_sizes(window, kernel_sizes)
    return min(sizes) >= 1 and sizes[-1] == 1


def dm2gal_kernel_sizes(window):
    """Stride-1 kernel sizes (k_a, k_b, k_c) of the three stages for a ``window``^3 input.

    Rule: among odd kernels 1 <= k_a <= 7, 1 <= k_b <= 5, 1 <= k_c <= 3 (the released model's
    as upper bounds) that map the window to 1^3 voxel, the one with the largest sum
    k_a + k_b + k_c, ties broken by the larger k_a, then k_b (65 -> (7, 5, 3); 17 -> (1, 1, 1);
    25 -> (5, 1, 1)). Windows from 15 to 66 voxels can be mapped.
    Raises ValueError for a window no kernel triple maps to 1^3.
    """
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer (voxels), got {window!r}")
    candidates = [ks for ks in itertools.product(*(range(1, k + 1, 2) for k in RELEASED_KERNELS))
                  if _maps_to_one(int(window), ks)]
    if not candidates:
        raise ValueError(f"window={window}: no odd stride-1 kernels up to {RELEASED_KERNELS} map a "
                         f"{window}^3 cube to 1^3 voxel; expected a window of 15 to 66 voxels")
    return max(candidates, key=lambda ks: (sum(ks), ks))


@keras.saving.register_keras_serializable(package="tfastro")
class DM2Gal(OwnCompile, keras.Model):
    """Valid Conv3D -> batch norm -> ReLU blocks and a dense head: window -> centre value.

    Blocks: 2 x (k_a, s1, ch) -> (k3, s2, 2ch) -> 2 x (k_b, s1, 2ch) -> (k3, s2, 4ch) ->
    2 x (k_c, s1, 4ch) -> (k3, s2, 8ch), then flatten -> dense ``hidden`` -> ReLU -> dense 1.
    At window 65 (k_a, k_b, k_c) = (7, 5, 3) and the sides run 65 -> 59 -> 53 -> 26 -> 22 ->
    18 -> 8 -> 6 -> 4 -> 1; about 13.9 M parameters with ch = 64. Convolutions keep their
    biases; batch norm uses PyTorch's defaults (momentum 0.1 there = 0.9 here, epsilon 1e-5).

    Args:
      ch: channels of the first stage.
      window: side of the input cube in voxels.
      kernel_sizes: the three stride-1 kernel sizes, or None for
        :func:`dm2gal_kernel_sizes` of ``window``; they must map the window to 1^3.
      hidden: units of the hidden dense layer.
      in_channels: input channels (2: dark matter and subhalo fields).
      batch_norm: batch norm after every convolution (the original); False leaves it out.
      l2: coupled L2 weight decay: l2 * sum(w^2) of every kernel is added to the loss (its
        gradient passes through Adam's moments, as PyTorch's Adam weight_decay does).
      standardisation: {"dark_matter", "subhalo", "stellar": (mean, std)} of log10(1 + M), M
        in Msun/h per voxel, that the inputs and target were standardised with; None: the
        paper's constants (``tfastro.dm2gal.io.STANDARDISATION``).

    ``call(windows)``: ``(B, window, window, window, in_channels)`` channels-last; returns
    ``(B, 1)`` float32, the standardised target of each window's centre voxel.

    ``compile()`` trains as the paper did by default: Adam (learning rate 1e-5) on the MSE of
    the standardised centre values (the l2 term is added to it).

    Example:

    >>> model = DM2Gal(ch=2, window=17, hidden=8)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))  # the MSE of its own by default
    >>> windows = np.zeros((4, 17, 17, 17, 2), "float32")
    >>> history = model.fit(windows, np.zeros((4, 1), "float32"), verbose=0)
    """

    def __init__(self, ch=64, window=65, kernel_sizes=None, hidden=256, in_channels=2, l2=0.0,
                 batch_norm=True, standardisation=None, **kwargs):
        super().__init__(**kwargs)
        self.standardisation = _checked_standardisation(
            STANDARDISATION if standardisation is None else standardisation)
        self.l2 = float(l2)
        self.batch_norm = bool(batch_norm)
        for name, value in (("ch", ch), ("hidden", hidden), ("in_channels", in_channels)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.ch, self.hidden, self.in_channels = int(ch), int(hidden), int(in_channels)
        if kernel_sizes is None:
            kernel_sizes = dm2gal_kernel_sizes(window)
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if len(kernel_sizes) != 3 or not _maps_to_one(int(window), kernel_sizes):
            raise ValueError(f"kernel_sizes={kernel_sizes} do not map window={window} to 1^3 "
                             f"voxel (sides {_stage_sizes(int(window), kernel_sizes)})")
        self.window, self.kernel_sizes = int(window), kernel_sizes
        self.blocks = []
        for stage, k in enumerate(kernel_sizes):
            width = self.ch * 2**stage
            specs = [(k, 1, width), (k, 1, width), (3, 2, 2 * width)]
            for i, (kernel, stride, filters) in enumerate(specs):
                self.blocks.append(self._block(f"stage{stage + 1}_{i + 1}", filters, kernel,
                                               stride))
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy, name="flatten")
        self.dense = keras.layers.Dense(self.hidden, activation="relu", dtype=self.dtype_policy,
                                        kernel_regularizer=self._regularizer(), name="hidden")
        self.head = keras.layers.Dense(1, dtype="float32", name="centre")

    def _regularizer(self):
        return keras.regularizers.L2(self.l2) if self.l2 else None

    def _block(self, name, filters, kernel, stride):
        dt = self.dtype_policy
        return [keras.layers.Conv3D(filters, kernel, strides=stride, padding="valid", dtype=dt,
                                    kernel_regularizer=self._regularizer(), name=f"{name}_conv"),
                keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dt,
                                                name=f"{name}_bn")
                if self.batch_norm else keras.layers.Identity(dtype=dt, name=f"{name}_identity"),
                keras.layers.ReLU(dtype=dt, name=f"{name}_relu")]

    def build(self, input_shape):
        w, c = self.window, self.in_channels
        if len(input_shape) != 5 or tuple(input_shape[1:]) != (w, w, w, c):
            raise ValueError(f"windows: expected shape (B, {w}, {w}, {w}, {c}), got "
                             f"{tuple(input_shape)}")
        shape = tuple(input_shape)
        for layer in [layer for block in self.blocks for layer in block] + [self.flatten,
                                                                            self.dense]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.head.build(shape)

    def call(self, windows, training=False):
        x = windows
        for conv, norm, relu in self.blocks:
            x = relu(norm(conv(x), training=training))
        return self.head(self.dense(self.flatten(x)))

    def compile(self, optimizer="auto", loss="auto", **kwargs):
        """``keras.Model.compile``; "auto" is the paper's choice: ``optimizer`` Adam with
        learning rate 1e-5, ``loss`` the MSE of the standardised centre values."""
        super().compile(
            optimizer=keras.optimizers.Adam(LEARNING_RATE) if optimizer == "auto" else optimizer,
            loss=keras.losses.MeanSquaredError() if loss == "auto" else loss, **kwargs)

    def get_config(self):
        return {**super().get_config(), "ch": self.ch, "window": self.window,
                "kernel_sizes": list(self.kernel_sizes), "hidden": self.hidden,
                "in_channels": self.in_channels, "l2": self.l2, "batch_norm": self.batch_norm,
                "standardisation": {f: list(v) for f, v in self.standardisation.items()}}

    @classmethod
    def from_config(cls, config):
        if "standardisation" not in config:
            raise ValueError("DM2Gal config without standardisation: saved before models carried "
                             "it; build DM2Gal(..., standardisation=<the (mean, std) it was "
                             "trained with, e.g. field_dir/standardisation.json>) and "
                             "load_weights(path)")
        return super().from_config(config)

    def stellar_mass(self, predicted):
        """Standardised predictions -> stellar mass per voxel in Msun/h, 10^(y std + mean) - 1,
        float32; NaN (voxels not predicted) and negative values become 0."""
        mass = inverse_log_mass(destandardise(predicted, stats=self.standardisation[TARGET_FIELD]))
        return np.maximum(np.nan_to_num(mass, nan=0.0), 0.0).astype(np.float32)

    def predict_stellar_mass(self, dark_matter, subhalo, region=None, batch_size=256, mask=None):
        """Stellar mass per voxel (Msun/h) of ``region`` predicted from raw gravity-only mass
        grids, standardised with the model's own constants as the windows are read.

        Args:
          dark_matter, subhalo: ``(N, N, N)`` mass per voxel in Msun/h (numpy or memory-mapped;
            periodic), the fields of :data:`INPUT_FIELDS`.
          region: ((x0, x1), (y0, y1), (z0, z1)) half-open voxel ranges; None: the whole grid.
          batch_size, mask: as in :func:`predict_cube` (voxels outside ``mask`` get 0).
        Returns:
          float32 array of the region's shape.
        """
        grids = (dark_matter, subhalo)
        if self.in_channels != len(grids) or any(
                len(g.shape) != 3 or g.shape != grids[0].shape for g in grids):
            raise ValueError(f"dark_matter {dark_matter.shape}, subhalo {subhalo.shape}: expected "
                             f"two (N, N, N) grids for a model of {len(grids)} input channels "
                             f"(this one has {self.in_channels})")
        inputs = _StandardisedGrids(grids, [self.standardisation[f] for f in INPUT_FIELDS])
        region = tuple((0, n) for n in grids[0].shape) if region is None else region
        return self.stellar_mass(predict_cube(self, inputs, region, self.window, batch_size,
                                              mask=mask))


class _StandardisedGrids:
    """Network inputs ``(N, N, N, C)`` of C raw mass grids: (log10(1 + M) - mean) / std of each,
    computed for the block each read asks for."""

    def __init__(self, grids, stats):
        self.grids, self.stats = grids, stats
        self.shape = tuple(grids[0].shape) + (len(grids),)

    def __getitem__(self, index):
        blocks = [standardise(log_mass(np.asarray(grid[index])), stats=stats)
                  for grid, stats in zip(self.grids, self.stats)]
        return np.stack(blocks, axis=-1).astype(np.float32)


def _checked_region(region, grid_shape):
    """``region`` as ((x0, x1), (y0, y1), (z0, z1)) ints with 0 <= lo < hi <= N per axis."""
    try:
        bounds = tuple((int(lo), int(hi)) for lo, hi in region)
    except (TypeError, ValueError):
        raise ValueError(f"region: expected ((x0, x1), (y0, y1), (z0, z1)), got {region!r}")
    if len(bounds) != 3 or any(not 0 <= lo < hi <= n for (lo, hi), n in zip(bounds, grid_shape)):
        raise ValueError(f"region={region!r}: expected three half-open voxel ranges inside the "
                         f"grid {tuple(grid_shape)}")
    return bounds


def _read_block(inputs, starts, stops):
    """inputs[starts:stops] per spatial axis, wrapped periodically where it leaves the grid."""
    n = inputs.shape[:3]
    if all(0 <= a and b <= s for a, b, s in zip(starts, stops, n)):
        return np.asarray(inputs[tuple(slice(a, b) for a, b in zip(starts, stops))])
    index = np.ix_(*(np.arange(a, b) % s for a, b, s in zip(starts, stops, n)))
    return np.asarray(inputs[index])


def _windows(inputs, voxels, window):
    """(B, w, w, w, C) float32 windows centred on ``voxels`` (B, 3), read as one bounding block."""
    half = window // 2
    starts, stops = voxels.min(axis=0) - half, voxels.max(axis=0) + half + 1
    block = _read_block(inputs, starts, stops).astype(np.float32, copy=False)
    views = np.lib.stride_tricks.sliding_window_view(block, (window,) * 3, axis=(0, 1, 2))
    corner = voxels - voxels.min(axis=0)
    picked = views[corner[:, 0], corner[:, 1], corner[:, 2]]  # (B, C, w, w, w)
    return np.moveaxis(picked, 1, -1)


def predict_cube(model, inputs, region, window, batch_size=256, mask=None, fill_value=np.nan):
    """Stitched prediction: the model's centre value for every voxel of a region.

    The window around each voxel (side ``window``, odd, centred) is cut from ``inputs`` batch
    by batch: each batch reads only the bounding block of its windows, so ``inputs`` may be a
    memory-mapped array and the memory stays bounded by about ``batch_size`` windows plus one
    block (a few rows of the region). The grid is periodic: windows leaving it wrap around.

    Args:
      model: a Keras model mapping ``(B, window, window, window, C)`` to ``(B, 1)`` (e.g.
        :class:`DM2Gal` with the same window).
      inputs: ``(N, N, N, C)`` standardised input fields (numpy array or ``np.memmap``).
      region: ((x0, x1), (y0, y1), (z0, z1)) half-open voxel ranges inside the grid.
      window: odd window side in voxels.
      batch_size: windows per model call (the last batch is padded to it: one trace).
      mask: optional boolean array of the region's shape: predict only where True (e.g. the
        voxels whose true target exceeds 1e8, as the original did: it uses the truth).
      fill_value: value of the voxels outside ``mask`` (NaN by default).
    Returns:
      float32 array of the region's shape: predicted standardised values (``fill_value``
      where ``mask`` is False).
    """
    if len(inputs.shape) != 4:
        raise ValueError(f"inputs: expected (N, N, N, C) fields, got shape {inputs.shape}")
    if int(window) != window or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer, got {window!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    bounds = _checked_region(region, inputs.shape[:3])
    shape = tuple(hi - lo for lo, hi in bounds)
    if mask is None:
        mask = np.ones(shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask: expected the region's shape {shape}, got {mask.shape}")
    result = np.full(shape, fill_value, dtype=np.float32)
    local = np.argwhere(mask)  # C order: consecutive voxels share rows of the region
    origin = np.array([lo for lo, _ in bounds])
    batch_size = int(batch_size)
    for start in range(0, len(local), batch_size):
        voxels = local[start:start + batch_size]
        batch = _windows(inputs, voxels + origin, int(window))
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - n,) + batch.shape[1:],
                                                    batch.dtype)])
        predicted = np.asarray(model.predict_on_batch(batch)).reshape(batch_size)[:n]
        result[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = predicted
    return result
