"""ColumnNet: a Conv3D column network from a spectral (PPV) cube to the 3D structure of a core.

Axes follow :mod:`tfastro.prestellar.synthetic`: the input is a channels-last PPV cube
``(B, Nx, Ny, Nv, C)`` indexed [ix, iy, ic] (sky position x, y and velocity channel c; C = 1
intensity channel); the output ``(B, Nx, Ny, Nz, 2)`` holds, for every sky pixel (x, y), its
column along the line of sight z in ``Nz`` depth bins: channel 0 log10 density, channel 1 the
line-of-sight velocity v_z, in physical units: log10(n / n_peak) and km/s (outputs are linear,
so signed velocities are reachable).

Normalisation. The model carries the scaling of its training cores in its config
(:func:`training_normalisation`): the network proper sees ``ppv / ppv_scale`` and its outputs o
become ``o * target_std + target_mean`` per target, so a saved model maps raw PPV cubes (the
units of :mod:`tfastro.prestellar.io`) to physical columns on its own. Training compares
standardised targets: the compiled loss is applied to ``(y - target_mean) / target_std`` of
the targets and of the predictions (:meth:`ColumnNet.compute_loss`).

Architecture (all spatial strides 1, so Nx and Ny are free and need no divisibility):

- local path: ``depth`` blocks of Conv3D over (x, y, v) with kernel
  (``spatial_kernel``, ``spatial_kernel``, ``spectral_kernel``), 'same' padding, activation,
  dropout. The first block keeps the Nv channels; each later one strides ``spectral_stride``
  along v only, leaving Nv' = ceil(Nv / s^(depth-1)) channels. A column sees the spectra of the
  pixels within ``halo = depth * (spatial_kernel - 1) / 2`` of it.
- global context: the mean over every (x, y) of the local features, (B, Nv', width), flattened
  -> Dense(``context_units``, activation): one vector per cube given to every column, so each
  column also sees the whole core (``context=False`` leaves it out).
- column head, per pixel: the pixel's local features flattened over (Nv', width), concatenated
  with the context -> Dense(``hidden``) -> dropout -> Dense(2 Nz), linear -> (Nz, 2).

Nv (``n_channels``) and Nz (``n_depth``) are fixed when the model is built (the head flattens the
spectral features; the last Dense has 2 Nz units).

Because the context is a function of a sum over pixels, a cube too large for memory can be
predicted window by window (:func:`scan_predict`) with a result equal to the one-pass
prediction. Dropout can be kept on at inference for Monte-Carlo uncertainty
(:func:`mc_dropout_predict`).
"""
import math

import keras
import numpy as np
from keras import ops

from tfastro.core.models import OwnCompile

__all__ = ["ColumnNet", "training_normalisation", "scan_predict", "mc_dropout_predict",
           "N_TARGETS"]


#: Targets per depth bin: log10 density and line-of-sight velocity.
N_TARGETS = 2


#: ColumnNet's normalisation arguments (config entries).
NORMALISATION = ("ppv_scale", "target_mean", "target_std")


#: Adam's learning rate by default (the task's --lr default).
LEARNING_RATE = 1e-3


def _positive_int(name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _per_target(name, values, positive=False):
    values = tuple(float(v) for v in values)
    if len(values) != N_TARGETS or not all(np.isfinite(values)) or (
            positive and min(values) <= 0):
        raise ValueError(f"{name} must be {N_TARGETS} finite{' positive' if positive else ''} "
                         f"numbers (log10 density, v_z), got {values!r}")
    return values


def training_normalisation(ppv, targets):
    """ColumnNet's normalisation from training cores: {"ppv_scale": the largest PPV value,
    "target_mean", "target_std": mean and spread of (log10 n / n_peak, v_z in km/s) over all
    voxels}.

    Args:
      ppv: ``(cores, Nx, Ny, Nv)`` PPV cubes; targets: ``(cores, Nx, Ny, Nz, 2)``.
    """
    targets = np.asarray(targets, np.float64)
    return {"ppv_scale": float(np.max(ppv)),
            "target_mean": tuple(float(v) for v in targets.mean(axis=(0, 1, 2, 3))),
            "target_std": tuple(float(v) for v in targets.std(axis=(0, 1, 2, 3)))}


@keras.saving.register_keras_serializable(package="tfastro")
class ColumnNet(OwnCompile, keras.Model):
    """PPV cube ``(B, Nx, Ny, Nv, C)`` -> columns ``(B, Nx, Ny, Nz, 2)`` (see the module doc).

    With the defaults (width 16, depth 3, kernels 3 x 3 x 7, context 32, hidden 64) the model
    has 51,904 trainable parameters at Nv = 32, Nz = 32.

    Args:
      n_depth: Nz, depth bins of each predicted column along the line of sight.
      n_channels: Nv, spectral channels of the input cubes.
      width: filters of every convolution.
      depth: number of convolution blocks of the local path.
      spatial_kernel: odd kernel side along x and y.
      spectral_kernel: kernel length along the velocity axis.
      spectral_stride: stride along v of every block after the first.
      context: add the global-context path.
      context_units: size of the context vector.
      hidden: units of the hidden layer of the column head.
      dropout: rate of the dropout after every block and in the head (0: none).
      activation: activation of the hidden layers (Keras name).
      in_channels: C, channels of the input cube (1: intensity).
      seed: seed of the training dropout masks (None: drawn).
      ppv_scale: PPV value that the network sees as 1 (the training cores' largest).
      target_mean, target_std: (log10 density, v_z) mean and spread of the training targets,
        in log10(n / n_peak) and km/s (:func:`training_normalisation`). The defaults (1, 0, 1)
        leave inputs and outputs unscaled.

    ``call(ppv, training=False, dropout_seed=None)``: dropout is on when ``training`` or when a
    ``keras.random.SeedGenerator`` is given as ``dropout_seed`` (Monte-Carlo sampling, which
    draws from it).

    ``compile()`` trains by default with Adam (learning rate 1e-3) on the MSE of the
    standardised targets (:meth:`compute_loss` standardises whatever loss is compiled).
    """

    def __init__(self, n_depth, n_channels, width=16, depth=3, spatial_kernel=3,
                 spectral_kernel=7, spectral_stride=2, context=True, context_units=32, hidden=64,
                 dropout=0.1, activation="relu", in_channels=1, seed=None, ppv_scale=1.0,
                 target_mean=(0.0, 0.0), target_std=(1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        sizes = dict(n_depth=n_depth, n_channels=n_channels, width=width, depth=depth,
                     spatial_kernel=spatial_kernel, spectral_kernel=spectral_kernel,
                     spectral_stride=spectral_stride, context_units=context_units, hidden=hidden,
                     in_channels=in_channels)
        for name, value in sizes.items():
            setattr(self, name, _positive_int(name, value))
        if self.spatial_kernel % 2 == 0:
            raise ValueError(f"spatial_kernel must be odd (symmetric 'same' padding), got "
                             f"{spatial_kernel!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout, self.context, self.seed = float(dropout), bool(context), seed
        if not (np.isfinite(ppv_scale) and ppv_scale > 0):
            raise ValueError(f"ppv_scale must be a finite positive number, got {ppv_scale!r}")
        self.ppv_scale = float(ppv_scale)
        self.target_mean = _per_target("target_mean", target_mean)
        self.target_std = _per_target("target_std", target_std, positive=True)
        self.activation = keras.activations.serialize(keras.activations.get(activation))
        dt = self.dtype_policy
        kernel = (self.spatial_kernel, self.spatial_kernel, self.spectral_kernel)
        self.convs = [keras.layers.Conv3D(self.width, kernel,
                                          strides=(1, 1, 1 if i == 0 else self.spectral_stride),
                                          padding="same", activation=activation, dtype=dt,
                                          name=f"local{i + 1}")
                      for i in range(self.depth)]
        self.context_dense = (keras.layers.Dense(self.context_units, activation=activation,
                                                 dtype=dt, name="context")
                              if self.context else None)
        self.hidden_dense = keras.layers.Dense(self.hidden, activation=activation, dtype=dt,
                                               name="column_hidden")
        self.column_out = keras.layers.Dense(N_TARGETS * self.n_depth, dtype="float32",
                                             name="columns")
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def halo(self):
        """Pixels on each side of a column whose spectra reach it through the local path."""
        return self.depth * (self.spatial_kernel // 2)

    @property
    def reduced_channels(self):
        """Nv', spectral length of the local features."""
        return math.ceil(self.n_channels / self.spectral_stride ** (self.depth - 1))

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 5 or shape[3:] != (self.n_channels, self.in_channels):
            raise ValueError(f"ppv: expected shape (B, Nx, Ny, {self.n_channels}, "
                             f"{self.in_channels}), got {shape}")
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        features = self.reduced_channels * self.width
        if self.context:
            self.context_dense.build((None, features))
            features += self.context_units
        self.hidden_dense.build((None, features))
        self.column_out.build((None, self.hidden))

    def _dropout(self, x, training, dropout_seed):
        if self.dropout == 0 or not (training or dropout_seed is not None):
            return x
        seed = self.seed_generator if dropout_seed is None else dropout_seed
        return keras.random.dropout(x, self.dropout, seed=seed)

    def local_features(self, ppv, footprint=None, training=False, dropout_seed=None):
        """Local path: raw PPV ``(B, X, Y, Nv, C)`` -> ``(B, X, Y, Nv', width)`` (the network
        sees ``ppv / ppv_scale``).

        ``footprint`` (B, X, Y), 1 on pixels inside the cube and 0 on the zero padding around a
        window cut at its edge: the features are zeroed there after every block, as the 'same'
        padding of a one-pass call would have them.
        """
        x = ops.divide(ppv, self.ppv_scale)
        mask = None if footprint is None else ops.cast(footprint, self.compute_dtype)[
            :, :, :, None, None]
        for conv in self.convs:
            x = conv(x)
            if mask is not None:
                x = x * mask
            x = self._dropout(x, training, dropout_seed)
        return x

    def global_context(self, pooled):
        """Context vector ``(B, context_units)`` from the mean local features ``(B, Nv', width)``
        over all (x, y) of each cube."""
        return self.context_dense(ops.reshape(pooled, (-1, self.reduced_channels * self.width)))

    def columns(self, features, context=None, training=False, dropout_seed=None):
        """Column head: local features ``(B, X, Y, Nv', width)`` and the context
        ``(B, context_units)`` (None without the context path) -> ``(B, X, Y, Nz, 2)`` in
        log10(n / n_peak) and km/s."""
        b, nx, ny = ops.shape(features)[:3]
        x = ops.reshape(features, (b, nx, ny, self.reduced_channels * self.width))
        if self.context:
            context = ops.broadcast_to(context[:, None, None, :],
                                       (b, nx, ny, self.context_units))
            x = ops.concatenate([x, ops.cast(context, x.dtype)], axis=-1)
        x = self._dropout(self.hidden_dense(x), training, dropout_seed)
        columns = ops.reshape(self.column_out(x), (b, nx, ny, self.n_depth, N_TARGETS))
        return columns * np.float32(self.target_std) + np.float32(self.target_mean)

    def standardised(self, columns):
        """``(..., 2)`` physical targets or predictions -> (t - target_mean) / target_std."""
        return (ops.cast(columns, "float32") - np.float32(self.target_mean)) / np.float32(
            self.target_std)

    def compile(self, optimizer="auto", loss="auto", **kwargs):
        """``keras.Model.compile``; "auto": ``optimizer`` Adam with learning rate 1e-3,
        ``loss`` the MSE (of the standardised targets)."""
        super().compile(
            optimizer=keras.optimizers.Adam(LEARNING_RATE) if optimizer == "auto" else optimizer,
            loss=keras.losses.MeanSquaredError() if loss == "auto" else loss, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of the standardised targets and predictions."""
        return super().compute_loss(x, self.standardised(y), self.standardised(y_pred),
                                    sample_weight, training)

    def call(self, ppv, training=False, dropout_seed=None):
        features = self.local_features(ppv, training=training, dropout_seed=dropout_seed)
        context = (self.global_context(ops.mean(features, axis=(1, 2))) if self.context
                   else None)
        return self.columns(features, context, training=training, dropout_seed=dropout_seed)

    def get_config(self):
        return {**super().get_config(), "n_depth": self.n_depth, "n_channels": self.n_channels,
                "width": self.width, "depth": self.depth, "spatial_kernel": self.spatial_kernel,
                "spectral_kernel": self.spectral_kernel, "spectral_stride": self.spectral_stride,
                "context": self.context, "context_units": self.context_units,
                "hidden": self.hidden, "dropout": self.dropout, "activation": self.activation,
                "in_channels": self.in_channels, "seed": self.seed, "ppv_scale": self.ppv_scale,
                "target_mean": list(self.target_mean), "target_std": list(self.target_std)}

    @classmethod
    def from_config(cls, config):
        missing = [k for k in NORMALISATION if k not in config]
        if missing:
            raise ValueError(f"ColumnNet config without {', '.join(missing)}: saved before models "
                             "carried their normalisation; build ColumnNet(..., "
                             "**training_normalisation(ppv, targets)) of its training cores and "
                             "load_weights(path)")
        return super().from_config(config)


def _tiles(n, interior, stride):
    """Windows along one axis of n pixels: [(start, stop)] of the pixels each one keeps.

    Window starts step by ``stride`` (<= interior) and the last is moved back to end at n, so
    consecutive starts are at most ``interior`` apart; each window keeps the pixels from its
    start to the next one's, which partition [0, n)."""
    starts = list(range(0, max(n - interior, 0) + 1, stride))
    if starts[-1] + interior < n:
        starts.append(n - interior)
    return list(zip(starts, starts[1:] + [n]))


def _cut(cube, x0, y0, window):
    """``cube[x0:x0 + window, y0:y0 + window]`` zero-filled where it leaves the cube, and its
    footprint (window, window): 1 inside the cube, 0 outside."""
    nx, ny = cube.shape[:2]
    block = np.zeros((window, window) + cube.shape[2:], np.float32)
    footprint = np.zeros((window, window), np.float32)
    ax, bx, ay, by = max(x0, 0), min(x0 + window, nx), max(y0, 0), min(y0 + window, ny)
    block[ax - x0:bx - x0, ay - y0:by - y0] = cube[ax:bx, ay:by]
    footprint[ax - x0:bx - x0, ay - y0:by - y0] = 1.0
    return block, footprint


def _window_batches(cube, tiles, halo, window, batch_size):
    """Yield (tiles, windows (b, w, w, Nv, C), footprints (b, w, w)) batch by batch."""
    for start in range(0, len(tiles), batch_size):
        batch = tiles[start:start + batch_size]
        cut = [_cut(cube, tx[0] - halo, ty[0] - halo, window) for tx, ty in batch]
        yield batch, np.stack([c[0] for c in cut]), np.stack([c[1] for c in cut])


def scan_predict(model, ppv, window, stride=None, batch_size=16):
    """Prediction of one PPV cube stitched from windows: equals ``model(ppv[None])[0]``.

    Each window (``window`` x ``window`` pixels, all Nv channels) is cut from the cube as if it
    were zero-padded by the model's ``halo``, and keeps only the pixels at least ``halo`` from
    its edge (its interior), so every kept column sees exactly the neighbourhood it sees in one
    pass; pixels outside the cube are masked as the one-pass 'same' padding is (see
    :meth:`ColumnNet.local_features`). With the context path, a first scan sums the local
    features over all pixels, giving the same mean as one pass, and the context computed from it
    is given to every window of the second scan (the local features are computed twice rather
    than stored). Memory stays bounded by ``batch_size`` windows, so ``ppv`` may be a
    memory-mapped array larger than the model could take at once.

    Args:
      model: a built :class:`ColumnNet`, dropout off (inference).
      ppv: one raw PPV cube ``(Nx, Ny, Nv)`` or ``(Nx, Ny, Nv, C)``.
      window: side in pixels of the windows fed to the model, > 2 halo.
      stride: pixels between window starts, 1 .. window - 2 halo (None: window - 2 halo,
        windows overlapping by exactly their halo).
      batch_size: windows per model call.
    Returns:
      ``(Nx, Ny, Nz, 2)`` float32 array: log10(n / n_peak) and v_z in km/s.
    """
    if not isinstance(model, ColumnNet):
        raise ValueError(f"model: expected a ColumnNet, got {type(model).__name__}")
    cube = ppv if len(ppv.shape) == 4 else ppv[..., None]
    if len(cube.shape) != 4 or tuple(cube.shape[2:]) != (model.n_channels, model.in_channels):
        raise ValueError(f"ppv: expected shape (Nx, Ny, {model.n_channels}) or (Nx, Ny, "
                         f"{model.n_channels}, {model.in_channels}), got {tuple(ppv.shape)}")
    halo = model.halo
    window = _positive_int("window", window)
    interior = window - 2 * halo
    if interior < 1:
        raise ValueError(f"window={window}: expected more than 2 halo = {2 * halo} pixels")
    stride = interior if stride is None else _positive_int("stride", stride)
    if stride > interior:
        raise ValueError(f"stride={stride}: expected at most window - 2 halo = {interior}, so "
                         f"that the windows' interiors cover the cube")
    batch_size = _positive_int("batch_size", batch_size)
    nx, ny = cube.shape[:2]
    tiles = [(tx, ty) for tx in _tiles(nx, interior, stride) for ty in _tiles(ny, interior, stride)]

    def kept(batch, values):
        """Each window's kept pixels, with their place in the cube."""
        for ((x0, x1), (y0, y1)), v in zip(batch, ops.convert_to_numpy(values)):
            yield (slice(x0, x1), slice(y0, y1)), v[halo:halo + x1 - x0, halo:halo + y1 - y0]

    context = None
    if model.context:
        total = np.zeros((model.reduced_channels, model.width))
        for batch, windows, footprints in _window_batches(cube, tiles, halo, window, batch_size):
            for _, features in kept(batch, model.local_features(windows, footprints)):
                total += features.sum(axis=(0, 1), dtype=np.float64)
        context = model.global_context((total / (nx * ny)).astype(np.float32)[None])
    out = np.empty((nx, ny, model.n_depth, N_TARGETS), np.float32)
    for batch, windows, footprints in _window_batches(cube, tiles, halo, window, batch_size):
        context_batch = None if context is None else ops.repeat(context, len(batch), axis=0)
        columns = model.columns(model.local_features(windows, footprints), context_batch)
        for place, values in kept(batch, columns):
            out[place] = values
    return out


def mc_dropout_predict(model, ppv, n_samples=32, seed=0):
    """Monte-Carlo dropout: mean and standard deviation of ``n_samples`` predictions with
    dropout kept on.

    The masks are drawn from ``keras.random.SeedGenerator(seed)``: the same seed gives the same
    samples; the model's own training seed state is not touched. The moments are accumulated
    (Welford, float64), so memory stays that of two predictions.

    Args:
      model: a :class:`ColumnNet` (with ``dropout`` 0 the std is exactly 0).
      ppv: ``(B, Nx, Ny, Nv, C)`` raw PPV cubes, as the model takes them.
      n_samples: number of stochastic forward passes.
      seed: integer seed of the dropout masks.
    Returns:
      (mean, std): ``(B, Nx, Ny, Nz, 2)`` float32 arrays in log10(n / n_peak) and km/s; std
      is the population standard deviation over the samples.
    """
    if not isinstance(model, ColumnNet):
        raise ValueError(f"model: expected a ColumnNet, got {type(model).__name__}")
    n_samples = _positive_int("n_samples", n_samples)
    generator = keras.random.SeedGenerator(int(seed))
    mean = m2 = 0.0
    for i in range(1, n_samples + 1):
        sample = ops.convert_to_numpy(model(ppv, dropout_seed=generator)).astype(np.float64)
        delta = sample - mean
        mean = mean + delta / i
        m2 = m2 + delta * (sample - mean)
    return mean.astype(np.float32), np.sqrt(m2 / n_samples).astype(np.float32)
