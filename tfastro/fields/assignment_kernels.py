"""Compiled (numba) mass-assignment loop, the fast CPU backend of :mod:`.assignment`.

Importing this module needs numba (the ``fast`` extra); :mod:`.assignment` falls back to its
TensorFlow scatter without it. A pass over the particles, each adding its k^d node weights
(k = 1, 2, 3, 4 for NGP, CIC, TSC, PCS) straight into the float32 grid, as Pylians3's C loop
does; threads that own disjoint slabs of the grid run it at once. Positions and weights are
handled in float64 up to each node's offset, the weights and the grid updates in float32 (as
Pylians', whose speed float64 updates of a float32 grid lose). Compiled on first use and cached
on disk.
"""
import numba
import numpy as np

_f32 = numba.float32


@numba.njit(cache=True, nogil=True, inline="always")
def _axis(x, n, stride, scheme):
    """Nodes (times ``stride``) and weights along one axis of a position ``x`` in cell units
    (any real: wrapped periodically onto [0, n)); see :mod:`.assignment` for the rules.

    Returns ``(nodes, weights, nonfinite)``: two 4-tuples (int, float32) of which the first
    scheme + 1 entries are used (tuples stay in registers where arrays would go through
    memory), and whether ``x`` was NaN or inf. The test costs nothing for positions inside the
    box, which already take the branch of the periodic wrap.
    """
    nonfinite = False
    if not 0.0 <= x < n:  # outside the box, or NaN or inf (compared false)
        if x - x == 0.0:
            x = x - n * np.floor(x / n)
        else:  # no node: placed on node 0 for the caller to refuse the whole input
            nonfinite = True
            x = 0.0
    # x >= 0 from here: int() truncation is floor, and cheaper
    w0 = w1 = w2 = w3 = _f32(0.0)
    if scheme == 0 or scheme == 2:  # NGP, TSC: around the nearest node
        centre = int(x + 0.5)
        s = _f32(x - centre)  # in [-1/2, 1/2)
        first = centre - (1 if scheme == 2 else 0)
        if scheme == 0:
            w0 = _f32(1.0)
        else:
            w0 = _f32(0.5) * (_f32(0.5) - s) * (_f32(0.5) - s)
            w1 = _f32(0.75) - s * s
            w2 = _f32(0.5) * (_f32(0.5) + s) * (_f32(0.5) + s)
    else:  # CIC, PCS: from floor(x)
        left = int(x)
        u = _f32(x - left)  # in [0, 1)
        first = left - (1 if scheme == 3 else 0)
        if scheme == 1:
            w0 = _f32(1.0) - u
            w1 = u
        else:  # cubic B-spline
            v = _f32(1.0) - u
            w0 = v * v * v / _f32(6.0)
            w1 = (_f32(4.0) - _f32(6.0) * u * u + _f32(3.0) * u * u * u) / _f32(6.0)
            w2 = (_f32(4.0) - _f32(6.0) * v * v + _f32(3.0) * v * v * v) / _f32(6.0)
            w3 = u * u * u / _f32(6.0)
    nodes = (_wrapped(first, n) * stride,
             _wrapped(first + 1, n) * stride if scheme > 0 else 0,
             _wrapped(first + 2, n) * stride if scheme > 1 else 0,
             _wrapped(first + 3, n) * stride if scheme > 2 else 0)
    return nodes, (w0, w1, w2, w3), nonfinite


@numba.njit(cache=True, nogil=True, inline="always")
def _wrapped(node, n):
    """``node`` modulo ``n`` (node >= -n), cheaper than % for the usual node in [0, n)."""
    while node < 0:
        node += n
    while node >= n:
        node -= n
    return node


@numba.njit(cache=True, nogil=True, inline="always")
def _assign(positions, masses, grid_size, cells_per_length, scheme, ndim, grid, rows, slab):
    """Add, in particle order, the particles' contributions to a flat row-major grid (with
    ``slab``: to its rows ``rows[0]:rows[1]`` of the first axis only), in place; returns how
    many particles had a NaN or infinite coordinate (placed on node 0 of that axis: the caller
    refuses the input if any; every such particle is counted by the thread owning its row).

    Inlined into the kernels of :data:`KERNELS` and :data:`SLAB_KERNELS` with ``scheme``,
    ``ndim`` and ``slab`` constants, so the node loops unroll and a whole-grid kernel has no
    row test (which halves the speed of a CIC loop even when it always passes). Threads that
    own disjoint row ranges can run at once (the kernels release the GIL): no atomics and no
    extra grid, and every cell sums its contributions in particle order whatever the number of
    threads.

    Args:
      positions: C-contiguous float32/float64 (n, ndim) in h^-1 Mpc.
      masses: float32 (n,) particle masses, or (0,) for unit masses.
      grid_size: N, nodes along each axis.
      cells_per_length: N / L (float).
      scheme: 0, 1, 2, 3 for NGP, CIC, TSC, PCS (nodes per axis - 1).
      ndim: 2 or 3.
      grid: float32 (N^ndim,) updated in place.
      rows: (first, stop) rows of the first axis to fill, with ``slab``.
      slab: fill only ``rows``.
    """
    n = grid_size
    k = scheme + 1
    unit = masses.size == 0
    stride_x, stride_y = (n * n, n) if ndim == 3 else (n, 1)
    lo, hi = rows[0] * stride_x, rows[1] * stride_x
    nonfinite = 0
    for i in range(positions.shape[0]):
        nx, wx, bad = _axis(positions[i, 0] * cells_per_length, n, stride_x, scheme)
        if slab:
            inside = False
            for a in range(k):
                inside = inside or lo <= nx[a] < hi
            if not inside:
                continue
        mass = _f32(1.0) if unit else masses[i]
        ny, wy, bad_y = _axis(positions[i, 1] * cells_per_length, n, stride_y, scheme)
        bad = bad or bad_y
        if ndim == 3:
            nz, wz, bad_z = _axis(positions[i, 2] * cells_per_length, n, 1, scheme)
            bad = bad or bad_z
        nonfinite += bad
        for a in range(k):
            if slab and not lo <= nx[a] < hi:
                continue
            for b in range(k):
                wab = mass * wx[a] * wy[b]
                if ndim == 2:
                    grid[nx[a] + ny[b]] += wab
                else:
                    for c in range(k):
                        grid[nx[a] + ny[b] + nz[c]] += wab * wz[c]
    return nonfinite


# The kernels (positions, masses, N, N / L, grid[, rows]) -> particles with a non-finite
# coordinate: module-level functions so that numba's disk cache keys them apart.
_jit = numba.njit(cache=True, nogil=True)


@_jit
def _ngp2d(p, m, n, c, g):
    return _assign(p, m, n, c, 0, 2, g, (0, n), False)


@_jit
def _cic2d(p, m, n, c, g):
    return _assign(p, m, n, c, 1, 2, g, (0, n), False)


@_jit
def _tsc2d(p, m, n, c, g):
    return _assign(p, m, n, c, 2, 2, g, (0, n), False)


@_jit
def _pcs2d(p, m, n, c, g):
    return _assign(p, m, n, c, 3, 2, g, (0, n), False)


@_jit
def _ngp3d(p, m, n, c, g):
    return _assign(p, m, n, c, 0, 3, g, (0, n), False)


@_jit
def _cic3d(p, m, n, c, g):
    return _assign(p, m, n, c, 1, 3, g, (0, n), False)


@_jit
def _tsc3d(p, m, n, c, g):
    return _assign(p, m, n, c, 2, 3, g, (0, n), False)


@_jit
def _pcs3d(p, m, n, c, g):
    return _assign(p, m, n, c, 3, 3, g, (0, n), False)


@_jit
def _ngp3d_slab(p, m, n, c, g, r):
    return _assign(p, m, n, c, 0, 3, g, r, True)


@_jit
def _cic3d_slab(p, m, n, c, g, r):
    return _assign(p, m, n, c, 1, 3, g, r, True)


@_jit
def _tsc3d_slab(p, m, n, c, g, r):
    return _assign(p, m, n, c, 2, 3, g, r, True)


@_jit
def _pcs3d_slab(p, m, n, c, g, r):
    return _assign(p, m, n, c, 3, 3, g, r, True)


#: (scheme name, ndim) -> whole-grid kernel (positions, masses, N, N / L, grid) -> number of
#: particles with a non-finite coordinate
KERNELS = {("NGP", 2): _ngp2d, ("CIC", 2): _cic2d, ("TSC", 2): _tsc2d, ("PCS", 2): _pcs2d,
           ("NGP", 3): _ngp3d, ("CIC", 3): _cic3d, ("TSC", 3): _tsc3d, ("PCS", 3): _pcs3d}

#: (scheme name, ndim) -> kernel of one slab of rows (positions, masses, N, N / L, grid, rows),
#: for 3D grids, whose scattered updates threads share (a 2D grid fits in the caches: one
#: thread is fast enough)
SLAB_KERNELS = {("NGP", 3): _ngp3d_slab, ("CIC", 3): _cic3d_slab, ("TSC", 3): _tsc3d_slab,
                ("PCS", 3): _pcs3d_slab}
