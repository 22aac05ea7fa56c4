"""Compiled (numba) mass-assignment loop, the fast CPU backend of :mod:`.assignment`.

Importing this module needs numba (the ``fast`` extra); :mod:`.assignment` falls back to its
TensorFlow scatter without it. A pass over the particles, each adding its k^d node weights
(k = 1, 2, 3, 4 for NGP, CIC, TSC, PCS) straight into the float32 grid, as Pylians3's C loop
does; threads that own disjoint slabs of the grid run it at once. Positions and weights are
handled in float64. Compiled on first use and cached on disk.
"""
import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def _axis(x, n, stride, scheme):
    """Nodes (times ``stride``) and weights along one axis of a position ``x`` in cell units
    (any real: wrapped periodically onto [0, n)); see :mod:`.assignment` for the rules.

    Returns ``(nodes, weights)``, two 4-tuples of which the first scheme + 1 entries are used:
    tuples stay in registers where arrays would go through memory.
    """
    if x < 0.0 or x >= n:
        x = x - n * np.floor(x / n)
    # x >= 0 from here: int() truncation is floor, and cheaper
    w0 = w1 = w2 = w3 = 0.0
    if scheme == 0 or scheme == 2:  # NGP, TSC: around the nearest node
        centre = int(x + 0.5)
        s = x - centre  # in [-1/2, 1/2)
        first = centre - (1 if scheme == 2 else 0)
        if scheme == 0:
            w0 = 1.0
        else:
            w0 = 0.5 * (0.5 - s) * (0.5 - s)
            w1 = 0.75 - s * s
            w2 = 0.5 * (0.5 + s) * (0.5 + s)
    else:  # CIC, PCS: from floor(x)
        left = int(x)
        u = x - left  # in [0, 1)
        first = left - (1 if scheme == 3 else 0)
        if scheme == 1:
            w0 = 1.0 - u
            w1 = u
        else:  # cubic B-spline
            v = 1.0 - u
            w0 = v * v * v / 6.0
            w1 = (4.0 - 6.0 * u * u + 3.0 * u * u * u) / 6.0
            w2 = (4.0 - 6.0 * v * v + 3.0 * v * v * v) / 6.0
            w3 = u * u * u / 6.0
    nodes = (_wrapped(first, n) * stride,
             _wrapped(first + 1, n) * stride if scheme > 0 else 0,
             _wrapped(first + 2, n) * stride if scheme > 1 else 0,
             _wrapped(first + 3, n) * stride if scheme > 2 else 0)
    return nodes, (w0, w1, w2, w3)


@numba.njit(cache=True, nogil=True, inline="always")
def _wrapped(node, n):
    """``node`` modulo ``n`` (node >= -n), cheaper than % for the usual node in [0, n)."""
    while node < 0:
        node += n
    while node >= n:
        node -= n
    return node


@numba.njit(cache=True, nogil=True, inline="always")
def _assign(positions, masses, grid_size, cells_per_length, scheme, ndim, grid, rows):
    """Add, in particle order, the particles' contributions to the rows ``rows[0]:rows[1]`` of
    the first axis of a flat row-major grid, in place.

    Inlined into the kernels of :data:`KERNELS` with ``scheme`` and ``ndim`` constants, so the
    node loops unroll. Threads that own disjoint row ranges can run at once (the kernels
    release the GIL): no atomics and no extra grid, and every cell sums its contributions in
    particle order whatever the number of threads.

    Args:
      positions: C-contiguous float32/float64 (n, ndim) in h^-1 Mpc.
      masses: float64 (n,) particle masses, or (0,) for unit masses.
      grid_size: N, nodes along each axis.
      cells_per_length: N / L (float).
      scheme: 0, 1, 2, 3 for NGP, CIC, TSC, PCS (nodes per axis - 1).
      ndim: 2 or 3.
      grid: float32 (N^ndim,) updated in place.
      rows: (first, stop) rows of the first axis to fill.
    """
    n = grid_size
    k = scheme + 1
    unit = masses.size == 0
    stride_x, stride_y = (n * n, n) if ndim == 3 else (n, 1)
    lo, hi = rows[0] * stride_x, rows[1] * stride_x
    for i in range(positions.shape[0]):
        nx, wx = _axis(positions[i, 0] * cells_per_length, n, stride_x, scheme)
        inside = False
        for a in range(k):
            inside = inside or lo <= nx[a] < hi
        if not inside:
            continue
        mass = 1.0 if unit else masses[i]
        ny, wy = _axis(positions[i, 1] * cells_per_length, n, stride_y, scheme)
        if ndim == 3:
            nz, wz = _axis(positions[i, 2] * cells_per_length, n, 1, scheme)
        for a in range(k):
            if not lo <= nx[a] < hi:
                continue
            for b in range(k):
                wab = mass * wx[a] * wy[b]
                if ndim == 2:
                    grid[nx[a] + ny[b]] += wab
                else:
                    for c in range(k):
                        grid[nx[a] + ny[b] + nz[c]] += wab * wz[c]


# One kernel per scheme and ndim, (positions, masses, N, N / L, grid, rows): module-level
# functions so that numba's disk cache keys them apart.
_jit = numba.njit(cache=True, nogil=True)


@_jit
def _ngp2d(p, m, n, c, g, r):
    _assign(p, m, n, c, 0, 2, g, r)


@_jit
def _cic2d(p, m, n, c, g, r):
    _assign(p, m, n, c, 1, 2, g, r)


@_jit
def _tsc2d(p, m, n, c, g, r):
    _assign(p, m, n, c, 2, 2, g, r)


@_jit
def _pcs2d(p, m, n, c, g, r):
    _assign(p, m, n, c, 3, 2, g, r)


@_jit
def _ngp3d(p, m, n, c, g, r):
    _assign(p, m, n, c, 0, 3, g, r)


@_jit
def _cic3d(p, m, n, c, g, r):
    _assign(p, m, n, c, 1, 3, g, r)


@_jit
def _tsc3d(p, m, n, c, g, r):
    _assign(p, m, n, c, 2, 3, g, r)


@_jit
def _pcs3d(p, m, n, c, g, r):
    _assign(p, m, n, c, 3, 3, g, r)


#: (scheme name, ndim) -> compiled kernel (positions, masses, N, N / L, grid, rows)
KERNELS = {("NGP", 2): _ngp2d, ("CIC", 2): _cic2d, ("TSC", 2): _tsc2d, ("PCS", 2): _pcs2d,
           ("NGP", 3): _ngp3d, ("CIC", 3): _cic3d, ("TSC", 3): _tsc3d, ("PCS", 3): _pcs3d}
