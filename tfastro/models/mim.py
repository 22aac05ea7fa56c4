"""The 3D Memory-In-Memory forecaster (3D-MIM) as a keras.Model with its own train_step.

Frames are channels-last voxel cubes: a clip is (B, T, X, Y, Z, C) with values in [0, 1].
The model folds p^3 blocks into channels (``patch_size``), runs one SpatioTemporalLSTMCell3D
followed by MIM blocks (with MIM-N modules between layers) over ``total_length - 1`` steps and
returns the predictions of frames 1 .. T-1, (B, T-1, X, Y, Z, C).
"""
import contextlib
import math

import keras
from keras import ops

from tfastro.layers.mim import PEEPHOLES, MIMBlock3D, MIMN3D, SpatioTemporalLSTMCell3D
from tfastro.models.patching import reshape_patch, reshape_patch_back


def sampling_eta(iteration, start_value=1.0, changing_rate=2e-5, stop_iter=50000):
    """Probability of feeding the true frame at training iteration ``iteration`` (1-based).

    eta drops by ``changing_rate`` every iteration from ``start_value`` and is 0 from
    ``stop_iter`` on (never negative): the schedule of the original run.py.
    """
    iteration = ops.cast(iteration, "float32")
    eta = ops.maximum(start_value - changing_rate * iteration, 0.0)
    return ops.where(iteration < stop_iter, eta, 0.0)


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

    ``call(frames, sampling_mask=None)``: frames (B, T, X, Y, Z, C) with T >= input_length
    (>= total_length when a mask is given); sampling_mask (B, total_length-input_length-1),
    1 where the true frame is fed back instead of the prediction; None feeds back
    predictions only (forecasting). Returns (B, total_length-1, X, Y, Z, C).
    """

    def __init__(self, num_hidden=(64, 64, 64, 64), filter_size=5, patch_size=1,
                 input_length=10, total_length=20, layer_norm=True, peephole="voxel",
                 remat=False, reverse_input=True, reverse_img=False, scheduled_sampling=True,
                 sampling_start_value=1.0, sampling_changing_rate=0.00002,
                 sampling_stop_iter=50000, seed=None, **kwargs):
        super().__init__(**kwargs)
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

    def build(self, input_shape):
        p = self.patch_size
        b, _, x, y, z, c = input_shape
        if any(d is None or d % p for d in (x, y, z)):
            raise ValueError(f"grid {(x, y, z)} must be known and divisible by patch_size {p}")
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

    def _cell(self, layer, *args, training=False, weights=None):
        """Run one cell; rematerialised in the backward pass when ``remat`` and training.

        ``weights`` ({id(variable): tensor}, this time step's weight values, see ``_unroll``)
        enter the rematerialised function as arguments, so their gradients flow through it.
        """
        if not (self.remat and training):
            return layer(*args)
        present = [a is not None for a in args]
        states = [a for a in args if a is not None]
        variables = layer.trainable_variables if weights is not None else []

        def run(*tensors):
            it = iter(tensors[:len(states)])
            mapping = list(zip(variables, tensors[len(states):]))
            with keras.StatelessScope(state_mapping=mapping) if mapping else contextlib.nullcontext():
                return layer(*[next(it) if p else None for p in present])

        return keras.remat(run)(*states, *[weights[id(v)] for v in variables])

    def call(self, frames, sampling_mask=None, training=False):
        return self._unroll(frames, sampling_mask, training)

    def _unroll(self, frames, sampling_mask=None, training=False, weights=None):
        """The recurrence over time steps; see the class docstring for shapes.

        ``weights``: float32 values of ``trainable_variables`` (training only). Each time
        step then uses its own identity copy, chained from the previous step's, so that in
        the backward pass the weight gradients are summed step by step as they arrive
        instead of all steps' gradients being held until one final sum (at 32^3 with
        per-voxel peepholes that pile is larger than the states themselves).

        With ``remat`` in training the steps also run in segments of about sqrt(steps):
        only the state entering each segment is kept, the segment's own states are
        recomputed in the backward pass (one more forward pass in all).
        """
        frames = reshape_patch(ops.cast(frames, self.compute_dtype), self.patch_size)
        steps = self.total_length - 1
        state = [None] * (5 * len(self.num_hidden) + 2)
        segment = math.ceil(math.sqrt(steps)) if self.remat and training and steps > 3 else steps
        segment = max(segment, 2)  # after steps 0 and 1 every state exists
        predictions = []
        for t0 in range(0, steps, segment):
            t1 = min(t0 + segment, steps)
            if segment < steps:
                state, weights, out = self._remat_segment(t0, t1, state, frames, sampling_mask,
                                                          weights)
            else:
                state, weights, out = self._steps(t0, t1, state, frames, sampling_mask,
                                                  training, weights)
            predictions += out
        return reshape_patch_back(ops.stack(predictions, axis=1), self.patch_size)

    def _remat_segment(self, t0, t1, state, frames, sampling_mask, weights):
        """``_steps`` from t0 to t1 keeping only its inputs for the backward pass."""
        present = [x is not None for x in state]
        inputs = [x for x in state if x is not None]
        weights = weights or []
        produced = []  # which entries of the state the segment returns (set while tracing)

        def run(*tensors):
            it = iter(tensors[:len(inputs)])
            segment_state = [next(it) if p else None for p in present]
            new_state, _, out = self._steps(t0, t1, segment_state, frames, sampling_mask, True,
                                            list(tensors[len(inputs):]) or None)
            produced[:] = [x is not None for x in new_state]
            return [x for x in new_state if x is not None] + out

        outputs = list(keras.remat(run)(*inputs, *weights))
        it = iter(outputs[:sum(produced)])
        new_state = [next(it) if p else None for p in produced]
        # copies of this segment's weights continue the chain of running gradient sums
        return new_state, [ops.copy(w) for w in weights] or None, outputs[sum(produced):]

    def _steps(self, t0, t1, state, frames, sampling_mask, training, weights):
        """Time steps t0 .. t1-1 from ``state``: returns (state, weights, predictions).

        state: flat list [h_1..h_L, c_1..c_L, s_1..s_L, diffh_1..diffh_L, diffc_1..diffc_L,
        m, x_gen] of (B, X/p, Y/p, Z/p, C') tensors or None (zeros, before the first step).
        """
        layers = len(self.num_hidden)
        h, c, s, diff_h, diff_c = (list(state[i * layers:(i + 1) * layers]) for i in range(5))
        m, x_gen = state[-2:]
        predictions = []
        variables = self.trainable_variables if weights is not None else []
        for t in range(t0, t1):
            if t < self.input_length:
                x_t = frames[:, t]
            elif sampling_mask is None:
                x_t = x_gen
            else:
                w = ops.cast(ops.reshape(sampling_mask[:, t - self.input_length], (-1, 1, 1, 1, 1)),
                             self.compute_dtype)
                x_t = w * frames[:, t] + (1 - w) * x_gen
            step = None
            if weights is not None:
                weights = [ops.copy(w) for w in weights]
                step = {id(v): w for v, w in zip(variables, weights)}
            scope = (keras.StatelessScope(state_mapping=list(zip(variables, weights)))
                     if weights is not None else contextlib.nullcontext())
            with scope:
                h_before = h[0]
                h[0], c[0], m = self._cell(self.stlstm, x_t, h[0], c[0], m,
                                           training=training, weights=step)
                for i in range(1, layers):
                    if t > 0:  # at t = 0 the original's MIM-N output is discarded: skip it
                        diff = h[0] - h_before if i == 1 else diff_h[i - 1]
                        diff_h[i], diff_c[i] = self._cell(self.mim_n[i - 1], diff, diff_h[i],
                                                          diff_c[i], training=training,
                                                          weights=step)
                    h[i], c[i], m, s[i] = self._cell(self.blocks[i - 1], h[i - 1], diff_h[i],
                                                     h[i], c[i], m, s[i], training=training,
                                                     weights=step)
                x_gen = self.back_to_pixel(h[-1])
            predictions.append(x_gen)
        return h + c + s + diff_h + diff_c + [m, x_gen], weights, predictions

    def _train_on(self, frames, mask):
        """One optimizer step on one view of the batch; returns its (unscaled) loss."""
        import tensorflow as tf  # training is TensorFlow's; the forward pass runs on any backend
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            weights = [tf.identity(v.value) for v in self.trainable_variables]  # float32 reads
            loss = frame_loss(frames, self._unroll(frames, mask, training=True, weights=weights))
            scaled = self.optimizer.scale_loss(loss / replicas)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return loss

    def train_step(self, data):
        import tensorflow as tf
        frames = data[0] if isinstance(data, (tuple, list)) else data
        if not self.built:  # fit() on a fresh model: the counters below are made in build()
            self.build(frames.shape)
        self.iteration.assign_add(1)
        iteration = tf.identity(self.iteration.value)
        if self.scheduled_sampling:
            eta = sampling_eta(iteration, self.sampling_start_value, self.sampling_changing_rate,
                               self.sampling_stop_iter)
        else:
            eta = ops.zeros((), "float32")
        self.sampling_eta.assign(eta)
        feedback_steps = self.total_length - self.input_length - 1
        # Stateless draws keyed on (seed, iteration): a resumed run repeats them exactly.
        draws = tf.random.stateless_uniform((ops.shape(frames)[0], feedback_steps),
                                            seed=tf.stack([tf.constant(self.seed or 0, tf.int64), iteration]))
        mask = ops.cast(draws < eta, "float32")
        views = [frames]
        if self.reverse_input:
            views.append(ops.flip(frames, axis=1))
        if self.reverse_img:
            views.append(ops.flip(frames, axis=4))
        loss = sum(self._train_on(v, mask) for v in views) / len(views)
        return {"loss": loss, "eta": eta}

    def get_config(self):
        return {**super().get_config(), "num_hidden": list(self.num_hidden),
                "filter_size": self.filter_size, "patch_size": self.patch_size,
                "input_length": self.input_length, "total_length": self.total_length,
                "layer_norm": self.layer_norm, "peephole": self.peephole, "remat": self.remat,
                "reverse_input": self.reverse_input, "reverse_img": self.reverse_img,
                "scheduled_sampling": self.scheduled_sampling,
                "sampling_start_value": self.sampling_start_value,
                "sampling_changing_rate": self.sampling_changing_rate,
                "sampling_stop_iter": self.sampling_stop_iter, "seed": self.seed}
