"""CNN classifier and U-net of cosmic-ray transport from turbulent gas images (Bustard & Wu 2024).

Both are Keras functional models of standard layers (they save to ``.keras``, the compiled
U-net's loss being the registered :class:`SSIMMSELoss`, and run on every Keras backend), taking
channels-last tiles ``(B, tile, tile, C)`` of histogram-equalised maps in [0, 1]; ``compile()``
gives each the paper's training:

- :class:`TurbulenceClassifier` (``turbulence_classifier``): density tile -> logits of the
  transport class (0 MHD, 1 CR advection, 2 CR diffusion, 3 CR diffusion 100 kappa, 4 CR
  streaming); cross-entropy from logits, AdamW (lr 1e-3, weight decay 1e-4), batch 64.
- :class:`TurbulenceUNet` (``turbulence_unet``): density tile -> magnetic (or CR) energy
  density tile; loss MSE + alpha (1 - SSIM) (:class:`SSIMMSELoss`), AdamW (lr 1e-2, weight
  decay 1e-2), batch 32.

Layers follow PyTorch's conventions where they differ from Keras' defaults: convolutions keep
their biases, kernels start from PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (biases from
zero), batch norm uses momentum 0.1 there (0.9 here) and epsilon 1e-5, the stride-2
convolutions pad one pixel on every side (Keras' 'same' would pad only after), and AdamW's
epsilon is 1e-8. Its decoupled weight decay, w <- w - lr * weight_decay * w, applies to every
variable, as PyTorch's AdamW over ``model.parameters()`` does.

The tiles are preprocessed per cube before the network (log10, min-max over the cube, optional
phases only, tiles, histogram equalisation: :mod:`tfastro.turbulence.pipeline`). Each model
records the settings it was trained with in its first layer (:class:`TilePreprocessing`, which
passes the tiles unchanged), so a saved model applies to a raw cube on its own through
:func:`apply_to_cube`.
"""
import keras
import numpy as np
from keras import ops

from tfastro.core.models import OwnCompile
from tfastro.fields.image_metrics import ssim2d_tensor

__all__ = ["TurbulenceClassifier", "TurbulenceUNet", "turbulence_classifier", "turbulence_unet",
           "TilePreprocessing", "apply_to_cube",
           "SSIMMSELoss", "ssim_mse_loss", "adamw", "compile_classifier", "compile_unet",
           "early_stopping", "SSIM_ALPHAS", "DEFAULT_SSIM_ALPHA", "CLASSIFIER_BATCH_SIZE",
           "UNET_BATCH_SIZE"]


#: Weights of the SSIM term tried in the paper; 0.02, the middle one, is the default.
SSIM_ALPHAS = (0.001, 0.02, 0.1)


DEFAULT_SSIM_ALPHA = 0.02


#: Batch sizes of the paper's classifier and U-net trainings.
CLASSIFIER_BATCH_SIZE = 64


UNET_BATCH_SIZE = 32


#: AdamW's learning rates and weight decays in the paper's classifier and U-net trainings.
CLASSIFIER_LR, CLASSIFIER_WEIGHT_DECAY = 1e-3, 1e-4


UNET_LR, UNET_WEIGHT_DECAY = 1e-2, 1e-2


#: The classifier's convolutions leave a 4 x 4 feature map for an average pool.
_POOLED_SIDE = 4


def _torch_init():
    """PyTorch's default kernel initialiser, U(-b, b) with b = 1 / sqrt(fan_in)."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _batch_norm(name):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _check_positive_int(name, value):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_widths(name, widths):
    widths = tuple(widths)
    if not widths:
        raise ValueError(f"{name} must name at least one width, got {widths!r}")
    return tuple(_check_positive_int(name, w) for w in widths)


@keras.saving.register_keras_serializable(package="tfastro")
class TilePreprocessing(keras.layers.Layer):
    """The preprocessing a turbulence model's input tiles went through, recorded in the model
    (the tiles pass unchanged): what :func:`apply_to_cube` repeats on a raw cube.

    Args:
      field: the field (FITS extension) the tiles were cut from, e.g. "density".
      flattened_power: phases only of every slice (:func:`pipeline.flatten_power`).
      equalised: tiles histogram-equalised to (0, 1] (the classifier's); False: log10 min-max
        over the cube / 255, in [0, 1] (the U-net's).
      class_names: the classifier's classes in logit order (None for the U-net).
      target_field: the field the U-net predicts, in the same scaling (None for the classifier).
    """

    def __init__(self, field="density", flattened_power=False, equalised=True, class_names=None,
                 target_field=None, **kwargs):
        super().__init__(**kwargs)
        self.field, self.target_field = field, target_field
        self.flattened_power, self.equalised = bool(flattened_power), bool(equalised)
        self.class_names = None if class_names is None else [str(c) for c in class_names]

    def call(self, tiles):
        return tiles

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "field": self.field,
                "flattened_power": self.flattened_power, "equalised": self.equalised,
                "class_names": self.class_names, "target_field": self.target_field}


@keras.saving.register_keras_serializable(package="tfastro")
class TurbulenceClassifier(OwnCompile, keras.Model):
    """Strided-convolution classifier: tile -> class logits (a functional model).

    ``len(channels)`` blocks of [zero-pad 1 -> Conv2D 3x3 stride 2 (valid) -> batch norm ->
    SiLU] halve the side each (128 -> 64 -> 32 -> 16 -> 8 for four blocks); an average pool
    (PyTorch's adaptive pool, the side dividing exactly) brings it to 4 x 4; then dropout,
    flatten and a dense layer of ``n_classes`` logits. With the defaults at tile 128 it has
    29,749 trainable parameters (and 240 batch-norm statistics).

    Args:
      tile: side of the input tiles in pixels; a multiple of 4 * 2^len(channels) (64 for four
        blocks), so that the pool is exact.
      n_classes: number of classes (logits).
      channels: output channels of the strided convolutions.
      dropout: dropout rate before the dense layer.
      in_channels: channels of the input tiles (1: density).
      field, flattened_power, class_names: the preprocessing of the training tiles and the
        classes, recorded in the model (:class:`TilePreprocessing`).

    Call: ``(B, tile, tile, in_channels)`` tiles -> ``(B, n_classes)`` float32 logits.
    ``compile()`` trains as the paper did by default: AdamW (lr 1e-3, weight decay 1e-4),
    cross-entropy from the logits of integer labels ``(B,)``, accuracy.
    """

    def __init__(self, tile=128, n_classes=5, channels=(8, 16, 32, 64), dropout=0.25,
                 in_channels=1, field="density", flattened_power=False, class_names=None,
                 name="turbulence_classifier", **kwargs):
        channels = _check_widths("channels", channels)
        tile = _check_positive_int("tile", tile)
        n_classes = _check_positive_int("n_classes", n_classes)
        in_channels = _check_positive_int("in_channels", in_channels)
        multiple = _POOLED_SIDE * 2 ** len(channels)
        if tile % multiple:
            raise ValueError(f"tile={tile}: expected a multiple of {multiple} pixels, so that "
                             f"{len(channels)} stride-2 convolutions and an exact average pool "
                             f"leave a {_POOLED_SIDE} x {_POOLED_SIDE} map")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if class_names is not None and len(class_names) != n_classes:
            raise ValueError(f"class_names={class_names!r}: expected {n_classes} names")
        images = keras.Input((tile, tile, in_channels), name="images")
        preprocessing = TilePreprocessing(field, flattened_power, equalised=True,
                                          class_names=class_names, name="preprocessing")
        x = preprocessing(images)
        for i, width in enumerate(channels, start=1):
            x = keras.layers.ZeroPadding2D(1, name=f"pad{i}")(x)
            x = keras.layers.Conv2D(width, 3, strides=2, padding="valid",
                                    kernel_initializer=_torch_init(), name=f"conv{i}")(x)
            x = _batch_norm(f"bn{i}")(x)
            x = keras.layers.Activation("silu", name=f"silu{i}")(x)
        x = keras.layers.AveragePooling2D(tile // multiple, name="pool")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        logits = keras.layers.Dense(n_classes, kernel_initializer=_torch_init(), dtype="float32",
                                    name="logits")(x)
        super().__init__(images, logits, name=name, **kwargs)
        self.tile, self.n_classes, self.channels = tile, n_classes, channels
        self.dropout, self.in_channels = float(dropout), in_channels
        self.field, self.flattened_power = field, preprocessing.flattened_power
        self.class_names = preprocessing.class_names

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """``keras.Model.compile``; "auto" is the paper's choice (see the class doc)."""
        super().compile(
            optimizer=adamw(CLASSIFIER_LR, CLASSIFIER_WEIGHT_DECAY) if optimizer == "auto"
            else optimizer,
            loss=_cross_entropy() if loss == "auto" else loss,
            metrics=_accuracy() if metrics == "auto" else metrics, **kwargs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "tile": self.tile,
                "n_classes": self.n_classes, "channels": list(self.channels),
                "dropout": self.dropout, "in_channels": self.in_channels, "field": self.field,
                "flattened_power": self.flattened_power, "class_names": self.class_names}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _conv_block(x, width, name):
    """2 x [Conv2D 3x3 'same' -> batch norm -> ReLU] with ``width`` channels."""
    for j in (1, 2):
        x = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer=_torch_init(),
                                name=f"{name}_conv{j}")(x)
        x = _batch_norm(f"{name}_bn{j}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{j}")(x)
    return x


@keras.saving.register_keras_serializable(package="tfastro")
class TurbulenceUNet(OwnCompile, keras.Model):
    """U-net mapping one field's tile to another's (density -> magnetic or CR energy density).

    Encoder level l: 2 x [conv 3x3 'same' -> batch norm -> ReLU] with ``filters[l]`` channels,
    max-pool 2 between levels (the last level is the bottleneck, at tile / 2^(L-1)). Decoder,
    back up each level: transposed conv 2x2 stride 2 to ``filters[l]`` channels, concatenate
    the encoder's level-l output, 2 x [conv -> batch norm -> ReLU]. A final 1x1 convolution
    with no activation gives ``out_channels`` maps.

    Args:
      tile: side of the tiles in pixels; a multiple of 2^(len(filters) - 1) (8 for 4 levels).
      filters: channels of each level, finest first.
      out_channels, in_channels: channels of the predicted and of the input maps.
      field, target_field: the input and predicted fields, recorded in the model
        (:class:`TilePreprocessing`).

    Call: ``(B, tile, tile, in_channels)`` -> ``(B, tile, tile, out_channels)`` float32, in the
    normalisation of the training targets. ``compile()`` trains as the paper did by default:
    AdamW (lr 1e-2, weight decay 1e-2), MSE + 0.02 (1 - SSIM) (:class:`SSIMMSELoss`), an MSE
    metric.
    """

    def __init__(self, tile=128, filters=(8, 16, 32, 64), out_channels=1, in_channels=1,
                 field="density", target_field="magnetic_energy_density",
                 name="turbulence_unet", **kwargs):
        filters = _check_widths("filters", filters)
        tile = _check_positive_int("tile", tile)
        out_channels = _check_positive_int("out_channels", out_channels)
        in_channels = _check_positive_int("in_channels", in_channels)
        multiple = 2 ** (len(filters) - 1)
        if tile % multiple:
            raise ValueError(f"tile={tile}: expected a multiple of {multiple} pixels, so that "
                             f"{len(filters) - 1} max-pools of 2 divide it exactly")
        images = keras.Input((tile, tile, in_channels), name="images")
        skips = []
        x = TilePreprocessing(field, equalised=False, target_field=target_field,
                              name="preprocessing")(images)
        for level, width in enumerate(filters[:-1], start=1):
            x = _conv_block(x, width, f"down{level}")
            skips.append(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
        x = _conv_block(x, filters[-1], "bottleneck")
        for level in range(len(filters) - 1, 0, -1):
            width = filters[level - 1]
            x = keras.layers.Conv2DTranspose(width, 2, strides=2, kernel_initializer=_torch_init(),
                                             name=f"up{level}_transpose")(x)
            x = keras.layers.Concatenate(name=f"up{level}_concat")([x, skips[level - 1]])
            x = _conv_block(x, width, f"up{level}")
        maps = keras.layers.Conv2D(out_channels, 1, kernel_initializer=_torch_init(),
                                   dtype="float32", name="maps")(x)
        super().__init__(images, maps, name=name, **kwargs)
        self.tile, self.filters = tile, filters
        self.out_channels, self.in_channels = out_channels, in_channels
        self.field, self.target_field = field, target_field

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """``keras.Model.compile``; "auto" is the paper's choice (see the class doc)."""
        super().compile(
            optimizer=adamw(UNET_LR, UNET_WEIGHT_DECAY) if optimizer == "auto" else optimizer,
            loss=ssim_mse_loss() if loss == "auto" else loss,
            metrics=_mse_metric() if metrics == "auto" else metrics, **kwargs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "tile": self.tile,
                "filters": list(self.filters), "out_channels": self.out_channels,
                "in_channels": self.in_channels, "field": self.field,
                "target_field": self.target_field}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


#: The classifier and the U-net by the names the task, notebooks and benchmarks use.
turbulence_classifier = TurbulenceClassifier
turbulence_unet = TurbulenceUNet


@keras.saving.register_keras_serializable(package="tfastro")
class SSIMMSELoss(keras.losses.Loss):
    """Per-sample MSE + alpha (1 - SSIM) of (B, X, Y, C) maps, averaged over the batch.

    The MSE is the mean over pixels and channels; the SSIM that of
    :func:`tfastro.fields.image_metrics.ssim2d_tensor` (11-px Gaussian window, sigma 1.5,
    ``data_range`` 1 for maps in [0, 1]), computed in float32 with gradients. alpha = 0 is the
    plain MSE.
    """

    def __init__(self, alpha=DEFAULT_SSIM_ALPHA, data_range=1.0, name="ssim_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if not (np.isfinite(data_range) and data_range > 0):
            raise ValueError(f"data_range must be a positive number, got {data_range!r}")
        self.alpha, self.data_range = float(alpha), float(data_range)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        mse = ops.mean(ops.square(y_pred - y_true), axis=(1, 2, 3))
        ssim = ssim2d_tensor(y_pred, y_true, data_range=self.data_range)
        return mse + self.alpha * (1.0 - ops.cast(ssim, mse.dtype))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "data_range": self.data_range}


def ssim_mse_loss(alpha=DEFAULT_SSIM_ALPHA, data_range=1.0):
    """The U-net loss MSE + alpha (1 - SSIM) as a :class:`SSIMMSELoss` (see there)."""
    return SSIMMSELoss(alpha=alpha, data_range=data_range)


def adamw(lr, weight_decay):
    """AdamW with PyTorch's defaults (betas 0.9, 0.999, epsilon 1e-8) and decoupled decay."""
    return keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay, beta_1=0.9,
                                  beta_2=0.999, epsilon=1e-8)


def _cross_entropy():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _accuracy():
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def _mse_metric():
    return [keras.metrics.MeanSquaredError(name="mse")]


def compile_classifier(model, lr=CLASSIFIER_LR, weight_decay=CLASSIFIER_WEIGHT_DECAY,
                       **compile_kwargs):
    """Compile ``model`` (logits) with cross-entropy from logits, AdamW and accuracy; returns it.

    Labels are integer class indices (B,). ``compile_kwargs`` go to ``model.compile`` (e.g.
    ``jit_compile``, ``steps_per_execution``). Also compiles classifiers saved before they were
    a :class:`TurbulenceClassifier`.
    """
    model.compile(optimizer=adamw(lr, weight_decay), loss=_cross_entropy(), metrics=_accuracy(),
                  **compile_kwargs)
    return model


def compile_unet(model, lr=UNET_LR, weight_decay=UNET_WEIGHT_DECAY, alpha=DEFAULT_SSIM_ALPHA,
                 **compile_kwargs):
    """Compile ``model`` with MSE + alpha (1 - SSIM), AdamW and an MSE metric; returns it.

    ``compile_kwargs`` go to ``model.compile``.
    """
    model.compile(optimizer=adamw(lr, weight_decay), loss=ssim_mse_loss(alpha),
                  metrics=_mse_metric(), **compile_kwargs)
    return model


def apply_to_cube(model, cube, projection=1, batch_size=32):
    """A trained classifier or U-net applied to every slice of a raw cube, preprocessed with
    the settings the model recorded (:class:`TilePreprocessing`; :func:`pipeline.cube_images`).

    Args:
      model: a model of :func:`turbulence_classifier` or :func:`turbulence_unet` (e.g. from
        ``keras.saving.load_model``).
      cube: ``(N, H, W)`` raw cube of the model's ``field`` (as :func:`io.read_fits_cube` reads
        it), sliced along axis 0; H and W multiples of the model's tile.
      projection: average this many adjacent raw slices per image (training used single slices).
      batch_size: tiles per model call.
    Returns:
      classifier: float32 logits ``(N, T, n_classes)`` of the T tiles of every image, row-major;
      U-net: float32 ``(N, H, W, out_channels)`` predicted ``target_field`` maps in the scaling
      of its training targets (log10, min-max over the target cube, / 255: relative, as a new
      cube's target range is unknown).
    """
    from tfastro.turbulence.pipeline import cube_images, untile_image
    try:
        settings = model.get_layer("preprocessing")
    except ValueError:
        raise ValueError(f"model {model.name!r} records no preprocessing (saved before models "
                         "carried it): preprocess the cube with pipeline.cube_images and call "
                         "the model") from None
    tile = model.input_shape[1]
    images = cube_images(cube, tile, projection, settings.flattened_power, settings.equalised)
    predicted = np.asarray(model.predict(images.reshape((-1, tile, tile, 1)),
                                         batch_size=batch_size, verbose=0))
    if predicted.ndim == 2:  # class logits
        return predicted.reshape(images.shape[:2] + predicted.shape[-1:])
    maps = np.moveaxis(predicted.reshape(images.shape + predicted.shape[-1:]), -1, 1)
    return np.moveaxis(untile_image(maps, *np.shape(cube)[1:]), 1, -1)


def early_stopping(patience=5, min_delta=0.0):
    """Stop when the validation loss has not improved for ``patience`` epochs and restore the
    weights of the epoch with the lowest validation loss (also when the epochs run out).

    The paper does not state its patience; 5 epochs is this library's choice.
    """
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(patience),
                                         min_delta=min_delta, restore_best_weights=True)
