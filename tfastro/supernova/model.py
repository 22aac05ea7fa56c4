"""The 3D Memory-In-Memory forecaster (3D-MIM) as a keras.Model with its own train_step.

Frames are channels-last voxel cubes: a clip is (B, T, X, Y, Z, C) with values in [0, 1].
The model folds p^3 blocks into channels (``patch_size``), runs one SpatioTemporalLSTMCell3D
followed by MIM blocks (with MIM-N modules between layers) over ``total_length - 1`` steps and
returns the predictions of frames 1 .. T-1, (B, T-1, X, Y, Z, C).

Folding p x p x p blocks of voxels into channels (3D-MIM's ``reshape_patch``) and back.
"""
import contextlib

import keras
from keras import ops

from tfastro.supernova.layers import MIMN3D, PEEPHOLES, MIMBlock3D, SpatioTemporalLSTMCell3D


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
        return self._unroll(frames, sampling_mask, training)

    def _unroll(self, frames, sampling_mask=None, training=False, weights=None):
        """The recurrence over time steps; see the class docstring for shapes.

        Steps 0 and 1 (where states are still zeros and convolutions of them are skipped) run
        as Python code; the remaining steps are one symbolic loop (a while loop; on JAX a scan),
        so the traced program holds one step, not ``total_length - 1`` copies of it. In the
        backward pass the loop keeps what each step's gradient needs (with ``remat``: the
        cells' inputs only) and sums the weight gradients step by step.

        ``weights``: values of ``trainable_variables`` used instead of the variables
        (training: their gradients are taken with respect to these tensors).
        """
        frames = reshape_patch(ops.cast(frames, self.compute_dtype), self.patch_size)
        steps = self.total_length - 1
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
        return reshape_patch_back(predictions, self.patch_size)

    def _input_frame(self, t, frames, sampling_mask, x_gen):
        """x_t: true frame t while t < input_length, then the last prediction (or, where
        ``sampling_mask`` is 1, the true frame). ``t`` is an int or a scalar tensor."""
        true = ops.take(frames, ops.minimum(t, frames.shape[1] - 1), axis=1)
        if x_gen is None or self.input_length >= self.total_length - 1:
            return true
        fed = x_gen
        if sampling_mask is not None:
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
        if len(views) > 1 and not tf.distribute.has_strategy():
            # One traced view step run len(views) times: the graph (about 0.6 GB of memory for
            # run.sh's model) is not duplicated. Under a tf.distribute strategy the update's
            # gradient all-reduce may not sit inside a loop, so there the views are unrolled.
            n_views, stacked = len(views), ops.stack(views)
            loss = ops.fori_loop(0, n_views, lambda i, total: total + self._train_on(stacked[i], mask),
                                 ops.zeros((), "float32")) / n_views
        else:
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


def reshape_patch(frames, patch_size):
    """(B, T, X, Y, Z, C) -> (B, T, X/p, Y/p, Z/p, p^3 C); block offsets (x, y, z) before C."""
    p = int(patch_size)
    if p == 1:
        return frames
    b, t, x, y, z, c = ops.shape(frames)
    if x % p or y % p or z % p:
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
