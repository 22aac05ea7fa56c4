"""Mass assignment of particles to periodic 2D/3D grids (NGP, CIC, TSC, PCS), Pylians3 conventions.

Grid nodes sit at the cell corners, node i at position i L/N (no half-cell shift, as in
Pylians3 ``MAS_library``). With x = pos N / L the position in cell units, along each axis:

- NGP: all the mass to node int(x + 1/2) (round half up);
- CIC: node floor(x) gets 1 - u and node floor(x) + 1 gets u, with u = x - floor(x);
- TSC: the nearest node c = floor(x + 1/2) gets 3/4 - s^2, nodes c -+ 1 get (1/2 -+ s)^2 / 2,
  with s = x - c in [-1/2, 1/2);
- PCS: nodes floor(x) - 1 .. floor(x) + 2 get the cubic B-spline of their distance r to x,
  (4 - 6 r^2 + 3 r^3) / 6 for r < 1 and (2 - r)^3 / 6 for 1 <= r < 2;

node indices are taken modulo N, so positions at or slightly beyond the box edges wrap
periodically. In d dimensions a particle's weight on a node is the product of its per-axis
weights; every scheme conserves the total mass.

Round-off: x, its node and the offset from the node are computed in float64 (Pylians uses
float32, whose error in x grows to ~1e-5 cells on a 256^3 grid), so a particle on a node or
a cell edge is placed exactly; the weights, masses and grid are float32, as Pylians'.

Backends (the same results to float32 round-off):
- ``"numba"`` (default when numba is installed, the ``fast`` extra): one compiled pass over the
  particles adding into the grid in place (:mod:`.assignment_kernels`), Pylians' algorithm;
- ``"tensorflow"`` (default otherwise; also runs on a GPU): particles go through in chunks,
  scattered by XLA into grids held in variables that are updated in place. XLA's CPU scatter is
  a serial loop, so on a CPU a chunk is shared among up to one scatter per core, each into its
  own grid, the grids summed at the end; the extra grids stay under ``_EXTRA_GRIDS_BYTES``
  (256^3 on 2 cores: 2 scatters, 64 MiB more; 512^3: 1 scatter).
"""
import concurrent.futures
import functools
import os

import numpy as np

from tfastro.core.errors import UserInputError
from tfastro.fields.checks import all_finite, check_real_values

try:
    from tfastro.fields import assignment_kernels
except ImportError:  # numba is an optional extra
    assignment_kernels = None

MAS_SCHEMES = ("NGP", "CIC", "TSC", "PCS")
BACKENDS = ("numba", "tensorflow")


_EXTRA_GRIDS_BYTES = 256 * 2**20  # memory for the extra grids of concurrent scatters

_THREADED_UPDATES = 2**23  # node updates of a chunk worth a thread per core (numba backend)


def _axis_nodes_and_weights(x, grid_size, scheme):
    """Per-axis nodes of each particle: its reference node, the index steps to its k nodes
    (periodic), and their weights.

    Args:
      x: float64 (n, d) positions in cell units.
    Returns:
      ``(node, steps, weights)``: int32 (n, d) reference node in [0, N) (the nearest node for
      NGP/TSC, floor(x) for CIC/PCS), int32 (n, d, k) steps from it to the k = 1, 2, 3, 4 nodes
      (NGP, CIC, TSC, PCS) wrapped around the box, float32 (n, d, k) their weights.
    """
    import tensorflow as tf
    x = x - grid_size * tf.floor(x / grid_size)  # periodic wrap into [0, N]
    node = tf.floor(x) if scheme in ("CIC", "PCS") else tf.floor(x + 0.5)
    s = tf.cast(x - node, tf.float32)  # CIC, PCS: in [0, 1); NGP, TSC: in [-1/2, 1/2)
    node = tf.math.floormod(tf.cast(node, tf.int32), grid_size)
    first = {"NGP": 0, "CIC": 0, "TSC": -1, "PCS": -1}[scheme]
    offsets = tf.range(first, first + MAS_SCHEMES.index(scheme) + 1)
    steps = tf.math.floormod(node[..., None] + offsets, grid_size) - node[..., None]
    if scheme == "NGP":
        weights = [tf.ones_like(s)]
    elif scheme == "CIC":
        weights = [1.0 - s, s]
    elif scheme == "TSC":
        weights = [0.5 * tf.square(0.5 - s), 0.75 - tf.square(s), 0.5 * tf.square(0.5 + s)]
    else:  # PCS, cubic B-spline
        v = 1.0 - s
        weights = [v**3 / 6.0, (4.0 - 6.0 * s**2 + 3.0 * s**3) / 6.0,
                   (4.0 - 6.0 * v**2 + 3.0 * v**3) / 6.0, s**3 / 6.0]
    return node, steps, tf.stack(weights, axis=-1)


@functools.cache
def _compiled_add_chunk():
    """``_add_chunk`` compiled by XLA (built on first use, so importing needs no TensorFlow)."""
    import tensorflow as tf
    return tf.function(_add_chunk, jit_compile=True)


def _add_chunk(grids, positions, weights, cells_per_length, grid_size, scheme):
    """Add the mass of one chunk of particles to the flat grids (XLA-compiled).

    ``grids``: float32 (N^d,) variables updated in place, a contiguous share of the chunk
    scattered into each (independent scatters run on separate cores); ``positions``: float
    (n, d) in h^-1 Mpc; ``weights``: float32 (n,); ``cells_per_length``: float64 scalar N / L.
    """
    import tensorflow as tf
    ndim = positions.shape[-1]
    node, steps, node_weights = _axis_nodes_and_weights(
        tf.cast(positions, tf.float64) * cells_per_length, grid_size, scheme)
    index_dtype = tf.int64 if grid_size**ndim >= 2**31 else tf.int32
    strides = tf.constant([grid_size**(ndim - 1 - axis) for axis in range(ndim)], index_dtype)
    base = tf.reduce_sum(tf.cast(node, index_dtype) * strides, axis=1)
    steps = tf.cast(steps, index_dtype) * strides[:, None]
    # all k^d nodes (n, k, ..., k): row-major flat index and product of the axis weights
    flat, mass = base[:, None] + steps[:, 0], weights[:, None] * node_weights[:, 0]
    for axis in range(1, ndim):
        shape = [-1] + [1] * axis + [steps.shape[-1]]
        flat = flat[..., None] + tf.reshape(steps[:, axis], shape)
        mass = mass[..., None] * tf.reshape(node_weights[:, axis], shape)
    # a particle's nodes stay next to each other in the scatter (cache locality)
    flat, mass = tf.reshape(flat, [-1, 1]), tf.reshape(mass, [-1])
    bounds = [len(mass) * part // len(grids) for part in range(len(grids) + 1)]
    for grid, start, stop in zip(grids, bounds, bounds[1:]):
        grid.scatter_nd_add(flat[start:stop], mass[start:stop])


def _scatter_parts(grid_cells):
    """Concurrent scatters per chunk: one per CPU core (1 on a GPU, whose scatter is parallel),
    with at most as many extra float32 grids of ``grid_cells`` as fit in
    ``_EXTRA_GRIDS_BYTES``."""
    import tensorflow as tf
    if tf.config.list_logical_devices("GPU"):
        return 1
    return max(1, min(_cores(), 1 + _EXTRA_GRIDS_BYTES // (4 * grid_cells)))


def mass_assignment(positions, grid_size, box_size, scheme="CIC", weights=None, grid=None,
                    chunk_size=2**20, backend=None, allow_nonfinite=False):
    """Mass of particles on a periodic grid with nodes at the cell corners (Pylians3 ``MA``).

    Args:
      positions: real (n, 2) or (n, 3) particle positions in h^-1 Mpc, in [0, box_size) (values
        at or slightly beyond the edges wrap periodically), finite; numpy array or tensor.
      grid_size: N, grid nodes along each axis.
      box_size: L, the side of the periodic box in h^-1 Mpc.
      scheme: "NGP", "CIC", "TSC" or "PCS" (see the module docstring for the weights).
      weights: optional real (n,) particle masses; 1 per particle by default.
      grid: optional existing (N,)*d grid (numpy array or tensor) the assignment is added to,
        to assign many particles chunk by chunk into one grid; it is not modified in place.
      chunk_size: particles checked and assigned per step. The tensorflow backend holds their
        node indices and weights, about 8 (k^d + d k) bytes per particle, k = 1, 2, 3, 4 for
        NGP, CIC, TSC, PCS (112 MiB for a CIC chunk of 2^20 in 3D); larger chunks gain no speed.
      backend: "numba" or "tensorflow" (see the module docstring); by default numba when it is
        installed, else tensorflow.
      allow_nonfinite: let NaN or inf ``weights`` and ``grid`` values through into the grid
        (positions must be finite whatever this says: such a particle has no node).
    Returns:
      float32 numpy array of shape (N,)*d: ``grid`` (or zeros) plus the assigned mass.
    Raises:
      UserInputError: naming the argument, for bad shapes, values or settings.
    """
    if scheme not in MAS_SCHEMES:
        raise UserInputError(f"scheme={scheme!r}: expected one of {', '.join(MAS_SCHEMES)}")
    backend = _checked_backend(backend)
    if int(grid_size) != grid_size or grid_size < 1:
        raise UserInputError(f"grid_size must be a positive integer, got {grid_size!r}")
    grid_size = int(grid_size)
    if not (np.isfinite(box_size) and box_size > 0):
        raise UserInputError(f"box_size must be a positive number (h^-1 Mpc), got {box_size!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise UserInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    positions = _array_or_tensor(positions)  # converted chunk by chunk: no copy of the whole
    if len(positions.shape) != 2 or positions.shape[-1] not in (2, 3):
        raise UserInputError(f"positions must have shape (n, 2) or (n, 3), got "
                             f"{tuple(positions.shape)}")
    ndim, n_particles = positions.shape[-1], positions.shape[0]
    if weights is not None:
        weights = _array_or_tensor(weights)
        if tuple(weights.shape) != (n_particles,):
            raise UserInputError(f"weights must have shape ({n_particles},) like positions, "
                                 f"got {tuple(weights.shape)}")
    shape = (grid_size,) * ndim
    if grid is not None:
        grid = check_real_values(grid, "grid", allow_nonfinite)
        if tuple(grid.shape) != shape:
            raise UserInputError(f"grid must have shape {shape}, got {tuple(grid.shape)}")
    chunks = _checked_chunks(positions, weights, int(chunk_size), allow_nonfinite,
                             finite_positions=backend != "numba")
    if backend == "numba":
        return _assign_numba(chunks, shape, grid_size / float(box_size), scheme, grid)
    return _assign_tensorflow(chunks, shape, grid_size / float(box_size), scheme, grid,
                              int(chunk_size))


def _checked_backend(backend):
    """The backend to use: ``backend``, or the default; UserInputError if unavailable."""
    if backend is None:
        return "tensorflow" if assignment_kernels is None else "numba"
    if backend not in BACKENDS:
        raise UserInputError(f"backend={backend!r}: expected None or one of "
                             f"{', '.join(BACKENDS)}")
    if backend == "numba" and assignment_kernels is None:
        raise UserInputError("backend='numba': numba is not installed (pip install "
                             "tfastro[fast]); pass backend=None to use tensorflow")
    return backend


def _array_or_tensor(values):
    import tensorflow as tf
    return values if tf.is_tensor(values) else np.asarray(values)


def _checked_chunks(positions, weights, chunk_size, allow_nonfinite, finite_positions=True):
    """Yield ``(positions, weights or None)`` chunks of at most ``chunk_size`` particles,
    each checked: real positions, finite (unless ``finite_positions`` is False: the numba
    kernel finds them); real weights, finite unless allowed."""
    for start in range(0, positions.shape[0], chunk_size):
        chunk = check_real_values(positions[start:start + chunk_size], "positions",
                                  allow_nonfinite=True)
        if finite_positions and not all_finite(chunk):
            raise _nonfinite_positions()
        chunk_weights = None if weights is None else check_real_values(
            weights[start:start + chunk_size], "weights", allow_nonfinite)
        yield chunk, chunk_weights


def _nonfinite_positions():
    return UserInputError("positions: expected finite values, found NaN or inf (such a "
                          "particle has no node, whatever allow_nonfinite says)")


def _assign_numba(chunks, shape, cells_per_length, scheme, grid):
    """The numba backend of :func:`mass_assignment`; float32 numpy grid of ``shape``.

    A chunk of at least ``_THREADED_UPDATES`` node updates on a 3D grid (k^3 = 1, 8, 27, 64
    a particle for NGP, CIC, TSC, PCS: the default chunk of 2^20 particles for all but NGP)
    goes to one thread per core, each filling its own slab of rows of the first axis: the
    calling thread takes the first slab, threads of a pool kept for the process the others.
    The scattered updates of a large grid wait on memory, which threads overlap; every thread
    scans all the particles' first coordinate, and the first touches of a fresh grid's pages
    are taken in turn, which costs more than it saves for smaller chunks (CIC of 10^6
    particles onto 256^3: 0.12 s on two threads, 0.05 s on one) and 2D grids (held in the
    caches): those stay on the calling thread, in a kernel without the row test.
    """
    out = np.zeros(int(np.prod(shape)), np.float32)
    if grid is not None:
        out[:] = np.ravel(np.asarray(grid))  # numpy array or tensor
    updates_per_particle = (MAS_SCHEMES.index(scheme) + 1) ** len(shape)
    slab_kernel = assignment_kernels.SLAB_KERNELS.get((scheme, len(shape)))
    no_masses = np.zeros(0, np.float32)
    for chunk, chunk_weights in chunks:
        chunk = np.asarray(chunk)
        if chunk.dtype not in (np.float32, np.float64):
            chunk = chunk.astype(np.float64)
        chunk = np.ascontiguousarray(chunk)
        masses = no_masses if chunk_weights is None else np.asarray(chunk_weights, np.float32)
        arguments = (chunk, masses, shape[0], cells_per_length, out)
        threads = min(_cores(), shape[0])
        if slab_kernel is None or threads == 1 \
                or len(chunk) * updates_per_particle < _THREADED_UPDATES:
            nonfinite = assignment_kernels.KERNELS[scheme, len(shape)](*arguments)
        else:
            slabs = [(t * shape[0] // threads, (t + 1) * shape[0] // threads)
                     for t in range(threads)]
            others = [_slab_pool().submit(slab_kernel, *arguments, rows) for rows in slabs[1:]]
            nonfinite = slab_kernel(*arguments, slabs[0])
            nonfinite += sum(other.result() for other in others)
        if nonfinite:
            raise _nonfinite_positions()
    return out.reshape(shape)


@functools.cache
def _slab_pool():
    """Threads for the slabs of the numba backend beyond the caller's (started once)."""
    return concurrent.futures.ThreadPoolExecutor(max(1, _cores() - 1),
                                                 thread_name_prefix="mass_assignment")


def _cores():
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _assign_tensorflow(chunks, shape, cells_per_length, scheme, grid, chunk_size):
    """The tensorflow backend of :func:`mass_assignment`; float32 numpy grid of ``shape``."""
    import tensorflow as tf
    cells = int(np.prod(shape))
    # summed in place into variables (the caller's ``grid`` stays as it is), one per scatter
    grids = [tf.Variable(tf.zeros(cells, tf.float32), trainable=False)
             for _ in range(_scatter_parts(cells))]
    if grid is not None:
        grids[0].assign(tf.reshape(tf.cast(grid, tf.float32), [-1]))
    cells_per_length = tf.constant(cells_per_length, tf.float64)
    for chunk, chunk_weights in chunks:
        chunk = tf.convert_to_tensor(chunk)
        if not chunk.dtype.is_floating:
            chunk = tf.cast(chunk, tf.float64)
        n_chunk = chunk.shape[0]
        if chunk_weights is None:
            chunk_weights = tf.ones(n_chunk, tf.float32)
        else:
            chunk_weights = tf.cast(chunk_weights, tf.float32)
        # pad to a power of two (zero-mass particles at the origin) to bound XLA recompilations
        padding = _padded_length(n_chunk, chunk_size) - n_chunk
        if padding:
            chunk = tf.pad(chunk, [[0, padding], [0, 0]])
            chunk_weights = tf.pad(chunk_weights, [[0, padding]])
        _compiled_add_chunk()(grids, chunk, chunk_weights, cells_per_length, shape[0], scheme)
    return tf.reshape(tf.add_n([g.read_value() for g in grids]), shape).numpy()


def _padded_length(n, chunk_size):
    """Number of particles a chunk of ``n`` is padded to: a power of two, at most chunk_size."""
    return min(chunk_size, max(1024, 1 << (n - 1).bit_length()))
