"""The 3D Memory-In-Memory forecaster (3D-MIM) as a keras.Model with its own train_step.

Frames are channels-last voxel cubes: a clip is (B, T, X, Y, Z, C) with values in [0, 1].
The model folds p^3 blocks into channels (``patch_size``), runs one SpatioTemporalLSTMCell3D
followed by MIM blocks (with MIM-N modules between layers) over ``total_length - 1`` steps and
returns the predictions of frames 1 .. T-1, (B, T-1, X, Y, Z, C).

Folding p x p x p blocks of voxels into channels (3D-MIM's ``reshape_patch``) and back.
"""
import contextlib
import sys

import keras
import numpy as np
from keras import ops

from tfastro.core.precision import base_optimizer
from tfastro.supernova.io import Normalisation
from tfastro.supernova.layers import MIMN3D, PEEPHOLES, MIMBlock3D, SpatioTemporalLSTMCell3D
from tfastro.supernova.optimizers import MIMAdam


def sampling_eta(iteration, start_value=1.0, changing_rate=2e-5, stop_iter=50000):
    """Probability of feeding the true frame at training iteration ``iteration`` (1-based).

    eta drops by ``changing_rate`` every iteration from ``start_value`` and is 0 from
    ``stop_iter`` on (never negative): the schedule of the original run.py.
    """
    iteration = ops.cast(iteration, "float32")
    eta = ops.maximum(start_value - changing_rate * iteration, 0.0)
    return ops.where(iteration < stop_iter, eta, 0.0)


def _hash32(x):
    """C. Wellons' lowbias32 integer hash of the uint32 tensor ``x``, elementwise."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = ops.bitwise_xor(x, ops.right_shift(x, shift))
        x = ops.multiply(x, ops.convert_to_tensor(multiplier, "uint32"))
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def sampling_draws(seed, iteration, batch, steps):
    """The scheduled-sampling draws of training iteration ``iteration``: (batch, steps)
    float32, uniform in [0, 1) in steps of 2^-24.

    Stateless, keyed on (seed, iteration) alone, so a resumed run repeats them: draw (b, j)
    is the top 24 bits of hash(b * steps + j + hash(iteration + hash(seed))) (uint32
    arithmetic, ``_hash32``), the same bits on every backend.
    """
    key = _hash32(ops.cast(iteration, "uint32")
                  + _hash32(ops.convert_to_tensor(int(seed) % 2**32, "uint32")))
    counter = ops.cast(ops.reshape(ops.arange(batch * steps), (batch, steps)), "uint32")
    return ops.cast(ops.right_shift(_hash32(counter + key), 8), "float32") * 2.0**-24


def frame_loss(true_frames, pred_frames):
    """The original loss: half the sum of squares over predicted frames, divided by the batch.

    true_frames (B, T, ...) whole clips; pred_frames (B, T-1, ...) predictions of frames 1..T-1.
    """
    diff = ops.cast(pred_frames, "float32") - ops.cast(true_frames[:, 1:], "float32")
    return 0.5 * ops.sum(ops.square(diff)) / ops.cast(ops.shape(true_frames)[0], "float32")


def check_num_hidden(num_hidden):
    """Validate ``num_hidden``: positive integers, at least two layers, all equal.

    The spatiotemporal memory m runs through every layer (f' * m), so all widths must match.
    Returns a tuple of ints; raises ValueError naming the problem.
    """
    try:
        values = tuple(int(v) for v in num_hidden)
    except (TypeError, ValueError):
        raise ValueError(f"num_hidden must be a list of positive integers, got {num_hidden!r}")
    if len(values) < 2 or min(values) < 1:
        raise ValueError(f"num_hidden must hold at least two positive integers, got {num_hidden!r}")
    if len(set(values)) != 1:
        raise ValueError(f"num_hidden must be equal in every layer (the memory m flows "
                         f"through all of them), got {num_hidden!r}")
    return values


def _compiled(function):
    """``function`` traced into one program of the backend (jax.jit or tf.function)."""
    if keras.backend.backend() == "jax":
        import jax
        return jax.jit(function)
    import tensorflow as tf
    return tf.function(function, reduce_retracing=True)


def _check_no_tf_strategy():
    """tf.distribute strategies only distribute TensorFlow variables: refuse one elsewhere."""
    tf = sys.modules.get("tensorflow")  # no strategy can be active where TF is not imported
    if keras.backend.backend() != "tensorflow" and tf is not None and tf.distribute.has_strategy():
        raise ValueError(f"MIM3D: tf.distribute strategies need the TensorFlow backend "
                         f"(KERAS_BACKEND=tensorflow), not {keras.backend.backend()}")


@keras.saving.register_keras_serializable(package="tfastro")
class MIM3D(keras.Model):
    """3D-MIM: ST-LSTM first layer, then MIM blocks fed by MIM-N difference modules.

    Args:
      num_hidden: hidden channels per layer (all equal), e.g. (64, 64, 64, 64).
      filter_size: convolution kernel size k (k^3 kernels).
      patch_size: p; X, Y, Z must be divisible by it.
      input_length, total_length: frames given as context, frames per clip.
      layer_norm: tensor layer norm after every gate convolution.
      peephole: "voxel" (per-voxel peephole weights, the original; ties the model to one
        grid) or "channel" (per-channel; forecasts on any grid size).
      remat: recompute each cell's activations in the backward pass instead of storing them
        (memory proportional to the states only, about a third more compute).
      reverse_input, reverse_img: also train on time-reversed / z-flipped clips.
      scheduled_sampling, sampling_start_value, sampling_changing_rate, sampling_stop_iter:
        the feedback schedule (see ``sampling_eta``).
      seed: seed of the scheduled-sampling draws (with the iteration number).
      normalisation: how the frames it learns from map the density to [0, 1], a dict of
        :meth:`tfastro.supernova.io.Normalisation.model_config` (default: the original's
        max-scaling); kept in the ``.keras`` file and used by ``forecast_density``.

    ``call(frames, sampling_mask=None)``: frames (B, T, X, Y, Z, C) with T >= input_length
    (>= total_length when a mask is given); sampling_mask (B, total_length-input_length-1),
    1 where the true frame is fed back instead of the prediction; None feeds back
    predictions only (forecasting). Returns (B, total_length-1, X, Y, Z, C) float32, also
    under a mixed precision policy. Clips of another layout (no time axis, channels first,
    another grid or channel count than the model was built for, too few frames) raise a
    one-line ValueError naming the expected shape.

    Training: ``fit`` takes clips of total_length frames and no targets. Each iteration
    advances the ``iteration`` counter and ``sampling_eta``, draws the feedback mask
    (``sampling_draws`` < eta) and takes one optimizer update on each view of the batch:
    the clip, then with ``reverse_input`` the time-reversed clip, then with ``reverse_img``
    the z-flipped clip, each from the weights the previous one left. The loss is the
    original's (``frame_loss``): MIM3D trains with it alone, and ``compile`` refuses any
    other ``loss``. Logs: ``loss`` (the views' mean loss, averaged over the epoch),
    ``iteration_loss`` and ``sampling_eta`` (of the iteration) and the compiled ``metrics``,
    which compare the true frames 1..T-1 with the predictions (in training, those of the
    clip under scheduled sampling). ``evaluate`` and ``fit(validation_data=...)`` score the
    forecast without feedback of true frames (``call`` without mask) with the same loss and
    metrics. ``forecast(context, n_frames)`` forecasts with the optimizer's weight average.

    Backends: TensorFlow and JAX (Keras' stateless ``train_step(state, data)`` there); the
    time loop is a bounded while loop on TensorFlow (XLA differentiates it) and a scan on
    JAX. Distributed training with tf.distribute strategies is TensorFlow-only: building or
    training under one on another backend raises ValueError.
    """

    def __init__(self, num_hidden=(64, 64, 64, 64), filter_size=5, patch_size=1,
                 input_length=10, total_length=20, layer_norm=True, peephole="voxel",
                 remat=False, reverse_input=True, reverse_img=False, scheduled_sampling=True,
                 sampling_start_value=1.0, sampling_changing_rate=0.00002,
                 sampling_stop_iter=50000, seed=None, normalisation=None, **kwargs):
        super().__init__(**kwargs)
        self.normalisation = Normalisation.from_json(
            normalisation or {}, "MIM3D normalisation").model_config()
        self.num_hidden = check_num_hidden(num_hidden)
        if not 0 < int(input_length) < int(total_length):
            raise ValueError(f"need 0 < input_length < total_length, got input_length="
                             f"{input_length}, total_length={total_length}")
        if peephole not in PEEPHOLES:
            raise ValueError(f"peephole must be one of {PEEPHOLES}, got {peephole!r}")
        self.filter_size = int(filter_size)
        self.patch_size = int(patch_size)
        self.input_length = int(input_length)
        self.total_length = int(total_length)
        self.layer_norm = bool(layer_norm)
        self.peephole = peephole
        self.remat = bool(remat)
        self.reverse_input = bool(reverse_input)
        self.reverse_img = bool(reverse_img)
        self.scheduled_sampling = bool(scheduled_sampling)
        self.sampling_start_value = float(sampling_start_value)
        self.sampling_changing_rate = float(sampling_changing_rate)
        self.sampling_stop_iter = int(sampling_stop_iter)
        self.seed = seed
        n, k, ln, dt = self.num_hidden, self.filter_size, self.layer_norm, self.dtype_policy
        self.stlstm = SpatioTemporalLSTMCell3D(n[0], k, ln, dtype=dt, name="stlstm_1")
        self.blocks = [MIMBlock3D(n[i], k, ln, peephole=peephole, dtype=dt, name=f"stlstm_{i + 1}")
                       for i in range(1, len(n))]
        self.mim_n = [MIMN3D(n[i], k, ln, peephole=peephole, dtype=dt, name=f"stlstm_diff{i}")
                      for i in range(1, len(n))]
        self._frame_shape = None  # (X, Y, Z, C) of the clips the model is built for
        self._forecasters = {}  # compiled forecasts by number of steps

    def build(self, input_shape):
        _check_no_tf_strategy()
        self._check_clips(input_shape, self.input_length)
        p = self.patch_size
        b, _, x, y, z, c = input_shape
        if any(d is None for d in (x, y, z, c)):
            raise ValueError(f"MIM3D is built for a known grid and channel count, got clips of "
                             f"shape {tuple(input_shape)}")
        self._frame_shape = (x, y, z, c)
        frame = (b, x // p, y // p, z // p, c * p ** 3)
        state = frame[:-1] + (self.num_hidden[0],)
        self.stlstm.build(frame)
        for block, mim_n in zip(self.blocks, self.mim_n):
            block.build(state)
            mim_n.build(state)
        self.back_to_pixel = keras.layers.Conv3D(frame[-1], 1, padding="same",
                                                 dtype=self.dtype_policy, name="back_to_pixel")
        self.back_to_pixel.build(state)
        self.iteration = self.add_weight(name="iteration", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False,
                                         aggregation="only_first_replica")
        self.sampling_eta = self.add_weight(name="sampling_eta", shape=(), dtype="float32",
                                            initializer=keras.initializers.Constant(
                                                self.sampling_start_value if self.scheduled_sampling else 0.0),
                                            trainable=False, aggregation="only_first_replica")

    def _check_clips(self, shape, frames, exact=False, what="clips"):
        """Raise a one-line ValueError unless ``shape`` is that of clips this model takes:
        (batch, T, X, Y, Z, C) with T >= ``frames`` (T == ``frames`` if ``exact``), X, Y, Z
        divisible by patch_size and, once built, its channel count and (per-voxel
        peepholes) its grid. Unknown (None) sizes pass."""
        shape = tuple(shape)
        built = self._frame_shape
        grid = built[:3] if built and self.peephole == "voxel" else ("X", "Y", "Z")
        wanted = (frames,) + tuple(grid) + ((built[3],) if built else ("C",))

        def fits(size, want):
            return size is None or isinstance(want, str) or size == want

        ok = (len(shape) == 6 and all(map(fits, shape[2:], wanted[1:]))
              and (shape[1] is None or shape[1] == frames or (not exact and shape[1] > frames))
              and all(d is None or d % self.patch_size == 0 for d in shape[2:5]))
        if ok:
            return
        time = f"time{'=' if exact else '>='}{frames}"
        expected = ", ".join(["batch", time] + [str(w) for w in wanted[1:]])
        notes = ["channels last"]
        if self.patch_size > 1:
            notes.append(f"X, Y, Z divisible by patch_size {self.patch_size}")
        if built and self.peephole == "voxel" and len(shape) == 6 and shape[2:5] != built[:3]:
            notes.append("per-voxel peephole weights fix the grid; peephole='channel' "
                         "forecasts on any grid")
        raise ValueError(f"MIM3D {what}: expected shape ({expected}) ({'; '.join(notes)}), "
                         f"got {shape}")

    def _cell(self, layer, *args, training=False, weights=None, call=None):
        """Run ``call(*args)`` (default: the cell ``layer``), rematerialised in the backward
        pass when ``remat`` and training.

        ``weights`` ({id(variable): tensor}, the step's weight values, see ``_unroll``)
        enter the rematerialised function as arguments, so their gradients flow through it.
        """
        call = layer if call is None else call
        if not (self.remat and training):
            return call(*args)
        present = [a is not None for a in args]
        states = [a for a in args if a is not None]
        variables = layer.trainable_variables if weights is not None else []

        def run(*tensors):
            it = iter(tensors[:len(states)])
            mapping = list(zip(variables, tensors[len(states):]))
            with keras.StatelessScope(state_mapping=mapping) if mapping else contextlib.nullcontext():
                return call(*[next(it) if p else None for p in present])

        return keras.remat(run)(*states, *[weights[id(v)] for v in variables])

    def call(self, frames, sampling_mask=None, training=False):
        self._check_clips(frames.shape,
                          self.input_length if sampling_mask is None else self.total_length)
        return self._unroll(frames, sampling_mask, training)

    def _unroll(self, frames, sampling_mask=None, training=False, weights=None, steps=None):
        """The recurrence over ``steps`` time steps (default total_length - 1); returns the
        predictions of frames 1..steps, float32. See the class docstring for shapes.

        Steps 0 and 1 (where states are still zeros and convolutions of them are skipped) run
        as Python code; the remaining steps are one symbolic loop (a while loop; on JAX a scan),
        so the traced program holds one step, not ``total_length - 1`` copies of it. In the
        backward pass the loop keeps what each step's gradient needs (with ``remat``: the
        cells' inputs only) and sums the weight gradients step by step.

        ``weights``: values of ``trainable_variables`` used instead of the variables
        (training: their gradients are taken with respect to these tensors).
        """
        frames = reshape_patch(ops.cast(frames, self.compute_dtype), self.patch_size)
        steps = self.total_length - 1 if steps is None else steps
        variables = self.trainable_variables if weights is not None else []
        step_weights = {id(v): w for v, w in zip(variables, weights)} if weights is not None else None
        with (keras.StatelessScope(state_mapping=list(zip(variables, weights)))
              if weights is not None else contextlib.nullcontext()):
            state = [None] * (5 * len(self.num_hidden) + 2)
            predictions = []
            for t in range(min(2, steps)):
                state = self._step(t, state, frames, sampling_mask, training, step_weights)
                predictions.append(state[-1])
            predictions = ops.stack(predictions, axis=1)
            if steps > 2:
                present = [x is not None for x in state]

                def body(t, carry):
                    it = iter(carry[:-1])
                    new = self._step(t, [next(it) if p else None for p in present], frames,
                                     sampling_mask, training, step_weights)
                    at_t = ops.reshape(ops.one_hot(t - 2, steps - 2, dtype=self.compute_dtype),
                                       (1, steps - 2, 1, 1, 1, 1))
                    return [x for x in new if x is not None] + [carry[-1] + at_t * new[-1][:, None]]

                later = ops.zeros(ops.shape(predictions)[:1] + (steps - 2,)
                                  + tuple(ops.shape(predictions)[2:]), self.compute_dtype)
                carry = [x for x in state if x is not None] + [later]
                if keras.backend.backend() == "jax":
                    # static bounds: a lax.scan, which JAX can differentiate (a while loop not)
                    carry = ops.fori_loop(2, steps, body, carry)
                else:
                    # a bounded while loop: XLA (--jit_compile) needs the trip count to
                    # differentiate it, and TensorFlow's fori_loop does not give one
                    _, carry = ops.while_loop(
                        lambda t, carry: t < steps, lambda t, carry: (t + 1, body(t, carry)),
                        (2, carry), maximum_iterations=steps - 2)
                predictions = ops.concatenate([predictions, carry[-1]], axis=1)
        return ops.cast(reshape_patch_back(predictions, self.patch_size), "float32")

    def _input_frame(self, t, frames, sampling_mask, x_gen):
        """x_t: true frame t while t < input_length, then the last prediction (or, where
        ``sampling_mask`` is 1, the true frame). ``t`` is an int or a scalar tensor."""
        true = ops.take(frames, ops.minimum(t, ops.shape(frames)[1] - 1), axis=1)
        if x_gen is None:
            return true
        fed = x_gen
        if sampling_mask is not None and self.input_length < self.total_length - 1:
            w = ops.take(sampling_mask, ops.maximum(t - self.input_length, 0), axis=1)
            w = ops.cast(ops.reshape(w, (-1, 1, 1, 1, 1)), self.compute_dtype)
            fed = w * true + (1 - w) * x_gen
        return ops.where(t < self.input_length, true, fed)

    def _step(self, t, state, frames, sampling_mask, training, weights):
        """Time step t (int or scalar tensor) from ``state``; returns the new state.

        state: flat list [h_1..h_L, c_1..c_L, s_1..s_L, diffh_1..diffh_L, diffc_1..diffc_L,
        m, x_gen] of (B, X/p, Y/p, Z/p, C') tensors, None for zeros (before the first step;
        s, diffh and diffc of layer 1 stay None). x_gen is the step's prediction.
        """
        layers = len(self.num_hidden)
        h, c, s, diff_h, diff_c = (list(state[i * layers:(i + 1) * layers]) for i in range(5))
        m, x_gen = state[-2:]
        x_t = self._input_frame(t, frames, sampling_mask, x_gen)
        h_before = h[0]
        h[0], c[0], m = self._cell(self.stlstm, x_t, h[0], c[0], m,
                                   training=training, weights=weights)
        for i in range(1, layers):
            if h_before is not None:  # at t = 0 the original's MIM-N output is discarded: skip it
                mim_n = self.mim_n[i - 1]
                if i == 1:  # fed h_{1,t} - h_{1,t-1}, formed inside so remat keeps no copy of it
                    inputs = (h[0], h_before)
                    call = lambda now, before, dh, dc, cell=mim_n: cell(now - before, dh, dc)  # noqa: E731
                else:  # fed the MIM-N output of the layer below
                    inputs, call = (diff_h[i - 1],), None
                diff_h[i], diff_c[i] = self._cell(mim_n, *inputs, diff_h[i], diff_c[i],
                                                  training=training, weights=weights, call=call)
            h[i], c[i], m, s[i] = self._cell(self.blocks[i - 1], h[i - 1], diff_h[i], h[i], c[i],
                                             m, s[i], training=training, weights=weights)
        x_gen = self.back_to_pixel(h[-1])
        return h + c + s + diff_h + diff_c + [m, x_gen]

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Keras' ``compile`` without a ``loss``: MIM3D trains with its own (``frame_loss``).

        ``metrics`` compare the true frames 1..T-1 of the clips with the predictions.
        """
        if loss is not None:
            raise ValueError(f"MIM3D trains with its own loss (frame_loss: half the sum of "
                             f"squares over the predicted frames, divided by the batch); "
                             f"compile(loss={loss!r}) is refused: leave loss out")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras' own skips a model whose compile() is overridden: compile as it would
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The compiled metrics of clips ``x`` (their true frames 1..T-1) and predictions
        ``y_pred``; ``y`` is not used (MIM3D takes no targets)."""
        return super().compute_metrics(x, x[:, 1:self.total_length], y_pred, sample_weight)

    # --- Keras' loops: the shape of the data is checked before a step is traced, as
    # TensorFlow traces later steps with the sizes that changed relaxed to None, where the
    # check in ``call`` cannot see them

    def fit(self, x=None, *args, **kwargs):
        self._check_data(x, self.total_length, exact=True)
        return super().fit(x, *args, **kwargs)

    def train_on_batch(self, x, *args, **kwargs):
        self._check_data(x, self.total_length, exact=True)
        return super().train_on_batch(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._check_data(x, self.total_length, exact=True)
        return super().evaluate(x, *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        self._check_data(x, self.total_length, exact=True)
        return super().test_on_batch(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_data(x, self.input_length)
        return super().predict(x, *args, **kwargs)

    def predict_on_batch(self, x):
        self._check_data(x, self.input_length)
        return super().predict_on_batch(x)

    def _check_data(self, x, frames, exact=False):
        """``_check_clips`` on clips ``x``: an array, a tensor or a tf.data.Dataset (its
        first component); other data (generators) is checked as steps are traced."""
        spec = getattr(x, "element_spec", None)
        clips = keras.tree.flatten(spec)[0] if spec is not None else x
        if hasattr(clips, "shape"):
            self._check_clips(clips.shape, frames, exact)

    # --- training and evaluation ----------------------------------------------------------

    def train_step(self, *args):
        """One training iteration (see the class docstring). TensorFlow: ``train_step(data)``
        returns the logs; JAX: ``train_step(state, data)`` returns (logs, new state)."""
        if keras.backend.backend() == "jax":
            state, data = args
            return self._run_stateless(self._train, data, state, (
                self.trainable_variables, self.non_trainable_variables,
                self.optimizer.variables, self.metrics_variables))
        return self._train(*args)

    def test_step(self, *args):
        """Loss and metrics of the forecast without feedback of true frames. TensorFlow:
        ``test_step(data)`` returns the logs; JAX: ``test_step(state, data)`` returns (logs,
        new state)."""
        if keras.backend.backend() == "jax":
            state, data = args
            return self._run_stateless(self._test, data, state, (
                self.trainable_variables, self.non_trainable_variables, self.metrics_variables))
        return self._test(*args)

    def _run_stateless(self, step, data, state, groups):
        """JAX: ``step(data)`` with the variable lists ``groups`` holding the values in
        ``state`` and its updates going there; returns (logs, new state)."""
        _check_no_tf_strategy()
        mapping = [pair for variables, values in zip(groups, state)
                   for pair in zip(variables, values)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = step(data)
        return logs, tuple([scope.get_current_value(v) for v in variables] for variables in groups)

    def _clips_of(self, data):
        """The clips (B, total_length, X, Y, Z, C) of a training or validation batch."""
        clips, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if targets is not None or sample_weight is not None:
            raise ValueError("MIM3D learns from clips alone (the targets are their frames "
                             "1..T-1): give fit and evaluate clips without targets or weights")
        self._check_clips(clips.shape, self.total_length, exact=True)
        return clips

    def _train(self, data):
        frames = self._clips_of(data)
        if not self.built:  # fit() on a fresh model: the counters below are made in build()
            self.build(frames.shape)
        mask, eta = self._advance_schedule(ops.shape(frames)[0])
        views = [frames]
        if self.reverse_input:
            views.append(ops.flip(frames, axis=1))
        if self.reverse_img:
            views.append(ops.flip(frames, axis=4))
        loss, predictions = self._update_views(views, mask)
        logs = self._update_metrics(frames, loss, predictions)
        return {**logs, "iteration_loss": loss, "sampling_eta": eta}

    def _test(self, data):
        frames = self._clips_of(data)
        predictions = self(frames)
        return self._update_metrics(frames, frame_loss(frames, predictions), predictions)

    def _update_metrics(self, frames, loss, predictions):
        """Add a batch to the loss tracker (batches weighted by their size) and the compiled
        metrics; returns their running results."""
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(frames)[0])
        return self.compute_metrics(frames, None, predictions)

    def _advance_schedule(self, batch):
        """Count one more iteration and set its ``sampling_eta``; returns its feedback mask
        (batch, total_length - input_length - 1), 1 where the true frame is fed back, and eta."""
        iteration = self.iteration.value + 1
        self.iteration.assign(iteration)
        if self.scheduled_sampling:
            eta = sampling_eta(iteration, self.sampling_start_value, self.sampling_changing_rate,
                               self.sampling_stop_iter)
        else:
            eta = ops.zeros((), "float32")
        self.sampling_eta.assign(eta)
        draws = sampling_draws(self.seed or 0, iteration, batch,
                               self.total_length - self.input_length - 1)
        return ops.cast(draws < eta, "float32"), eta

    def _update_views(self, views, mask):
        """One optimizer update on each view in turn, each from the weights the previous one
        left; returns the views' mean loss and the first view's predictions."""
        if keras.backend.backend() == "jax":
            return self._jax_update_views(views, mask)
        import tensorflow as tf
        if len(views) == 1 or tf.distribute.has_strategy():
            # under a tf.distribute strategy the update's gradient all-reduce may not sit
            # inside a loop, so there the views are unrolled
            results = [self._tf_update(view, mask) for view in views]
            return sum(loss for loss, _ in results) / len(views), results[0][1]
        # One traced view update run len(views) times: the graph (about 0.6 GB of memory for
        # run.sh's model) is not duplicated.
        stacked = ops.stack(views)

        def body(i, carry):
            loss, predictions = self._tf_update(stacked[i], mask)
            return carry[0] + loss, ops.where(i == 0, predictions, carry[1])

        total, first = ops.fori_loop(0, len(views), body, (
            ops.zeros((), "float32"), ops.zeros_like(views[0][:, 1:], dtype="float32")))
        return total / len(views), first

    def _tf_update(self, frames, mask):
        """TensorFlow: one optimizer step on one view; returns its (unscaled) loss and the
        predictions."""
        import tensorflow as tf
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            weights = [tf.identity(v.value) for v in self.trainable_variables]  # float32 reads
            predictions = self._unroll(frames, mask, training=True, weights=weights)
            loss = frame_loss(frames, predictions)
            scaled = self.optimizer.scale_loss(loss / replicas)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return loss, predictions

    def _jax_update_views(self, views, mask):
        """JAX: the views' updates as one loop whose carry holds the weights and the
        optimizer state (lax.fori_loop bodies are functions, not variable updates)."""
        state = self.trainable_variables + self.optimizer.variables
        stacked = ops.stack(views)

        def body(i, carry):
            values, total, first = carry
            with keras.StatelessScope(state_mapping=list(zip(state, values))) as scope:
                loss, predictions = self._jax_update(stacked[i], mask)
            return ([scope.get_current_value(v) for v in state], total + loss,
                    ops.where(i == 0, predictions, first))

        values, total, first = ops.fori_loop(0, len(views), body, (
            [v.value for v in state], ops.zeros((), "float32"),
            ops.zeros_like(views[0][:, 1:], dtype="float32")))
        for variable, value in zip(state, values):
            variable.assign(value)
        return total / len(views), first

    def _jax_update(self, frames, mask):
        """JAX: one optimizer step on one view (inside a StatelessScope); returns its
        (unscaled) loss and the predictions."""
        import jax

        def scaled_loss(weights):
            predictions = self._unroll(frames, mask, training=True, weights=weights)
            loss = frame_loss(frames, predictions)
            return self.optimizer.scale_loss(loss), (loss, predictions)

        trainable = [v.value for v in self.trainable_variables]
        (_, (loss, predictions)), grads = jax.value_and_grad(scaled_loss, has_aux=True)(trainable)
        trainable, optimizer_values = self.optimizer.stateless_apply(
            [v.value for v in self.optimizer.variables], grads, trainable)
        for variable, value in zip(self.trainable_variables + self.optimizer.variables,
                                   trainable + optimizer_values):
            variable.assign(value)
        return loss, predictions

    # --- forecasting -----------------------------------------------------------------------

    def forecast(self, context, n_frames):
        """Forecast the ``n_frames`` frames that follow ``context``, feeding back predictions.

        context: (B, input_length, X, Y, Z, C), the first frames of clips (array or tensor).
        n_frames: frames to forecast, >= 1; the model trained on total_length - input_length
          of them, more continue the recurrence.
        Returns (B, n_frames, X, Y, Z, C) float32 numpy array, frames input_length ..
        input_length + n_frames - 1, also under a mixed precision policy. The weights are
        the optimizer's moving average when it keeps one (MIMAdam, also inside a
        LossScaleOptimizer, once built); otherwise (e.g. plain "adam", or no optimizer) the
        model's weights. Context of another layout raises the one-line ValueError of ``call``.
        """
        if int(n_frames) != n_frames or n_frames < 1:
            raise ValueError(f"MIM3D.forecast: n_frames must be a positive integer, got "
                             f"{n_frames!r}")
        self._check_clips(context.shape, self.input_length, exact=True, what="forecast context")
        if not self.built:
            self.build((None, self.total_length) + tuple(context.shape[2:]))
        steps = self.input_length + int(n_frames) - 1
        if steps not in self._forecasters:
            self._forecasters[steps] = _compiled(lambda weights, context: self._unroll(
                context, weights=weights, steps=steps)[:, self.input_length - 1:])
        weights = [ops.convert_to_tensor(w) for w in self._forecast_weights()]
        predictions = self._forecasters[steps](weights, ops.convert_to_tensor(context, "float32"))
        return ops.convert_to_numpy(predictions)

    def forecast_density(self, context, n_frames, scale=None):
        """:meth:`forecast` from physical densities: ``context`` (B, input_length, X, Y, Z, C)
        densities mapped to [0, 1] by the model's normalisation (max-scaling by ``scale``,
        default the context's largest density), the forecast mapped back. Returns
        (B, n_frames, X, Y, Z, C) float32 densities."""
        context = np.asarray(context, dtype=np.float64)
        normalisation = Normalisation.from_json(
            {**self.normalisation, **({"scale": scale or context.max()}
                                      if self.normalisation["kind"] == "max" else {})})
        return normalisation.density(self.forecast(normalisation.frames(context), n_frames))

    def _forecast_weights(self):
        """The trainable variables, or their moving averages where the optimizer keeps them."""
        optimizer = base_optimizer(getattr(self, "optimizer", None))
        if isinstance(optimizer, MIMAdam) and optimizer.built:
            return [optimizer.ema_of(v) for v in self.trainable_variables]
        return self.trainable_variables

    def get_config(self):
        return {**super().get_config(), "num_hidden": list(self.num_hidden),
                "filter_size": self.filter_size, "patch_size": self.patch_size,
                "input_length": self.input_length, "total_length": self.total_length,
                "layer_norm": self.layer_norm, "peephole": self.peephole, "remat": self.remat,
                "reverse_input": self.reverse_input, "reverse_img": self.reverse_img,
                "scheduled_sampling": self.scheduled_sampling,
                "sampling_start_value": self.sampling_start_value,
                "sampling_changing_rate": self.sampling_changing_rate,
                "sampling_stop_iter": self.sampling_stop_iter, "seed": self.seed,
                "normalisation": dict(self.normalisation)}


def reshape_patch(frames, patch_size):
    """(B, T, X, Y, Z, C) -> (B, T, X/p, Y/p, Z/p, p^3 C); block offsets (x, y, z) before C."""
    p = int(patch_size)
    if p == 1:
        return frames
    b, t, x, y, z, c = ops.shape(frames)
    if any(isinstance(d, int) and d % p for d in (x, y, z)):  # a traced size is checked by call
        raise ValueError(f"grid {(x, y, z)} is not divisible by patch_size {p}")
    a = ops.reshape(frames, (b, t, x // p, p, y // p, p, z // p, p, c))
    a = ops.transpose(a, (0, 1, 2, 4, 6, 3, 5, 7, 8))
    return ops.reshape(a, (b, t, x // p, y // p, z // p, p * p * p * c))


def reshape_patch_back(patches, patch_size):
    """Exact inverse of :func:`reshape_patch`: (B, T, X/p, Y/p, Z/p, p^3 C) -> (B, T, X, Y, Z, C)."""
    p = int(patch_size)
    if p == 1:
        return patches
    b, t, xp, yp, zp, cp = ops.shape(patches)
    c = cp // (p * p * p)
    a = ops.reshape(patches, (b, t, xp, yp, zp, p, p, p, c))
    a = ops.transpose(a, (0, 1, 2, 5, 3, 6, 4, 7, 8))
    return ops.reshape(a, (b, t, xp * p, yp * p, zp * p, c))
