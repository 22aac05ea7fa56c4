"""IllustrisTNG snapshots and group catalogues (HDF5), their CIC mass grids, and field files.

Layout of the real files (positions in ckpc/h, masses in 10^10 Msun/h):

``snapdir_NNN/snap_NNN.<i>.hdf5``
    group ``Header`` with attributes BoxSize (ckpc/h; 75000 for TNG100), MassTable (6,)
    (10^10 Msun/h per particle of each type; dark matter is type 1), NumPart_ThisFile (6,),
    NumPart_Total (6,) (+ NumPart_Total_HighWord); dataset ``PartType1/Coordinates`` (n, 3).
``groups_NNN/fof_subhalo_tab_NNN.<i>.hdf5``
    ``Header`` (BoxSize, Ngroups_ThisFile, Nsubgroups_ThisFile, ...), ``Group/GroupMass``,
    ``Group/GroupNsubs``, ``Group/GroupFirstSub`` (global index of a group's first, central,
    subhalo; -1 if none), ``Subhalo/SubhaloPos`` (n, 3), ``Subhalo/SubhaloMass``,
    ``Subhalo/SubhaloMassType`` (n, 6), ``Subhalo/SubhaloGrNr`` (global index of the host group).
    Groups and subhalos are split over the chunks in order; a chunk may hold none (its
    datasets then are absent or empty).

Mass grids: Cloud-in-Cell (periodic, mass-conserving; :func:`tfastro.fields.assignment`)
of the particles or subhalos onto an N^3 grid of the box, nodes at i L / N, mass per voxel in
Msun/h (float32). Particles are streamed chunk by chunk. ``region=((x0, x1), (y0, y1), (z0, z1))``
(voxel indices of the full grid, x1 exclusive) returns only that block: particles whose CIC
cells miss the block are dropped, the rest assigned into the block plus a one-voxel margin that
is then cut off. Every voxel of the block gets exactly the mass it has in the full grid (the
weights that fall on the margin belong to voxels outside the block); an axis spanning the whole
grid stays periodic. Memory: a cube of (largest block side + 2)^3 float32.

Transforms: ``log_mass(M) = log10(1 + M)``, standardised with fixed (mean, std) per field
(``STANDARDISATION``, those of the dm2gal paper) or statistics of a training region.

Problems with the files are reported as :class:`tfastro.core.errors.UserInputError` naming the file.
"""
import dataclasses
import glob
import os

import h5py
import numpy as np

from tfastro.core.atomic import PARTIAL, save_npy, write_atomically
from tfastro.core.errors import UserInputError

__all__ = ["MASS_UNIT", "STANDARDISATION", "Subhalos", "Groups", "snapshot_files", "read_header",
           "iter_particle_positions", "dark_matter_particle_mass", "read_subhalos", "read_groups",
           "cic_mass_grid", "dark_matter_grid", "subhalo_mass_grid", "stellar_mass_grid",
           "log_mass", "inverse_log_mass", "standardise", "destandardise", "field_statistics",
           "save_field", "load_field"]


#: Mass unit of the TNG files in Msun/h.
MASS_UNIT = 1e10


#: Index of dark matter in MassTable / NumPart and of stars in SubhaloMassType.
DARK_MATTER_TYPE, STAR_TYPE = 1, 4


#: (mean, std) of log10(1 + M) (M in Msun/h per voxel, 2048^3 TNG100 grids) of each field.
STANDARDISATION = {"dark_matter": (5.20168457, 3.11864378),
                   "subhalo": (0.41816423, 1.73515605),
                   "stellar": (8.750728, 0.60161114)}


_FIELD_EXTENSIONS = (".npy", ".h5", ".hdf5")


def snapshot_files(path):
    """Sorted chunk files of a snapshot or group catalogue.

    Args:
      path: a folder holding ``*.<i>.hdf5`` chunks (e.g. ``snapdir_099``), one ``.hdf5`` file,
        or a sequence of files (returned as they are).
    Returns:
      list of paths sorted by chunk number i.
    """
    if not isinstance(path, (str, os.PathLike)):
        files = [os.fspath(p) for p in path]
        if not files:
            raise UserInputError("snapshot files: expected at least one .hdf5 file, got none")
        return files
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    files = [f for f in glob.glob(os.path.join(path, "*.hdf5"))
             if not PARTIAL.search(f)]  # not what an interrupted write left
    if not files:
        raise UserInputError(f"{path}: expected a folder of chunk files '*.<i>.hdf5' or an "
                             ".hdf5 file; found none")

    def chunk_number(name):
        stem = os.path.basename(name)[:-len(".hdf5")]
        suffix = stem.rsplit(".", 1)[-1]
        return (int(suffix) if suffix.isdigit() else -1, stem)
    return sorted(files, key=chunk_number)


def _header(handle):
    if "Header" not in handle:
        raise UserInputError(f"{handle.filename}: no 'Header' group; expected an IllustrisTNG "
                             "snapshot or group catalogue file")
    return handle["Header"].attrs


def _attribute(handle, name):
    attrs = _header(handle)
    if name not in attrs:
        raise UserInputError(f"{handle.filename}: Header has no attribute '{name}'")
    return attrs[name]


def read_header(path):
    """Attributes of the ``Header`` of a file (the first chunk of a folder) as a dict."""
    with h5py.File(snapshot_files(path)[0], "r") as handle:
        return {key: value for key, value in _header(handle).items()}


def _box_size(handle):
    """BoxSize in ckpc/h; UserInputError if it is not a positive number."""
    box = float(np.asarray(_attribute(handle, "BoxSize")))
    if not (np.isfinite(box) and box > 0):
        raise UserInputError(f"{handle.filename}: Header BoxSize = {box}; expected the box side "
                             "in ckpc/h (75000 for TNG100)")
    return box


def _check_positions(positions, box, filename, dataset):
    """Positions must lie in [0, BoxSize] ckpc/h (a Mpc/h BoxSize shows up here)."""
    if not len(positions):
        return
    low, high = float(positions.min()), float(positions.max())
    if low < 0 or high > box or not np.isfinite(positions).all():
        hint = (" (BoxSize looks like Mpc/h)" if box < 1000 and high > box else "")
        raise UserInputError(f"{filename}: {dataset} spans [{low:.6g}, {high:.6g}] outside "
                             f"[0, BoxSize = {box:g}]{hint}; expected positions and BoxSize "
                             "both in ckpc/h")


def _dataset(handle, name, count):
    """Dataset ``name`` with ``count`` rows; absent or empty is fine when count is 0."""
    if name not in handle:
        if count == 0:
            return None
        raise UserInputError(f"{handle.filename}: missing dataset '{name}' (the Header says "
                             f"the file holds {count} objects)")
    data = handle[name]
    if data.shape[0] != count:
        raise UserInputError(f"{handle.filename}: dataset '{name}' has {data.shape[0]} rows; "
                             f"expected {count} from the Header")
    return data


def _count(handle, attribute, dataset):
    """Objects in this file: the Header attribute, else the dataset length (0 if absent)."""
    attrs = _header(handle)
    if attribute in attrs:
        value = np.asarray(attrs[attribute])
        return int(value[DARK_MATTER_TYPE] if value.ndim else value)
    if dataset in handle:
        return handle[dataset].shape[0]
    return 0


def iter_particle_positions(files, chunk_size=2**20):
    """Dark-matter particle positions of a snapshot, streamed.

    Args:
      files: folder, file or list of chunk files (see :func:`snapshot_files`).
      chunk_size: most particles per yielded array (large files are read in slices).
    Yields:
      float64 (n, 3) positions in ckpc/h, in [0, BoxSize].
    """
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    name = "PartType1/Coordinates"
    for path in snapshot_files(files):
        with h5py.File(path, "r") as handle:
            box = _box_size(handle)
            count = _count(handle, "NumPart_ThisFile", name)
            data = _dataset(handle, name, count)
            if data is None:
                continue
            if data.ndim != 2 or data.shape[1] != 3:
                raise UserInputError(f"{path}: dataset '{name}' has shape {data.shape}; "
                                     "expected (n, 3)")
            for start in range(0, count, int(chunk_size)):
                positions = np.asarray(data[start:start + int(chunk_size)], dtype=np.float64)
                _check_positions(positions, box, path, name)
                yield positions


def dark_matter_particle_mass(files):
    """Mass of one dark-matter particle in Msun/h (MassTable[1] x 1e10)."""
    path = snapshot_files(files)[0]
    with h5py.File(path, "r") as handle:
        table = np.asarray(_attribute(handle, "MassTable"), dtype=np.float64)
    if table.shape != (6,) or not table[DARK_MATTER_TYPE] > 0:
        raise UserInputError(f"{path}: Header MassTable = {table}; expected 6 masses with a "
                             "positive dark-matter (type 1) particle mass in 10^10 Msun/h")
    return table[DARK_MATTER_TYPE] * MASS_UNIT


@dataclasses.dataclass
class Groups:
    """FoF groups of a catalogue (n groups).

    Attributes:
      mass: float64 (n,) GroupMass in Msun/h.
      n_subhalos: int64 (n,) GroupNsubs.
      first_subhalo: int64 (n,) GroupFirstSub, the global index of the central (-1: none).
    """

    mass: np.ndarray
    n_subhalos: np.ndarray
    first_subhalo: np.ndarray


@dataclasses.dataclass
class Subhalos:
    """Subhalos of a catalogue (n subhalos), in catalogue order.

    Attributes:
      positions: float64 (n, 3) SubhaloPos in ckpc/h.
      mass: float64 (n,) SubhaloMass in Msun/h.
      mass_type: float64 (n, 6) SubhaloMassType in Msun/h (column 4: stars).
      group: int64 (n,) SubhaloGrNr, index of the host group.
      is_central: bool (n,) the subhalo is its group's GroupFirstSub.
      host_mass: float64 (n,) GroupMass of the host group in Msun/h.
      box_size: BoxSize in ckpc/h.
    """

    positions: np.ndarray
    mass: np.ndarray
    mass_type: np.ndarray
    group: np.ndarray
    is_central: np.ndarray
    host_mass: np.ndarray
    box_size: float

    @property
    def stellar_mass(self):
        """float64 (n,) stellar mass (SubhaloMassType[:, 4]) in Msun/h."""
        return self.mass_type[:, STAR_TYPE]


def _read_table(files, count_attribute, names, shapes):
    """Concatenate datasets ``names`` (with trailing shapes) over the chunks of a catalogue."""
    columns = {name: [] for name in names}
    box = None
    for path in snapshot_files(files):
        with h5py.File(path, "r") as handle:
            box = _box_size(handle)
            count = _count(handle, count_attribute, names[0])
            for name, shape in zip(names, shapes):
                data = _dataset(handle, name, count)
                if data is None:
                    continue
                if data.shape[1:] != shape:
                    expected = ", ".join(("n",) + tuple(map(str, shape)))
                    raise UserInputError(f"{path}: dataset '{name}' has shape {data.shape}; "
                                         f"expected ({expected})")
                values = np.asarray(data[...])
                if name == "Subhalo/SubhaloPos":
                    _check_positions(values, box, path, name)
                columns[name].append(values)
    return {name: (np.concatenate(columns[name]) if columns[name]
                   else np.zeros((0,) + shape)) for name, shape in zip(names, shapes)}, box


def read_groups(files):
    """FoF groups of a group catalogue (folder, file or list of chunks) as :class:`Groups`."""
    names = ("Group/GroupMass", "Group/GroupNsubs", "Group/GroupFirstSub")
    table, _ = _read_table(files, "Ngroups_ThisFile", names, ((), (), ()))
    return Groups(mass=table[names[0]].astype(np.float64) * MASS_UNIT,
                  n_subhalos=table[names[1]].astype(np.int64),
                  first_subhalo=table[names[2]].astype(np.int64))


def read_subhalos(files):
    """Subhalos of a group catalogue (folder, file or list of chunks) as :class:`Subhalos`.

    A subhalo is central when its index equals GroupFirstSub of its group (SubhaloGrNr).
    """
    names = ("Subhalo/SubhaloPos", "Subhalo/SubhaloMass", "Subhalo/SubhaloMassType",
             "Subhalo/SubhaloGrNr")
    table, box = _read_table(files, "Nsubgroups_ThisFile", names, ((3,), (), (6,), ()))
    groups = read_groups(files)
    group = table["Subhalo/SubhaloGrNr"].astype(np.int64)
    if len(group) and (group.min() < 0 or group.max() >= len(groups.mass)):
        raise UserInputError(f"{snapshot_files(files)[0]}: Subhalo/SubhaloGrNr outside [0, "
                             f"{len(groups.mass)}); expected indices of the catalogue's groups")
    return Subhalos(positions=table["Subhalo/SubhaloPos"].astype(np.float64),
                    mass=table["Subhalo/SubhaloMass"].astype(np.float64) * MASS_UNIT,
                    mass_type=table["Subhalo/SubhaloMassType"].astype(np.float64) * MASS_UNIT,
                    group=group,
                    is_central=groups.first_subhalo[group] == np.arange(len(group)),
                    host_mass=groups.mass[group],
                    box_size=box)


def _check_region(region, grid_size):
    """((x0, x1), (y0, y1), (z0, z1)) as an int (3, 2) array; the full grid if None."""
    if region is None:
        return np.array([[0, grid_size]] * 3)
    bounds = np.asarray(region)
    if (bounds.shape != (3, 2) or not np.array_equal(bounds, np.round(bounds))
            or (bounds[:, 0] < 0).any() or (bounds[:, 1] > grid_size).any()
            or (bounds[:, 1] <= bounds[:, 0]).any()):
        raise ValueError(f"region={region!r}: expected ((x0, x1), (y0, y1), (z0, z1)) with "
                         f"0 <= start < stop <= grid_size = {grid_size}")
    return bounds.astype(np.int64)


def _block_cells(positions, box_size, grid_size, bounds):
    """Positions relative to the block's lower margin in cell units, and the mask of those
    whose two CIC cells per axis touch the block (floor in [x0 - 1, x1 - 1], periodic)."""
    cells = np.asarray(positions, dtype=np.float64) * grid_size / box_size
    relative = np.mod(cells - (bounds[:, 0] - 1), grid_size)
    keep = np.all(relative < bounds[:, 1] - bounds[:, 0] + 1, axis=1)
    return relative, keep


def _fold_periodic_margins(grid, extents, periodic):
    """Add the margins of axes spanning the whole grid back onto the opposite faces."""
    for axis in np.flatnonzero(periodic):
        n = extents[axis]
        moved = np.moveaxis(grid, axis, 0)
        moved[n] += moved[0]
        moved[1] += moved[n + 1]
    return grid


def cic_mass_grid(chunks, box_size, grid_size, region=None, batch_size=2**24,
                  chunk_size=2**20):
    """CIC mass grid of a stream of (positions, masses) chunks, or one block of it.

    Args:
      chunks: iterable of ``(positions, masses)``: float (n, 3) in the units of box_size
        (ckpc/h), masses (n,) in Msun/h or a scalar shared by the chunk.
      box_size: periodic box side (ckpc/h).
      grid_size: N voxels per side of the full grid.
      region: optional ((x0, x1), (y0, y1), (z0, z1)) voxel block of the full grid (see the
        module docstring); the full grid by default.
      batch_size: kept particles gathered before each call of ``mass_assignment`` (each call
        copies the grid once).
      chunk_size: particles per step inside ``mass_assignment``.
    Returns:
      float32 (x1 - x0, y1 - y0, z1 - z0) mass per voxel, equal to that block of the full grid.
    """
    from tfastro.fields.assignment import mass_assignment

    if int(grid_size) != grid_size or grid_size < 1:
        raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}")
    grid_size = int(grid_size)
    bounds = _check_region(region, grid_size)
    extents = bounds[:, 1] - bounds[:, 0]
    side = int(extents.max()) + 2  # block + one margin voxel on each side, never wrapped
    grid, pending = None, []

    def assign(grid, pending):
        positions = np.concatenate([p for p, _ in pending])
        masses = np.concatenate([m for _, m in pending])
        return mass_assignment(positions, side, side, "CIC", masses, grid=grid,
                               chunk_size=chunk_size)

    for positions, masses in chunks:
        relative, keep = _block_cells(positions, box_size, grid_size, bounds)
        masses = np.broadcast_to(np.asarray(masses, dtype=np.float64), keep.shape)
        pending.append((relative[keep], masses[keep]))
        if sum(len(m) for _, m in pending) >= batch_size:
            grid, pending = assign(grid, pending), []
    if pending:
        grid = assign(grid, pending)
    if grid is None:
        grid = np.zeros((side,) * 3, np.float32)
    grid = grid[:extents[0] + 2, :extents[1] + 2, :extents[2] + 2]
    grid = _fold_periodic_margins(grid, extents, extents == grid_size)
    return np.ascontiguousarray(grid[1:-1, 1:-1, 1:-1])


def dark_matter_grid(snapshot, grid_size, region=None, chunk_size=2**20):
    """Dark-matter mass per voxel (Msun/h, float32) of a snapshot: every particle of
    PartType1 with mass MassTable[1] x 1e10, CIC on ``grid_size``^3 (or ``region`` of it).

    ``snapshot``: folder, file or list of chunk files.
    """
    files = snapshot_files(snapshot)
    particle_mass = dark_matter_particle_mass(files)
    with h5py.File(files[0], "r") as handle:
        box = _box_size(handle)
    chunks = ((positions, particle_mass)
              for positions in iter_particle_positions(files, chunk_size))
    return cic_mass_grid(chunks, box, grid_size, region, chunk_size=chunk_size)


def subhalo_mass_grid(subhalos, grid_size, region=None):
    """Subhalo mass per voxel (Msun/h, float32): SubhaloMass at SubhaloPos, CIC."""
    return cic_mass_grid([(subhalos.positions, subhalos.mass)], subhalos.box_size, grid_size,
                         region)


def stellar_mass_grid(subhalos, grid_size, region=None):
    """Stellar mass per voxel (Msun/h, float32): SubhaloMassType[:, 4] at SubhaloPos, CIC."""
    return cic_mass_grid([(subhalos.positions, subhalos.stellar_mass)], subhalos.box_size,
                         grid_size, region)


def log_mass(mass):
    """log10(1 + M) of a mass per voxel M (Msun/h) >= 0."""
    mass = np.asarray(mass)
    log = np.log10(1.0 + mass.astype(np.float64))
    return log.astype(np.float32) if mass.dtype == np.float32 else log


def inverse_log_mass(x):
    """M = 10^x - 1, the inverse of :func:`log_mass`."""
    return np.power(10.0, np.asarray(x, dtype=np.float64)) - 1.0


def _statistics(field, stats):
    if stats is not None:
        mean, std = stats
    elif field in STANDARDISATION:
        mean, std = STANDARDISATION[field]
    else:
        raise ValueError(f"field={field!r}: expected one of {', '.join(STANDARDISATION)} or "
                         "explicit stats=(mean, std)")
    if not std > 0:
        raise ValueError(f"stats: standard deviation {std} must be > 0")
    return mean, std


def standardise(x, field=None, stats=None):
    """(x - mean) / std of log10(1 + M) values ``x``, with ``stats=(mean, std)`` or the fixed
    constants of ``field`` ("dark_matter", "subhalo", "stellar")."""
    mean, std = _statistics(field, stats)
    return (np.asarray(x) - mean) / std


def destandardise(y, field=None, stats=None):
    """Inverse of :func:`standardise`: y std + mean."""
    mean, std = _statistics(field, stats)
    return np.asarray(y) * std + mean


def field_statistics(x):
    """(mean, std) of ``x`` (e.g. log10(1 + M) of a training region), summed in float64."""
    x = np.asarray(x)
    mean = float(np.mean(x, dtype=np.float64))
    return mean, float(np.sqrt(np.mean(np.square(x - mean, dtype=np.float64))))


def _field_format(path):
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in _FIELD_EXTENSIONS:
        raise UserInputError(f"{path}: expected a field file ending in "
                             f"{', '.join(_FIELD_EXTENSIONS)}")
    return "npy" if extension == ".npy" else "hdf5"


def save_field(path, array, overwrite=False):
    """Write a field as ``.npy`` or as HDF5 (``.h5``/``.hdf5``, chunked dataset "field").

    Refuses (UserInputError) to replace an existing file unless ``overwrite``. The file is
    written under a temporary name, then renamed: an interrupted write leaves no partial file
    under ``path``.
    """
    kind = _field_format(path)
    if os.path.exists(path) and not overwrite:
        raise UserInputError(f"{path}: file exists; refusing to overwrite it (pass "
                             "overwrite=True to replace it)")
    array = np.asarray(array)
    if kind == "npy":
        return save_npy(os.fspath(path), array)

    def write(partial):
        with h5py.File(partial, "w") as handle:
            handle.create_dataset("field", data=array,
                                  chunks=tuple(min(s, 64) for s in array.shape) or None)
    return write_atomically(os.fspath(path), write)


def load_field(path, mmap=True):
    """Read a field written by :func:`save_field`.

    With ``mmap`` a ``.npy`` file is memory-mapped read-only and an HDF5 file is returned as
    its open h5py dataset (sliced lazily; the file stays open while it is referenced);
    otherwise the whole array is read.
    """
    kind = _field_format(path)
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: no such field file")
    try:
        if kind == "npy":
            return np.load(path, mmap_mode="r" if mmap else None)
        handle = h5py.File(path, "r")
    except (OSError, ValueError, EOFError) as err:
        raise UserInputError(f"{path}: not a readable {kind} field (truncated or damaged: "
                             f"{err}); remove it to have it computed again") from None
    if "field" not in handle:
        handle.close()
        raise UserInputError(f"{path}: missing dataset 'field'")
    if mmap:
        return handle["field"]
    with handle:
        return handle["field"][...]
