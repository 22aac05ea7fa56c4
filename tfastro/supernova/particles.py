"""SPH gas particles of a supernova simulation -> density cubes and 3D-MIM clips.

Snapshots are read in the common HDF5 layout of GADGET, GIZMO, AREPO and their kin:

* ``PartType0/Coordinates`` ``(N, 3)``, ``PartType0/Masses`` ``(N,)``, and
  ``PartType0/SmoothingLength`` and/or ``PartType0/Density`` ``(N,)``; ``ParticleIDs`` when
  present (to follow particles from one snapshot to the next);
* ``Header`` attributes ``BoxSize`` (side of the periodic cube) and ``Time``.

Units. When the file states them, every quantity is converted to pc, Msun, kyr (and Msun pc^-3):
either per dataset (attributes ``to_cgs`` with ``a_scaling`` and ``h_scaling``, the scale factor
``a = 1 / (1 + Redshift)`` and ``h = HubbleParam`` from the header; ``BoxSize`` takes the
coordinates' factor), or for the whole file (``UnitLength_in_cm``, ``UnitMass_in_g`` and
``UnitVelocity_in_cm_per_s`` in ``Header``, time unit = length / velocity). Without either,
values stay in the file's code units and :attr:`GasParticles.units` says so.

Smoothing length. ``SmoothingLength`` is taken as the kernel's support radius H (the kernel
vanishes at r = H, the GADGET/GIZMO convention); ``support_factor`` scales it for codes that store
another h (e.g. about 1.83 for SWIFT's cubic spline). Where only ``Density`` is stored, H is the
radius holding ``neighbours`` (default 32) particle masses at that density:
``(4 pi / 3) H^3 rho = neighbours m``, i.e. ``H = (3 neighbours m / (4 pi rho))^(1/3)``. Each
of the two settings applies to one case only; given for the other, it is an error.

Deposit. Each particle's mass is spread over the cells whose centres lie within its support,
with weights ``W(|x_cell - x| / H)`` of the chosen kernel normalised to sum to one over those
cells (cells outside the cube included, their share dropped), so every particle inside the cube
deposits exactly its mass even when H is smaller than a cell; a particle whose support holds no
cell centre gives its mass to the cell it lies in. Distances are periodic (minimum image).

Command line (one clip from a series of snapshots, frames in time order)::

    python -m tfastro.supernova.particles snap_000.hdf5 snap_001.hdf5 ... --out clip.npz \
        --cells 32 [--size 60] [--centre X Y Z] [--kernel cubic|wendland] \
        [--neighbours N | --support_factor F] [--input_length N]
        [--normalisation max|log --log_bounds LO,HI] [--overwrite]
"""
import argparse
import dataclasses
import os
import sys

import numpy as np

from tfastro.core.atomic import write_atomically
from tfastro.core.errors import UserInputError
from tfastro.supernova.io import default_clips, normalisation_of, save_sn_npz
from tfastro.supernova.simulations import add_normalisation_options
from tfastro.supernova.synthetic import KYR_S, PC_CM

#: Solar mass in g.
MSUN_G = 1.98847e33

KERNELS = ("cubic", "wendland")


def kernel(q, name="cubic"):
    """SPH kernel W(q) for a unit support radius (multiply by 1/H^3 for support H), 3D-normalised.

    Args:
      q: r / H, array (dimensionless).
      name: 'cubic' (M4 cubic spline, GADGET form: 8/pi (1 - 6 q^2 + 6 q^3) for q <= 1/2,
        16/pi (1 - q)^3 for 1/2 < q <= 1) or 'wendland' (Wendland C2: 21/(2 pi) (1 - q)^4 (1 + 4q)).
    Returns:
      W, zero for q >= 1, with the integral of W over the unit ball equal to 1.
    """
    q = np.asarray(q, dtype=np.float64)
    if name == "cubic":
        inner = 1.0 - 6.0 * q**2 + 6.0 * q**3
        outer = 2.0 * np.clip(1.0 - q, 0.0, None) ** 3
        return 8.0 / np.pi * np.where(q <= 0.5, inner, outer)
    if name == "wendland":
        return 21.0 / (2.0 * np.pi) * np.clip(1.0 - q, 0.0, None) ** 4 * (1.0 + 4.0 * q)
    raise UserInputError(f"kernel={name!r}: expected one of {', '.join(KERNELS)}")


@dataclasses.dataclass
class GasParticles:
    """Gas particles of one snapshot.

    Attributes:
      positions: float64 ``(N, 3)`` in [0, box_size).
      masses: float64 ``(N,)``.
      support: float64 ``(N,)``, kernel support radius H of each particle.
      box_size: side of the periodic box.
      time: time of the snapshot.
      units: 'pc, Msun, kyr' or a sentence saying the values are in the file's code units.
      densities: float64 ``(N,)`` mass per volume, or None when the file holds no Density.
      ids: ``(N,)`` ParticleIDs, or None.
      path: the file read.
    """

    positions: np.ndarray
    masses: np.ndarray
    support: np.ndarray
    box_size: float
    time: float
    units: str
    densities: np.ndarray = None
    ids: np.ndarray = None
    path: str = ""


def _header_factors(path, header):
    """(length, mass, time) factors to pc, Msun, kyr from the Header's unit attributes, or None."""
    names = ("UnitLength_in_cm", "UnitMass_in_g", "UnitVelocity_in_cm_per_s")
    if not all(n in header for n in names):
        return None
    length, mass, velocity = (float(np.squeeze(header[n])) for n in names)
    if min(length, mass, velocity) <= 0:
        raise UserInputError(f"{path}: Header units must be positive, got "
                             + ", ".join(f"{n}={header[n]}" for n in names))
    return length / PC_CM, mass / MSUN_G, length / velocity / KYR_S


def _dataset_factor(attrs, header, cgs_per_unit):
    """Factor of a dataset carrying ``to_cgs`` (with a/h scalings) to the target unit, or None."""
    if "to_cgs" not in attrs:
        return None
    a = 1.0 / (1.0 + float(np.squeeze(header.get("Redshift", 0.0))))
    h = float(np.squeeze(header.get("HubbleParam", 1.0)))
    return (float(np.squeeze(attrs["to_cgs"])) * a ** float(np.squeeze(attrs.get("a_scaling", 0)))
            * h ** float(np.squeeze(attrs.get("h_scaling", 0))) / cgs_per_unit)


def _read_array(path, group, name, ndim, length=None):
    if name not in group:
        return None
    values = np.asarray(group[name][()], dtype=np.float64 if name != "ParticleIDs" else None)
    if values.ndim != ndim or (ndim == 2 and values.shape[1] != 3) or (
            length is not None and len(values) != length):
        want = "(N, 3)" if ndim == 2 else f"({length if length is not None else 'N'},)"
        raise UserInputError(f"{path}: PartType0/{name} must have shape {want}, "
                             f"got {values.shape}")
    if name != "ParticleIDs" and not np.isfinite(values).all():
        raise UserInputError(f"{path}: PartType0/{name} holds non-finite values")
    return values


def read_snapshot(path, *, neighbours=None, support_factor=None):
    """Read the gas particles of one HDF5 snapshot (layout and units: module docstring).

    Args:
      path: the snapshot file.
      neighbours: particles within the support radius (default 32), for a file that stores
        ``Density`` and no ``SmoothingLength``.
      support_factor: support radius H = support_factor * SmoothingLength (default 1), for a
        file that stores ``SmoothingLength``.
    Returns:
      :class:`GasParticles`.
    Raises:
      UserInputError naming the file and what is missing or malformed.
    """
    import h5py
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: no such file (expected an HDF5 snapshot with "
                             "PartType0/Coordinates, Masses, SmoothingLength or Density)")
    for name, value in (("neighbours", neighbours), ("support_factor", support_factor)):
        if value is not None and not value > 0:
            raise UserInputError(f"{name}={value}: must be positive")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise UserInputError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        if "PartType0" not in f or "Header" not in f:
            raise UserInputError(f"{path}: expected groups Header and PartType0 (gas), found "
                                 f"{', '.join(f.keys()) or 'none'}")
        gas, header = f["PartType0"], dict(f["Header"].attrs)
        missing = [k for k in ("BoxSize", "Time") if k not in header]
        missing += [f"PartType0/{k}" for k in ("Coordinates", "Masses") if k not in gas]
        if "SmoothingLength" not in gas and "Density" not in gas:
            missing.append("PartType0/SmoothingLength or PartType0/Density")
        if missing:
            raise UserInputError(f"{path}: missing {', '.join(missing)}")
        positions = _read_array(path, gas, "Coordinates", 2)
        n = len(positions)
        masses = _read_array(path, gas, "Masses", 1, n)
        smoothing = _read_array(path, gas, "SmoothingLength", 1, n)
        densities = _read_array(path, gas, "Density", 1, n)
        ids = _read_array(path, gas, "ParticleIDs", 1, n)
        box, time = float(np.squeeze(header["BoxSize"])), float(np.squeeze(header["Time"]))

        per_file = _header_factors(path, header)
        length = _dataset_factor(gas["Coordinates"].attrs, header, PC_CM)
        if length is not None:
            mass = _dataset_factor(gas["Masses"].attrs, header, MSUN_G)
            if mass is None:
                raise UserInputError(f"{path}: Coordinates carry to_cgs but Masses do not")
            units = "pc, Msun, kyr" if per_file else "pc, Msun; time in the file's unit"
            time_factor = per_file[2] if per_file else 1.0
        elif per_file is not None:
            (length, mass, time_factor), units = per_file, "pc, Msun, kyr"
        else:
            length = mass = time_factor = 1.0
            units = f"code units of {path} (no unit attributes)"
        if smoothing is not None and "to_cgs" in gas["SmoothingLength"].attrs:
            smoothing = smoothing * _dataset_factor(gas["SmoothingLength"].attrs, header,
                                                    PC_CM) / length
        if densities is not None and "to_cgs" in gas["Density"].attrs:
            densities = densities * _dataset_factor(gas["Density"].attrs, header,
                                                    MSUN_G / PC_CM**3) / (mass / length**3)
    if box <= 0 or (masses <= 0).any():
        raise UserInputError(f"{path}: BoxSize and Masses must be positive")
    if smoothing is None:
        if support_factor is not None:
            raise UserInputError(f"{path}: stores no SmoothingLength; support_factor="
                                 f"{support_factor} does not apply (the support comes from "
                                 "Density and neighbours)")
        if (densities <= 0).any():
            raise UserInputError(f"{path}: PartType0/Density must be positive to derive "
                                 "smoothing lengths (no SmoothingLength stored)")
        neighbours = 32 if neighbours is None else neighbours
        smoothing = (3.0 * neighbours * masses / (4.0 * np.pi * densities)) ** (1.0 / 3.0)
    elif neighbours is not None:
        raise UserInputError(f"{path}: stores SmoothingLength; neighbours={neighbours} (to "
                             "derive it from Density) does not apply")
    elif (smoothing <= 0).any():
        raise UserInputError(f"{path}: PartType0/SmoothingLength must be positive")
    else:
        smoothing = smoothing * (1.0 if support_factor is None else support_factor)
    return GasParticles(
        positions=np.mod(positions * length, box * length), masses=masses * mass,
        support=smoothing * length, box_size=box * length,
        time=time * time_factor, units=units,
        densities=None if densities is None else densities * mass / length**3,
        ids=ids, path=path)


def write_snapshot(path, particles, *, overwrite=False):
    """Write :class:`GasParticles` in the HDF5 layout :func:`read_snapshot` reads.

    Lengths in pc, masses in Msun, time in kyr (stated by the Header's unit attributes), the
    support radius as SmoothingLength; Density and ParticleIDs when set.
    """
    import h5py
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise UserInputError(f"{path}: file exists; refusing to overwrite it "
                             "(pass overwrite=True / --overwrite)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(partial):
        with h5py.File(partial, "w") as f:
            header = f.create_group("Header")
            header.attrs.update({"BoxSize": particles.box_size, "Time": particles.time,
                                 "NumPart_ThisFile": [0, len(particles.masses), 0, 0, 0, 0],
                                 "UnitLength_in_cm": PC_CM, "UnitMass_in_g": MSUN_G,
                                 "UnitVelocity_in_cm_per_s": PC_CM / KYR_S})
            gas = f.create_group("PartType0")
            gas["Coordinates"] = particles.positions
            gas["Masses"] = particles.masses
            gas["SmoothingLength"] = particles.support
            if particles.densities is not None:
                gas["Density"] = particles.densities
            if particles.ids is not None:
                gas["ParticleIDs"] = particles.ids
    return write_atomically(path, write)


def cube_coordinates(positions, box_size, centre, size, cells):
    """Positions in cell units of a cube: cell i's centre at coordinate i.

    Args:
      positions: ``(N, 3)`` in the box's length unit.
      box_size: side of the periodic box; ``centre``: ``(3,)`` cube centre; ``size``: cube side;
      cells: cells per side.
    Returns:
      float64 ``(N, 3)``; a particle's periodic image nearest the cube centre is used.
    """
    offset = np.asarray(positions, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    offset -= box_size * np.round(offset / box_size)
    return (offset + size / 2.0) * (cells / size) - 0.5


def covers_box(size, box_size):
    """Whether a cube of side ``size`` is the whole periodic box (then it wraps too)."""
    return abs(size - box_size) <= 1e-9 * box_size


def _check_cube(particles, centre, size, cells):
    box = particles.box_size
    if not (np.ndim(cells) == 0 and int(cells) == cells and cells >= 1):
        raise UserInputError(f"cells={cells}: expected a positive integer (cells per side)")
    if not 0 < size <= box * (1 + 1e-9):
        raise UserInputError(f"size={size}: the cube side must be positive and at most the "
                             f"box size {box} of {particles.path} ({particles.units})")
    if np.shape(centre) != (3,):
        raise UserInputError(f"centre={centre}: expected three coordinates (x, y, z)")


def deposit_density(particles, cells, *, size=None, centre=None, kernel_name="cubic",
                    chunk_cells=2**22):
    """Density cube of the gas: SPH deposit of the particle masses (see the module docstring).

    Args:
      particles: :class:`GasParticles`.
      cells: cells per side of the cube.
      size: cube side in the particles' length unit (default: the whole box, which is then
        periodic: mass leaving one face enters the opposite one).
      centre: ``(3,)`` cube centre (default: the box centre).
      kernel_name: 'cubic' or 'wendland' (:func:`kernel`).
      chunk_cells: most (particle, cell) pairs handled at once (memory).
    Returns:
      float64 ``(cells, cells, cells)`` mass per volume, axes (x, y, z); the mass of every
      particle inside the cube is conserved to float64 round-off.
    """
    box = particles.box_size
    size = box if size is None else float(size)
    centre = np.full(3, box / 2.0) if centre is None else np.asarray(centre, dtype=np.float64)
    _check_cube(particles, centre, size, cells)
    kernel(0.0, kernel_name)
    cells = int(cells)
    whole_box = covers_box(size, box)
    cell = size / cells
    x = cube_coordinates(particles.positions, box, centre, size, cells)
    h = particles.support / cell
    reach = np.ceil(h).astype(np.int64)
    nearest = np.rint(x)
    touches = whole_box | ((nearest + reach[:, None] >= 0)
                           & (nearest - reach[:, None] < cells)).all(axis=1)
    grid = np.zeros(cells**3)
    for s in np.unique(reach[touches]):
        steps = np.arange(-s, s + 1)
        offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)
        members = np.flatnonzero((reach == s) & touches)
        for part in np.array_split(members, max(1, members.size * len(offsets) // chunk_cells)):
            _deposit_group(grid, x[part], h[part], particles.masses[part], offsets, cells,
                           whole_box, kernel_name)
    return grid.reshape((cells,) * 3) / cell**3


def _deposit_group(grid, x, h, masses, offsets, cells, whole_box, kernel_name):
    """Adds the masses of particles of one stencil ``offsets`` (cells around the nearest)."""
    nearest = np.rint(x).astype(np.int64)
    nodes = nearest[:, None, :] + offsets[None]                         # (n, k, 3)
    q = np.linalg.norm(nodes - x[:, None, :], axis=-1) / h[:, None]
    w = kernel(q, kernel_name)
    total = w.sum(axis=1)
    alone = total <= 0                                                  # support holds no centre
    w[alone] = (offsets == 0).all(axis=1)
    w /= np.where(alone, 1.0, total)[:, None]
    if whole_box:
        nodes %= cells
    inside = ((nodes >= 0) & (nodes < cells)).all(axis=-1)
    flat = np.ravel_multi_index(tuple(np.moveaxis(nodes[inside], -1, 0)), (cells,) * 3)
    grid += np.bincount(flat, weights=(w * masses[:, None])[inside], minlength=cells**3)


def deposit_series(paths, cells, *, size=None, centre=None, kernel_name="cubic",
                   neighbours=None, support_factor=None):
    """Density cubes of a series of snapshots, in time order.

    Args:
      paths: snapshot files (any order; sorted by their Time).
      cells, size, centre, kernel_name: as :func:`deposit_density`.
      neighbours, support_factor: as :func:`read_snapshot`.
    Returns:
      ``(densities, times, units)``: float64 ``(T, cells, cells, cells)``, ``(T,)`` and the
      units of the snapshots.
    """
    if not paths:
        raise UserInputError("no snapshot given")
    snaps = sorted((read_snapshot(p, neighbours=neighbours, support_factor=support_factor)
                    for p in paths), key=lambda s: s.time)
    first = snaps[0]
    for s in snaps[1:]:
        if s.units != first.units or not np.isclose(s.box_size, first.box_size):
            raise UserInputError(f"{s.path}: box {s.box_size} ({s.units}) differs from "
                                 f"{first.path}: box {first.box_size} ({first.units})")
        if s.time == first.time:
            raise UserInputError(f"{s.path} and {first.path} have the same Time {s.time}")
    densities = np.stack([deposit_density(s, cells, size=size, centre=centre,
                                          kernel_name=kernel_name) for s in snaps])
    return densities, np.array([s.time for s in snaps]), first.units


def unit_names(units):
    """The ``units`` of an sn ``.npz`` (names of length, mass, time and density) of a
    snapshot's :attr:`GasParticles.units`."""
    if units.startswith("pc, Msun"):
        return {"length": "pc", "mass": "Msun", "density": "Msun pc-3",
                "time": "kyr" if units.endswith("kyr") else "code_time"}
    return {"length": "code_length", "mass": "code_mass", "density": "code_density",
            "time": "code_time"}


def write_clip(path, densities, *, times=None, cube_size=None, centre=None, units=None,
               normalisation="max", log_bounds=None, input_length=None, overwrite=False):
    """Write physical density cubes ``(T, X, Y, Z)`` as one clip of an sn ``.npz``.

    Frames are normalised by :func:`tfastro.supernova.io.normalisation_of` (default: divided
    by their largest density, the original's scaling); the first ``input_length`` frames
    (default T // 2) are the clip's input. ``times`` (T,), the cube's side ``cube_size``, its
    ``centre`` (3,) and the snapshots' ``units`` (:attr:`GasParticles.units`) are stored
    beside the frames when given. Returns ``path``.
    """
    densities = np.asarray(densities)
    if densities.ndim != 4 or len(densities) < 2:
        raise UserInputError(f"{path}: need at least two density cubes (T, X, Y, Z), "
                             f"got shape {densities.shape}")
    names = None if units is None else unit_names(units)
    scale = normalisation_of(densities, normalisation, log_bounds,
                             units="" if names is None else names["density"])
    clips = default_clips(len(densities), len(densities), input_length)
    return save_sn_npz(path, scale.frames(densities)[:, None], clips, overwrite=overwrite,
                       normalisation=scale, times=times, units=names,
                       box_size=None if cube_size is None else np.full(3, float(cube_size)),
                       centre=centre)


def main(argv=None):
    """``python -m tfastro.supernova.particles``; returns the exit status (2 for bad input)."""
    prog = "python -m tfastro.supernova.particles"
    parser = argparse.ArgumentParser(
        prog=prog, description="Deposit the gas of a series of SPH snapshots (HDF5, PartType0) "
        "onto a cube around the supernova and write them as one clip of a 3D-MIM sn .npz.")
    parser.add_argument("snapshots", nargs="+", help="HDF5 snapshots (sorted by their Time)")
    parser.add_argument("--out", required=True, help="output .npz path")
    parser.add_argument("--cells", type=int, required=True, help="cells per side of the cube")
    parser.add_argument("--size", type=float, default=None,
                        help="cube side in the snapshots' length unit (pc when the file states "
                        "its units; default: the whole periodic box)")
    parser.add_argument("--centre", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="cube centre, the supernova's position (default: the box centre)")
    parser.add_argument("--kernel", choices=KERNELS, default="cubic",
                        help="SPH kernel: cubic spline M4 or Wendland C2 (default cubic)")
    parser.add_argument("--neighbours", type=float, default=None,
                        help="particles within the support, to derive it from Density in files "
                        "without SmoothingLength (default 32)")
    parser.add_argument("--support_factor", type=float, default=None,
                        help="kernel support radius / SmoothingLength, for files with it "
                        "(default 1, GADGET/GIZMO)")
    parser.add_argument("--input_length", type=int, default=None,
                        help="input frames of the clip (default: half of them)")
    add_normalisation_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    try:
        if os.path.exists(args.out) and not args.overwrite:
            raise UserInputError(f"{args.out}: file exists; refusing to overwrite it "
                                 "(add --overwrite to replace it)")
        densities, times, units = deposit_series(
            args.snapshots, args.cells, size=args.size, centre=args.centre,
            kernel_name=args.kernel, neighbours=args.neighbours,
            support_factor=args.support_factor)
        write_clip(args.out, densities, times=times, cube_size=args.size, centre=args.centre,
                   units=units, normalisation=args.normalisation, log_bounds=args.log_bounds,
                   input_length=args.input_length, overwrite=args.overwrite)
    except UserInputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {args.out}: {len(times)} frames of {args.cells}^3 cells ({units}), "
          f"times {', '.join(f'{t:.4g}' for t in times)}; {args.normalisation} "
          f"normalisation (largest density {densities.max():.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
