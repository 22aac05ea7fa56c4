"""Athena++ HDF5 outputs (``.athdf``): reader of uniform meshes and a writer of the same layout.

Layout (Athena++ ``src/outputs/athena_hdf5.cpp``)
  Root attributes DatasetNames (e.g. "prim" or "cons", "B"; "hydro", "user_out_var" for single
  variables), NumVariables (per dataset), VariableNames (all datasets' variables in order),
  Time, NumCycles and, with ``mesh_data=true`` (the default), RootGridSize (nx1, nx2, nx3),
  RootGridX1/X2/X3 (x_min, x_max, ratio), MeshBlockSize, NumMeshBlocks, MaxLevel. Datasets
  named by DatasetNames, shaped ``(n_vars, n_blocks, nz, ny, nx)``, ``LogicalLocations``
  ``(n_blocks, 3)`` (block index i, j, k along x1, x2, x3) and ``Levels`` ``(n_blocks,)``.

Read here: float16/32/64 data of any variable set, any meshblock layout of a uniform mesh (all
blocks at one level), with or without mesh data (without it the mesh is assembled from the
LogicalLocations and the block shape, and the box extents are unknown). Refused with the
reason: integer-coded outputs (``data_format`` u8/u16/u32/u64: codes between the input file's
vmin and vmax, which the output does not store), outputs with ghost zones (``ghost_zones=true``,
detected from MeshBlockSize against RootGridSize; a ``mesh_data=false`` file carries nothing to
detect them by), refined meshes.

Variable names of the same quantity (Athena++ ``src/outputs/outputs.cpp``): density ``rho``
(primitive) or ``dens`` (conserved); cosmic-ray energy density ``Ec`` (the two-moment ``cr``
module) or ``ecr`` (the ``crdiffusion`` module).

Resampling an N^3 cube to ``grid``^3 (:func:`resample_cube`): block averages of
(N / grid)^3 cells when grid divides N; otherwise periodic band-limited (Fourier) interpolation
at the new cell centres, which keeps the mean and every mode below both grids' Nyquist
frequency exactly (and, like any band-limited interpolation, may overshoot next to sharp
jumps, even below 0 for a positive field).
"""
import os

import h5py
import numpy as np

from tfastro.core.atomic import write_atomically
from tfastro.core.errors import UserInputError

__all__ = ["DENSITY_VARIABLES", "COSMIC_RAY_ENERGY_VARIABLES", "athdf_variables", "read_athdf",
           "first_variable", "resample_cube", "write_athdf"]

#: Athena++ names of the gas density, in order of preference (primitive, conserved).
DENSITY_VARIABLES = ("rho", "dens")

#: Athena++ names of the cosmic-ray energy density (cr module, crdiffusion module).
COSMIC_RAY_ENERGY_VARIABLES = ("Ec", "ecr")


def _decoded(names):
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _attribute(handle, name, path):
    if name not in handle.attrs:
        raise UserInputError(f"{path}: missing root attribute {name!r}; expected an "
                             "Athena++ .athdf file")
    return handle.attrs[name]


def _open(path):
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: no such Athena++ file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise UserInputError(f"{path}: not an HDF5 file ({err}); expected an Athena++ "
                             ".athdf file") from None


def _variable_locations(handle, path):
    """Variable name -> (dataset name, index in the dataset's first axis)."""
    datasets = _decoded(_attribute(handle, "DatasetNames", path))
    counts = [int(n) for n in _attribute(handle, "NumVariables", path)]
    names = _decoded(_attribute(handle, "VariableNames", path))
    if len(counts) != len(datasets) or sum(counts) != len(names):
        raise UserInputError(f"{path}: DatasetNames, NumVariables and VariableNames "
                             "do not match")
    locations, start = {}, 0
    for dataset, count in zip(datasets, counts):
        if dataset not in handle or handle[dataset].ndim != 5:
            raise UserInputError(f"{path}: no dataset {dataset!r} of shape (variables, "
                                 "blocks, nz, ny, nx) named in DatasetNames")
        _check_float(handle[dataset], dataset, path)
        for index, name in enumerate(names[start:start + count]):
            locations[name] = (dataset, index)
        start += count
    return locations


def _check_float(dataset, name, path):
    kind = dataset.dtype.kind
    if kind in "ui":
        raise UserInputError(
            f"{path}: integer-coded output (dataset {name!r} holds {dataset.dtype} codes, "
            f"Athena++ data_format={kind}{8 * dataset.dtype.itemsize}) scaled between vmin and "
            "vmax, which the file does not store; write it with data_format float32 or float64")
    if kind != "f":
        raise UserInputError(f"{path}: dataset {name!r} holds {dataset.dtype}; expected "
                             "float data")


def _xyz(values):
    return " x ".join(str(int(v)) for v in values)


def _mesh_layout(handle, path, block_zyx, n_blocks):
    """(mesh shape (nz, ny, nx), LogicalLocations (n_blocks, 3) as (i, j, k)) of a uniform
    mesh; ``block_zyx`` is the stored block shape."""
    if "Levels" not in handle or "LogicalLocations" not in handle:
        raise UserInputError(f"{path}: missing Levels or LogicalLocations datasets")
    levels = np.asarray(handle["Levels"])
    if np.unique(levels).size > 1:
        raise UserInputError(f"{path}: refined mesh (levels {sorted(set(levels.tolist()))}); "
                             "only uniform single-level meshes can be assembled")
    locations = np.asarray(handle["LogicalLocations"], dtype=np.int64)
    if n_blocks < 1 or locations.shape != (n_blocks, 3) or (locations < 0).any():
        raise UserInputError(f"{path}: LogicalLocations of shape {locations.shape}; expected "
                             f"({n_blocks}, 3) non-negative block indices of at least one block")
    block = np.asarray(block_zyx[::-1], dtype=np.int64)  # (nx1, nx2, nx3)
    per_axis = locations.max(axis=0) + 1
    if "RootGridSize" in handle.attrs:
        level = int(levels[0]) if levels.size else 0
        size = np.asarray(handle.attrs["RootGridSize"], dtype=np.int64) * 2**level
        _refuse_ghost_zones(path, size, block, per_axis)
        stated = int(handle.attrs.get("NumMeshBlocks", n_blocks))
        per_axis = np.where(size % block == 0, size // np.maximum(block, 1), 0)
    else:  # mesh_data=false: the mesh is what the blocks cover
        size, stated = block * per_axis, n_blocks
    if ((size != block * per_axis).any() or stated != n_blocks or n_blocks != np.prod(per_axis)
            or (locations >= per_axis).any()
            or len(np.unique(locations, axis=0)) != n_blocks):
        raise UserInputError(f"{path}: {n_blocks} mesh blocks of {_xyz(block)} cells (x, y, z) "
                             f"at LogicalLocations do not tile the {_xyz(size)} mesh exactly "
                             "once")
    return tuple(size[::-1].tolist()), locations


def _refuse_ghost_zones(path, size, block, per_axis):
    """UserInputError when blocks are larger than the mesh they tile by 2 g cells per block
    along every axis with more than one cell (Athena++'s ``ghost_zones=true``)."""
    excess = block * per_axis - size
    padded = size > 1
    if padded.any() and (excess[padded] > 0).all() and (excess % (2 * per_axis) == 0).all():
        ghosts = sorted(set((excess[padded] // (2 * per_axis[padded])).tolist()))
        raise UserInputError(
            f"{path}: written with ghost_zones=true (blocks of {_xyz(block)} cells (x, y, z) "
            f"carry {', '.join(map(str, ghosts))} ghost cells on each side, the mesh is "
            f"{_xyz(size)}); write the output with ghost_zones=false")


def _extents(handle):
    """((x3, x2, x1) extents, (x3, x2, x1) lower corners) from RootGridX<i>; None when absent."""
    grids = [handle.attrs.get(f"RootGridX{axis}") for axis in (3, 2, 1)]
    if any(g is None for g in grids):
        return None, None
    return (tuple(float(g[1] - g[0]) for g in grids), tuple(float(g[0]) for g in grids))


def athdf_variables(path):
    """The VariableNames of an Athena++ ``.athdf`` file, in dataset order."""
    with _open(path) as handle:
        return list(_variable_locations(handle, path))


def first_variable(path, candidates, available, what):
    """The first of ``candidates`` among ``available`` (a file's variables); UserInputError
    naming ``path``, the candidates and ``what`` they hold otherwise."""
    for name in candidates:
        if name in available:
            return name
    raise UserInputError(f"{path}: no variable {' or '.join(candidates)} for {what}; the file "
                         f"has {', '.join(available) or 'none'}")


def read_athdf(path, variables=None):
    """Assemble variables of a uniform-mesh Athena++ ``.athdf`` file into full arrays.

    Args:
      path: the ``.athdf`` file.
      variables: names among the file's VariableNames (default: all).
    Returns:
      ``(cubes, info)``: variable name -> float32 ``(nz, ny, nx)`` indexed [z, y, x] (block b
      at z-block k, y-block j, x-block i from ``LogicalLocations[b] = (i, j, k)``); info holds
      ``time``, ``cycle``, ``box`` (x3, x2, x1 extents in code length units) and ``origin``
      (their lower ends), both None without mesh data.
    """
    with _open(path) as handle:
        found = _variable_locations(handle, path)
        variables = list(found) if variables is None else list(variables)
        missing = [v for v in variables if v not in found]
        if missing:
            raise UserInputError(f"{path}: no variable {', '.join(missing)}; the file has "
                                 f"{', '.join(found)}")
        first = handle[next(iter(found.values()))[0]] if found else None
        if first is None:
            raise UserInputError(f"{path}: holds no variables")
        block = first.shape[2:]
        shape, locations = _mesh_layout(handle, path, block, first.shape[1])
        cubes = {}
        for name in variables:
            dataset, index = found[name]
            data = handle[dataset][index]
            cube = np.empty(shape, dtype=np.float32)
            for b, (i, j, k) in enumerate(locations):
                cube[k * block[0]:(k + 1) * block[0], j * block[1]:(j + 1) * block[1],
                     i * block[2]:(i + 1) * block[2]] = data[b]
            cubes[name] = cube
        box, origin = _extents(handle)
        info = {"time": float(handle.attrs.get("Time", np.nan)),
                "cycle": int(handle.attrs.get("NumCycles", -1)), "box": box, "origin": origin}
    return cubes, info


def _fourier_resample_axis(x, grid, axis):
    """Band-limited resampling of periodic cell averages along ``axis`` to ``grid`` cells.

    Output cell j is the interpolant at its centre, input-cell coordinate
    j N / grid + (N / grid - 1) / 2; modes with |k| < min(N, grid) / 2 are kept exactly, the
    Nyquist mode of the coarser grid is dropped (keeps the output real).
    """
    n = x.shape[axis]
    modes = np.moveaxis(np.fft.fft(x, axis=axis), axis, -1)
    k = np.fft.fftfreq(n, 1.0 / n)
    kept = np.abs(k) < min(n, grid) / 2.0
    shift = np.exp(2j * np.pi * k[kept] * (n / grid - 1.0) / (2.0 * n))
    out = np.zeros(modes.shape[:-1] + (grid,), dtype=complex)
    out[..., k[kept].astype(np.int64) % grid] = modes[..., kept] * shift
    return np.moveaxis(np.fft.ifft(out, axis=-1).real * (grid / n), -1, axis)


def resample_cube(cube, grid):
    """Resample a periodic cube ``(N, N, N)`` of cell values to ``(grid, grid, grid)`` float32.

    Block averages of (N / grid)^3 cells when ``grid`` divides N; otherwise band-limited
    (Fourier) interpolation at the new cell centres, which keeps the mean and every mode with
    |k| < min(N, grid) / 2 exactly. Returns ``(cube, method)``, method "none", "block" or
    "fourier".
    """
    cube = np.asarray(cube)
    n = cube.shape[0]
    if cube.ndim != 3 or len(set(cube.shape)) != 1:
        raise ValueError(f"cube: expected an (N, N, N) array, got shape {cube.shape}")
    if grid < 1:
        raise ValueError(f"grid={grid}: expected a positive number of cells")
    if grid == n:
        return cube.astype(np.float32), "none"
    if n % grid == 0:
        f = n // grid
        blocks = cube.reshape(grid, f, grid, f, grid, f).astype(np.float64)
        return blocks.mean(axis=(1, 3, 5)).astype(np.float32), "block"
    out = cube.astype(np.float64)
    for axis in range(3):
        out = _fourier_resample_axis(out, grid, axis)
    return out.astype(np.float32), "fourier"


def _blocks(cube, block, locations, ghosts):
    """``(n_blocks, nz + 2g, ny + 2g, nx + 2g)`` blocks of a periodic cube at ``locations``."""
    padded = np.pad(cube, ghosts, mode="wrap")
    return np.stack([padded[k * block[0]:(k + 1) * block[0] + 2 * ghosts,
                            j * block[1]:(j + 1) * block[1] + 2 * ghosts,
                            i * block[2]:(i + 1) * block[2] + 2 * ghosts]
                     for i, j, k in locations])


def write_athdf(path, datasets, *, block, time=0.0, cycle=0, box=((-0.5, 0.5),) * 3,
                dtype=np.float32, mesh_data=True, ghost_zones=0, data_format=None,
                vmin=0.0, vmax=1.0, locations=None, levels=None, seed=0):
    """Write cubes in the Athena++ ``.athdf`` layout (for tests and synthetic series).

    Args:
      datasets: dataset name (e.g. "prim", "cons", "B") -> {variable name: ``(nz, ny, nx)``
        cube [z, y, x]}, in file order.
      block: meshblock shape ``(nz, ny, nx)`` dividing the mesh.
      time, cycle: the Time and NumCycles attributes.
      box: ``((x1_min, x1_max), (x2_min, x2_max), (x3_min, x3_max))`` (RootGridX1..3).
      dtype: float type of the data (Athena++ ``data_format`` float32 / float64).
      mesh_data: write RootGridSize, RootGridX<i>, MeshBlockSize, NumMeshBlocks, MaxLevel.
      ghost_zones: ghost cells around each block (periodic neighbours), as ``ghost_zones=true``
        with NGHOST = this; MeshBlockSize then counts them, as Athena++ writes it.
      data_format: "u8", "u16", "u32" or "u64" writes integer codes of
        (x - vmin) / (vmax - vmin), clipped to [0, 1], as Athena++ does.
      locations: LogicalLocations (default: every block once, stored in a shuffled order
        drawn from ``seed``); levels: Levels (default zeros).
    Returns:
      ``path``.
    """
    cubes = [c for variables in datasets.values() for c in variables.values()]
    shape = np.asarray(cubes[0].shape)
    per_axis = (shape // np.asarray(block))[::-1]  # blocks along x1, x2, x3
    if locations is None:
        locations = [(i, j, k) for k in range(per_axis[2]) for j in range(per_axis[1])
                     for i in range(per_axis[0])]
        locations = [locations[o] for o in np.random.default_rng(seed).permutation(
            len(locations))]
    locations = np.asarray(locations, dtype=np.int64)
    if data_format is not None:
        code = np.dtype(data_format.replace("u", "uint"))
        top = np.iinfo(code).max

        def encode(blocks):
            scaled = (np.asarray(blocks, np.float64) - vmin) * top / (vmax - vmin)
            return np.clip(scaled, 0, top).astype(code)
    else:
        def encode(blocks):
            return np.asarray(blocks, dtype=dtype)
    names = [n for variables in datasets.values() for n in variables]
    stored_block = np.asarray(block) + 2 * ghost_zones

    def write(partial):
        with h5py.File(partial, "w") as handle:
            handle.attrs["NumCycles"] = np.int32(cycle)
            handle.attrs["Time"] = np.float64(time)
            if mesh_data:
                handle.attrs["Coordinates"] = np.bytes_("cartesian")
                for axis, (low, high) in enumerate(box, start=1):
                    handle.attrs[f"RootGridX{axis}"] = np.array([low, high, 1.0])
                handle.attrs["RootGridSize"] = shape[::-1].astype(np.int32)
                handle.attrs["NumMeshBlocks"] = np.int32(len(locations))
                handle.attrs["MeshBlockSize"] = stored_block[::-1].astype(np.int32)
                handle.attrs["MaxLevel"] = np.int32(0)
            handle.attrs["NumVariables"] = np.array([len(v) for v in datasets.values()], np.int32)
            handle.attrs["DatasetNames"] = np.array([d.encode() for d in datasets])
            handle.attrs["VariableNames"] = np.array([n.encode() for n in names])
            for dataset, variables in datasets.items():
                handle[dataset] = np.stack([encode(_blocks(c, block, locations, ghost_zones))
                                            for c in variables.values()])
            handle["Levels"] = (np.zeros(len(locations), np.int32) if levels is None
                                else np.asarray(levels, np.int32))
            handle["LogicalLocations"] = locations
    return write_atomically(path, write)
