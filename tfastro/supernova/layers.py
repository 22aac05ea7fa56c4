"""Recurrent cells of the 3D Memory-In-Memory network (Wang et al. 2019; 3D-MIM, Hirashima et al. 2023).

All tensors are channels-last 3D fields (B, X, Y, Z, C). States are passed in and returned,
never kept on a layer between calls. A state given as ``None`` stands for an all-zero field:
the convolution it would feed is skipped and replaced by its known response to zeros, which
is exact (see ``ConvNorm3D.zero_response``) and saves the work the original spent on the
zero states of the first time steps.

Gate groups are split along channels in the order (i, g, f, o), or (i, g, o) for three.

3D convolution followed by the optional tensor layer norm, and the original initialiser.
"""
import math
import random

import keras
from keras import ops

from tfastro.core.layers import TensorLayerNorm

PEEPHOLES = ("voxel", "channel")


def _response(conv, x):
    """Output of ``conv`` for input ``x``; for ``x=None`` (zeros) its constant response."""
    return conv(x) if x is not None else conv.zero_response()


def _check_peephole(peephole):
    if peephole not in PEEPHOLES:
        raise ValueError(f"peephole must be one of {PEEPHOLES}, got {peephole!r}")
    return peephole


def _check_grid(mim_s, tensors):
    """Per-voxel peephole weights fit only the grid they were built for: say so clearly."""
    if mim_s.peephole != "voxel":
        return
    built = tuple(mim_s.oc_weight.shape[:3])
    for t in tensors:
        grid = None if t is None else tuple(t.shape[1:4])
        if grid is not None and None not in grid and grid != built:
            raise ValueError(f"{mim_s.name} has per-voxel peephole weights for the grid {built} "
                             f"but was given a field on the grid {grid}; use peephole='channel' "
                             f"to run on grids other than the one the layer was built on")


class _RecurrentCell3D(keras.layers.Layer):
    """Settings shared by the cells: hidden channels, kernel size, layer norm, forget bias."""

    def __init__(self, num_hidden, filter_size=5, layer_norm=True, forget_bias=1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_hidden = int(num_hidden)
        self.filter_size = int(filter_size)
        self.layer_norm = bool(layer_norm)
        self.forget_bias = float(forget_bias)

    def _conv(self, groups, name, kernel_initializer=None):
        """A ConvNorm3D giving ``groups`` gate groups of num_hidden channels.

        An initializer object is copied: an unseeded one draws its seed when made, so two
        convolutions sharing one would start with equal kernels.
        """
        if isinstance(kernel_initializer, keras.initializers.Initializer):
            kernel_initializer = type(kernel_initializer).from_config(
                kernel_initializer.get_config())
        return ConvNorm3D(groups * self.num_hidden, self.filter_size, self.layer_norm,
                          kernel_initializer, dtype=self.dtype_policy, name=name)

    def _cell_reduce(self):
        """The 1x1x1 convolution of [c', m'] to num_hidden channels."""
        return keras.layers.Conv3D(self.num_hidden, 1, padding="same", dtype=self.dtype_policy,
                                   name="cell_reduce", kernel_initializer=ChannelGlorotUniform())

    def _check_states(self, **shapes):
        """Given states (``<name>_shape`` None when absent) must have num_hidden channels."""
        for name, shape in shapes.items():
            if shape is not None and shape[-1] != self.num_hidden:
                raise ValueError(f"{self.name}: state {name[:-len('_shape')]} must have "
                                 f"num_hidden={self.num_hidden} channels, got shape {tuple(shape)}")

    def _build_memory_cell(self, x_shape):
        """Build conv_x (on x), conv_h and conv_m (on states) and cell_reduce (on [c', m'])."""
        self.conv_x.build(x_shape)
        self.conv_h.build(tuple(x_shape[:-1]) + (self.num_hidden,))
        self.conv_m.build(tuple(x_shape[:-1]) + (self.num_hidden,))
        self.cell_reduce.build(tuple(x_shape[:-1]) + (2 * self.num_hidden,))

    def get_config(self):
        return {**super().get_config(), "num_hidden": self.num_hidden,
                "filter_size": self.filter_size, "layer_norm": self.layer_norm,
                "forget_bias": self.forget_bias}


@keras.saving.register_keras_serializable(package="tfastro")
class SpatioTemporalLSTMCell3D(_RecurrentCell3D):
    """Spatiotemporal LSTM cell (PredRNN), the first layer of 3D-MIM.

    ``call(x, h, c, m) -> (h', c', m')`` with x (B, X, Y, Z, C_in) and h, c, m
    (B, X, Y, Z, num_hidden); h, c, m may be ``None`` (zeros)::

        i = s(ix+ih)  g = tanh(gx+gh)  f = s(fx+fh+b)
        i'= s(ix+im)  g'= tanh(gx+gm)  f'= s(fx+fm+b)  o = s(ox+oh+om)
        m' = f' m + i' g'   c' = f c + i g   h' = o tanh(conv1x1([c', m']))
    """

    def __init__(self, num_hidden, filter_size=5, layer_norm=True, forget_bias=1.0, **kwargs):
        super().__init__(num_hidden, filter_size, layer_norm, forget_bias, **kwargs)
        self.conv_h = self._conv(4, "time_state_to_state")
        self.conv_m = self._conv(4, "spatio_state_to_state")
        self.conv_x = self._conv(4, "input_to_state")
        self.cell_reduce = self._cell_reduce()

    def build(self, x_shape, h_shape=None, c_shape=None, m_shape=None):
        self._check_states(h_shape=h_shape, c_shape=c_shape, m_shape=m_shape)
        self._build_memory_cell(x_shape)

    def call(self, x, h=None, c=None, m=None):
        i_x, g_x, f_x, o_x = ops.split(self.conv_x(x), 4, axis=-1)
        i_h, g_h, f_h, o_h = ops.split(_response(self.conv_h, h), 4, axis=-1)
        i_m, g_m, f_m, o_m = ops.split(_response(self.conv_m, m), 4, axis=-1)
        b = self.forget_bias
        i = ops.sigmoid(i_x + i_h)
        g = ops.tanh(g_x + g_h)
        f = ops.sigmoid(f_x + f_h + b)
        i_ = ops.sigmoid(i_x + i_m)
        g_ = ops.tanh(g_x + g_m)
        f_ = ops.sigmoid(f_x + f_m + b)
        o = ops.sigmoid(o_x + o_h + o_m)
        m_new = i_ * g_ if m is None else f_ * m + i_ * g_
        c_new = i * g if c is None else f * c + i * g
        h_new = o * ops.tanh(self.cell_reduce(ops.concatenate([c_new, m_new], axis=-1)))
        return h_new, c_new, m_new


@keras.saving.register_keras_serializable(package="tfastro")
class MIMS3D(_RecurrentCell3D):
    """Stationary module MIM-S: a ConvLSTM with peepholes, ``call(x, h, c) -> (h', c')``.

    x (B, X, Y, Z, C_in) is the input (zeros when ``None``), h the hidden input and c the
    module's own cell state, both (B, X, Y, Z, num_hidden) or ``None``::

        i = s(ih + ix + c*w_i)   f = s(fh + fx + c*w_f + b)   g = gh + gx   o = oh + ox
        c' = f c + i tanh(g)     h' = s(o + c'*w_o) tanh(c')

    Peephole weights w are per voxel, shape (X, Y, Z, ·) as in the original (``peephole=
    "voxel"``, ties the layer to one grid size), or per channel (``"channel"``, any grid).
    With every input ``None`` the outputs carry no batch axis (they broadcast). Built
    without the shape of x (x ``None`` at the first call), x is taken to have num_hidden
    channels, as in 3D-MIM where it is a difference of hidden states.
    """

    def __init__(self, num_hidden, filter_size=5, layer_norm=True, forget_bias=1.0,
                 peephole="voxel", kernel_initializer=None, **kwargs):
        super().__init__(num_hidden, filter_size, layer_norm, forget_bias, **kwargs)
        self.peephole = _check_peephole(peephole)
        self.conv_h = self._conv(4, "state_to_state", kernel_initializer)
        self.conv_x = self._conv(4, "input_to_state", kernel_initializer)

    def build(self, x_shape=None, h_shape=None, c_shape=None):
        n = self.num_hidden
        self._check_states(h_shape=h_shape, c_shape=c_shape)
        field = next((s for s in (x_shape, h_shape, c_shape) if s is not None), None)
        if field is None:
            raise ValueError(f"{self.name}: build needs the shape of x, h or c")
        state = tuple(field[:-1]) + (n,)
        self.conv_x.build(state if x_shape is None else x_shape)
        self.conv_h.build(state)
        grid = tuple(state[1:4]) if self.peephole == "voxel" else ()
        self.c_t_weight = self.add_weight(name="c_t_weight", shape=grid + (2 * n,),
                                          initializer="glorot_uniform")
        self.oc_weight = self.add_weight(name="oc_weight", shape=grid + (n,),
                                         initializer="glorot_uniform")

    def call(self, x=None, h=None, c=None):
        _check_grid(self, (x, h, c))
        n = self.num_hidden
        i_h, g_h, f_h, o_h = ops.split(_response(self.conv_h, h), 4, axis=-1)
        i_x, g_x, f_x, o_x = ops.split(_response(self.conv_x, x), 4, axis=-1)
        c_t_weight, oc_weight = (ops.cast(w, self.compute_dtype)
                                 for w in (self.c_t_weight, self.oc_weight))
        i, f = i_h + i_x, f_h + f_x
        if c is not None:
            i = i + c * c_t_weight[..., :n]
            f = f + c * c_t_weight[..., n:]
        i = ops.sigmoid(i)
        f = ops.sigmoid(f + self.forget_bias)
        c_new = i * ops.tanh(g_h + g_x)
        if c is not None:
            c_new = f * c + c_new
        h_new = ops.sigmoid(o_h + o_x + c_new * oc_weight) * ops.tanh(c_new)
        return h_new, c_new

    def get_config(self):
        return {**super().get_config(), "peephole": self.peephole,
                "kernel_initializer": keras.initializers.serialize(self.conv_h.kernel_initializer)}


@keras.saving.register_keras_serializable(package="tfastro")
class MIMN3D(MIMS3D):
    """Non-stationary module MIM-N: the MIM-S form fed with differences of hidden states.

    ``call(x, h, c) -> (h', c')`` where x is h_{l,t} - h_{l,t-1} of the layer below (or the
    MIM-N output of the layer below). Its convolutions start uniform in +-0.001.
    """

    def __init__(self, num_hidden, filter_size=5, layer_norm=True, forget_bias=1.0,
                 peephole="voxel", kernel_initializer=None, **kwargs):
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.RandomUniform(-0.001, 0.001)
        super().__init__(num_hidden, filter_size, layer_norm, forget_bias, peephole,
                         kernel_initializer, **kwargs)


@keras.saving.register_keras_serializable(package="tfastro")
class MIMBlock3D(_RecurrentCell3D):
    """Memory-In-Memory block, layers 2..L of 3D-MIM.

    ``call(x, diff_h, h, c, m, s) -> (h', c', m', s')``: x is the hidden state of the layer
    below, diff_h the MIM-N output feeding this layer, h and c this layer's states, m the
    spatiotemporal memory coming up from below, s the cell state of the inner MIM-S. All are
    (B, X, Y, Z, num_hidden) except x (B, X, Y, Z, C_in); all but x may be ``None``::

        i = s(ix+ih)  g = tanh(gx+gh)  i'= s(ix+im)  g'= tanh(gx+gm)  f'= s(fx+fm+b)
        o = s(ox+oh+om)   m' = f' m + i' g'
        T, s' = MIM-S(diff_h, c, s)   c' = T + i g   h' = o tanh(conv1x1([c', m']))
    """

    def __init__(self, num_hidden, filter_size=5, layer_norm=True, forget_bias=1.0,
                 peephole="voxel", **kwargs):
        super().__init__(num_hidden, filter_size, layer_norm, forget_bias, **kwargs)
        self.peephole = _check_peephole(peephole)
        self.conv_h = self._conv(3, "time_state_to_state")
        self.conv_m = self._conv(4, "spatio_state_to_state")
        self.conv_x = self._conv(4, "input_to_state")
        self.mim_s = MIMS3D(num_hidden, filter_size, layer_norm, forget_bias, peephole,
                            dtype=self.dtype_policy, name="mim_s")
        self.cell_reduce = self._cell_reduce()

    def build(self, x_shape, diff_h_shape=None, h_shape=None, c_shape=None, m_shape=None,
              s_shape=None):
        self._check_states(diff_h_shape=diff_h_shape, h_shape=h_shape, c_shape=c_shape,
                           m_shape=m_shape, s_shape=s_shape)
        self._build_memory_cell(x_shape)
        self.mim_s.build(tuple(x_shape[:-1]) + (self.num_hidden,))

    def call(self, x, diff_h=None, h=None, c=None, m=None, s=None):
        _check_grid(self.mim_s, (x,))
        i_x, g_x, f_x, o_x = ops.split(self.conv_x(x), 4, axis=-1)
        i_h, g_h, o_h = ops.split(_response(self.conv_h, h), 3, axis=-1)
        i_m, g_m, f_m, o_m = ops.split(_response(self.conv_m, m), 4, axis=-1)
        i = ops.sigmoid(i_x + i_h)
        g = ops.tanh(g_x + g_h)
        i_ = ops.sigmoid(i_x + i_m)
        g_ = ops.tanh(g_x + g_m)
        f_ = ops.sigmoid(f_x + f_m + self.forget_bias)
        o = ops.sigmoid(o_x + o_h + o_m)
        m_new = i_ * g_ if m is None else f_ * m + i_ * g_
        t, s_new = self.mim_s(diff_h, c, s)
        c_new = t + i * g
        h_new = o * ops.tanh(self.cell_reduce(ops.concatenate([c_new, m_new], axis=-1)))
        return h_new, c_new, m_new, ops.broadcast_to(s_new, ops.shape(c_new))

    def get_config(self):
        return {**super().get_config(), "peephole": self.peephole}


@keras.saving.register_keras_serializable(package="tfastro")
class ChannelGlorotUniform(keras.initializers.Initializer):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)) with fans counted in channels only.

    This is the 3D-MIM initialiser: the kernel size does not enter the fans, so kernels are
    larger than Keras' Glorot initialiser would make them.
    """

    def __init__(self, seed=None):
        self.seed = seed
        # As Keras' random initialisers: without a seed one is drawn now (from Python's
        # random, which keras.utils.set_random_seed seeds), so that the draw needs no random
        # state and runs inside a traced (JAX) function; every call gives the same values.
        self._draw_seed = random.randint(1, 10**9) if seed is None else seed

    def __call__(self, shape, dtype=None):
        limit = math.sqrt(6.0 / (shape[-2] + shape[-1]))
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self._draw_seed)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="tfastro")
class ConvNorm3D(keras.layers.Layer):
    """Conv3D ('same' padding, stride 1, with bias) then, if ``layer_norm``, TensorLayerNorm.

    Input (B, X, Y, Z, C_in) -> output (B, X, Y, Z, filters).
    ``zero_response()`` gives the output for an all-zero input, a (filters,) vector that is
    the same at every voxel, without running the convolution.
    """

    def __init__(self, filters, kernel_size, layer_norm=True, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.layer_norm = bool(layer_norm)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer if kernel_initializer is not None else ChannelGlorotUniform())
        self.conv = keras.layers.Conv3D(
            self.filters, self.kernel_size, padding="same",
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="conv")
        self.norm = TensorLayerNorm(dtype=self.dtype_policy, name="norm") if self.layer_norm else None

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.norm is not None:
            self.norm.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, x):
        y = self.conv(x)
        return self.norm(y) if self.norm is not None else y

    def zero_response(self):
        bias = ops.cast(self.conv.bias, "float32")
        y = self.norm.normalize_constant(bias) if self.norm is not None else bias
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "layer_norm": self.layer_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
