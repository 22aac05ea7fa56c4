"""The symmetry groups of the augmentations: the 8 symmetries of the square (CAMELS maps, the
sky plane of prestellar cores, turbulence tiles) and the 24 rotations of the cube (dm2gal
windows).

An element is a signed permutation matrix R (int64 ``(d, d)``) acting on d axes of equal
length n of an array: the value at centred offset u (index - (n - 1) / 2 on each axis) moves
to offset R u; that is, the axes are transposed (output axis a is input axis p(a), where
R[a, p(a)] = ±1) and output axis a is reversed where R[a, p(a)] = -1. Groups are stacks of
such matrices, ``(G, d, d)``, whose element k is picked by its index.

- numpy: :func:`transform` (one matrix).
- TensorFlow (graph-safe, for ``tf.data`` maps): :func:`transform_tf` (one element of a
  group), :func:`transform_each_tf` (each example of a batch its own element),
  :func:`source_indices` (where each output pixel of such a batch comes from, to compose with
  shifts); :func:`random_elements` draws element indices from a stateless seed and
  :func:`square_symmetry_of` names an element of the square by its flips and transposition.
"""
import itertools

import numpy as np

__all__ = ["QUARTER_TURN", "REFLECTION", "SQUARE_SYMMETRIES", "CUBE_ROTATIONS", "element_index",
           "transform", "transform_tf", "source_indices", "transform_each_tf",
           "random_elements", "square_symmetry_of"]

#: int64 ``(2, 2)``: a quarter turn from axis 0 towards axis 1 (``np.rot90(x, axes=(0, 1))``).
QUARTER_TURN = np.array([[0, -1], [1, 0]])
#: int64 ``(2, 2)``: the reflection reversing axis 0.
REFLECTION = np.array([[-1, 0], [0, 1]])

#: int64 ``(8, 2, 2)``: the dihedral group of the square. Element k is ``k % 4`` quarter turns,
#: after the reflection of axis 0 when ``k >= 4``: 0-3 are the rotations (0 the identity),
#: 4-7 the reflections.
SQUARE_SYMMETRIES = np.stack([np.linalg.matrix_power(QUARTER_TURN, k % 4)
                              @ np.linalg.matrix_power(REFLECTION, k // 4) for k in range(8)])


def _signed_permutations(d):
    """int64 ``(2^d d!, d, d)``: every signed permutation matrix of d axes, ordered by the
    permutation, then by the signs (identity first)."""
    matrices = []
    for perm in itertools.permutations(range(d)):
        for flips in itertools.product((False, True), repeat=d):
            matrix = np.zeros((d, d), np.int64)
            matrix[np.arange(d), perm] = np.where(flips, -1, 1)
            matrices.append(matrix)
    return np.stack(matrices)


#: int64 ``(24, 3, 3)``: the rotation group of the cube (the signed permutations of
#: determinant +1, in the order of ``_signed_permutations``); element 0 is the identity.
CUBE_ROTATIONS = np.stack([m for m in _signed_permutations(3) if round(np.linalg.det(m)) == 1])


def element_index(group, matrix):
    """The index of ``matrix`` in ``group`` ``(G, d, d)``; ValueError if it is not there."""
    found = np.flatnonzero((np.asarray(group) == np.asarray(matrix)).all(axis=(1, 2)))
    if found.size != 1:
        raise ValueError(f"matrix {np.asarray(matrix).tolist()}: not an element of the group")
    return int(found[0])


def _transposition(matrix, axes, rank):
    """(axis order for a transpose, output axes to reverse) of ``matrix`` acting on ``axes`` of
    an array of ``rank`` axes; ValueError unless it is a signed permutation of len(axes)."""
    matrix = np.asarray(matrix)
    d = len(axes)
    if (matrix.shape != (d, d) or not np.isin(matrix, (-1, 0, 1)).all()
            or not (np.abs(matrix).sum(axis=0) == 1).all()
            or not (np.abs(matrix).sum(axis=1) == 1).all()):
        raise ValueError(f"matrix {matrix.tolist()}: expected a signed permutation of {d} axes")
    axes = [a % rank for a in axes]
    perm = np.argmax(np.abs(matrix), axis=1)
    order = list(range(rank))
    for a, p in zip(axes, perm):
        order[a] = axes[p]
    return order, [axes[a] for a in range(d) if matrix[a, perm[a]] < 0]


def transform(x, matrix, axes):
    """The signed permutation ``matrix`` ``(d, d)`` applied to ``axes`` (d of them, equal
    lengths) of array ``x``: the value at centred offset u moves to ``matrix @ u``; every other
    axis (channels, batch) is carried along. Returns an array (a view) of ``x``'s shape."""
    x = np.asarray(x)
    order, flipped = _transposition(matrix, axes, x.ndim)
    return np.flip(np.transpose(x, order), flipped)


def transform_tf(x, k, group, axes):
    """Element ``k`` (scalar int tensor) of ``group`` ``(G, d, d)`` applied to ``axes`` of
    tensor ``x`` (static rank), as :func:`transform`; graph-safe (a switch over the G
    elements)."""
    import tensorflow as tf
    x = tf.convert_to_tensor(x)

    def branch(matrix):
        order, flipped = _transposition(matrix, axes, x.shape.rank)
        return lambda: tf.reverse(tf.transpose(x, order), flipped)

    return tf.switch_case(tf.cast(k, tf.int32), [branch(m) for m in group])


def source_indices(k, group, shape):
    """Where each output position of example b takes its value from under element ``k[b]``.

    Args:
      k: int tensor ``(B,)`` of element indices into ``group`` ``(G, d, d)``.
      shape: the d spatial lengths (equal where the elements swap axes).
    Returns:
      int32 ``(B, *shape, d)``: the input position ``R^T v`` (centred offsets) of output
      position v, for ``tf.gather_nd(x, ..., batch_dims=1)``.
    """
    import tensorflow as tf
    d = np.shape(group)[1]
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
    grid = tf.stack(tf.meshgrid(*[tf.range(shape[a]) for a in range(d)], indexing="ij"), -1)
    doubled = 2 * grid - (shape - 1)  # (*shape, d): twice the centred offset v
    matrices = tf.reshape(tf.gather(tf.constant(group, tf.int32), k), [-1] + [1] * d + [d, d])
    source = tf.reduce_sum(matrices * doubled[None, ..., :, None], axis=-2)  # R^T v, doubled
    return (source + shape - 1) // 2


def transform_each_tf(x, k, group):
    """Example b of batch ``x`` ``(B, *spatial, ...)`` transformed by element ``k[b]`` of
    ``group`` ``(G, d, d)`` on its d spatial axes 1..d (as :func:`transform`)."""
    import tensorflow as tf
    d = np.shape(group)[1]
    out = tf.gather_nd(x, source_indices(k, group, tf.shape(x)[1:d + 1]), batch_dims=1)
    out.set_shape(x.shape)  # the elements keep the shape (axes they swap have equal lengths)
    return out


def random_elements(seed, shape, group):
    """int32 element indices of ``group``, uniform and independent, of tensor ``shape``, from
    the stateless ``seed`` pair: the same seed, the same draws."""
    import tensorflow as tf
    return tf.random.stateless_uniform(shape, seed, 0, len(group), dtype=tf.int32)


#: Index in SQUARE_SYMMETRIES of the element that reverses axis 0 (f0), axis 1 (f1), then
#: swaps the axes (t), at [4 t + 2 f0 + f1].
_SQUARE_BY_FLIPS = np.array([
    element_index(SQUARE_SYMMETRIES, np.linalg.matrix_power([[0, 1], [1, 0]], t)
                  @ np.diag([1 - 2 * f0, 1 - 2 * f1]))
    for t, f0, f1 in itertools.product((0, 1), repeat=3)])


def square_symmetry_of(transpose, flip_0, flip_1):
    """Indices in SQUARE_SYMMETRIES (int32 tensor of the arguments' broadcast shape) of the
    elements that reverse axis 0 where ``flip_0``, axis 1 where ``flip_1``, then swap the two
    axes where ``transpose`` (bool or 0/1 tensors): independent fair bits give every element
    with probability 1/8."""
    import tensorflow as tf
    bits = [tf.cast(b, tf.int32) for b in (transpose, flip_0, flip_1)]
    return tf.gather(tf.constant(_SQUARE_BY_FLIPS, tf.int32), 4 * bits[0] + 2 * bits[1] + bits[2])
