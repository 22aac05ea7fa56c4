"""SYNTHETIC stand-in for IllustrisTNG100 (hydro) and TNG100-Dark at z = 0, in the real layout.

Generator (parameters :class:`TNGSyntheticParams`, all recorded in ``synthetic_tng.json``):

* Density: a periodic lognormal field rho / <rho> on a G^3 grid
  (:func:`tfastro.fields.random_fields.lognormal_field`, P(k) ∝ k^slope of ln rho rescaled to
  standard deviation ``sigma``).
* Dark matter: P^3 particles of equal mass Omega_m rho_crit L^3 / P^3 drawn among the cells with
  probability ∝ rho (multinomial), uniformly placed within their cell.
* Subhalos: the neighbourhood density rho_s (rho smoothed by a Gaussian of ``smoothing`` cells)
  sets a Poisson number of subhalos per cell with mean ``subhalos_per_cell`` rho_s^rate_exponent
  / <rho_s^rate_exponent>, uniformly placed within the cell, of mass
  log10 M_sub = log10 M0 + alpha log10 rho_s + N(0, mass_scatter) (Msun/h).
* Groups: the subhalos of a cell form one FoF group; the most massive is its central
  (GroupFirstSub), the others satellites in decreasing mass; GroupMass = ``group_mass_factor`` x
  the sum of its subhalo masses.
* Hydro catalogue: the same subhalos and groups, with stellar mass (SubhaloMassType[:, 4])
  log10 M* = a + b log10 M_sub + N(0, stellar_scatter). The stellar mass at a voxel is thus a
  function of the dark-matter neighbourhood and the subhalo masses, plus scatter.

Files (chunks split in order; the last group-catalogue chunk is empty when ``chunks`` > 1)::

    DIR/Dark/snapdir_099/snap_099.<i>.hdf5
    DIR/Dark/groups_099/fof_subhalo_tab_099.<i>.hdf5
    DIR/Hydro/groups_099/fof_subhalo_tab_099.<i>.hdf5
    DIR/synthetic_tng.json
"""
import dataclasses
import os

import h5py
import numpy as np
from scipy import ndimage

from tfastro.core.atomic import write_atomically, write_json
from tfastro.core.cli import synthetic_main
from tfastro.core.errors import UserInputError
from tfastro.dm2gal.io import DARK_MATTER_TYPE, MASS_UNIT, STAR_TYPE
from tfastro.fields.random_fields import lognormal_field

__all__ = ["TNGSyntheticParams", "SyntheticTNG", "synthetic_tng", "write_synthetic_tng",
           "tng_paths", "SNAPSHOT", "RHO_CRIT"]


#: Snapshot number of z = 0 in TNG.
SNAPSHOT = 99


#: Critical density in Msun/h per (ckpc/h)^3 (2.775e11 h^2 Msun Mpc^-3).
RHO_CRIT = 277.536627


@dataclasses.dataclass(frozen=True)
class TNGSyntheticParams:
    """Parameters of the synthetic TNG stand-in (see the module docstring)."""

    grid: int = 64
    particles_per_side: int = 64
    box_size: float = 25000.0  # ckpc/h
    seed: int = 0
    chunks: int = 3
    omega_m: float = 0.3089
    slope: float = -2.0
    sigma: float = 1.0
    smoothing: float = 1.5
    subhalos_per_cell: float = 0.05
    rate_exponent: float = 1.5
    log10_m0: float = 10.5
    alpha: float = 1.5
    mass_scatter: float = 0.2
    group_mass_factor: float = 1.2
    stellar_a: float = -5.5
    stellar_b: float = 1.4
    stellar_scatter: float = 0.15

    def check(self):
        """UserInputError for sizes that cannot be generated."""
        for name in ("grid", "particles_per_side", "chunks"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name}={getattr(self, name)}: expected >= 1")
        if self.grid < 4:
            raise UserInputError(f"grid={self.grid}: expected at least 4 cells per side")
        if not self.box_size > 0:
            raise UserInputError(f"box_size={self.box_size}: expected a positive side in ckpc/h")

    @property
    def particle_mass(self):
        """Dark-matter particle mass in Msun/h: Omega_m rho_crit L^3 / P^3."""
        return self.omega_m * RHO_CRIT * self.box_size**3 / self.particles_per_side**3


@dataclasses.dataclass
class SyntheticTNG:
    """Truth of the generator: density (G^3, mean 1), particle positions (P^3, 3) ckpc/h,
    subhalo positions (n, 3) ckpc/h, masses and stellar masses (n,) Msun/h, group of each
    subhalo (n,), group first subhalo (g,), group sizes (g,) and group masses (g,) Msun/h."""

    density: np.ndarray
    particles: np.ndarray
    subhalo_positions: np.ndarray
    subhalo_mass: np.ndarray
    stellar_mass: np.ndarray
    group: np.ndarray
    first_subhalo: np.ndarray
    n_subhalos: np.ndarray
    group_mass: np.ndarray


def _positions_in_cells(cells, grid, cell_size, rng):
    """Uniform positions (n, 3) ckpc/h within the cells of flat indices ``cells`` (G^3 grid)."""
    index = np.stack(np.unravel_index(cells, (grid,) * 3), axis=1)
    return (index + rng.random(index.shape)) * cell_size


def synthetic_tng(params=TNGSyntheticParams()):
    """Generate the synthetic universe (arrays in memory) of ``params``."""
    params.check()
    rng = np.random.default_rng(params.seed)
    grid, cell = params.grid, params.box_size / params.grid
    density = lognormal_field((grid,) * 3, params.box_size / 1000.0,
                              lambda k: k**params.slope, rng.integers(2**63),
                              sigma=params.sigma)
    counts = rng.multinomial(params.particles_per_side**3, (density / density.sum()).ravel())
    particles = _positions_in_cells(np.repeat(np.arange(grid**3), counts), grid, cell, rng)

    smooth = ndimage.gaussian_filter(density, params.smoothing, mode="wrap")
    rate = smooth**params.rate_exponent
    per_cell = rng.poisson(params.subhalos_per_cell * rate.ravel() / rate.mean())
    cells = np.repeat(np.arange(grid**3), per_cell)
    log_mass = (params.log10_m0 + params.alpha * np.log10(smooth.ravel()[cells])
                + rng.normal(0.0, params.mass_scatter, len(cells)))
    # groups: the subhalos of a cell, central (most massive) first, satellites by mass
    order = np.lexsort((-log_mass, cells))
    cells, log_mass = cells[order], log_mass[order]
    occupied, first, n_subhalos = np.unique(cells, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(occupied)), n_subhalos)
    subhalo_mass = 10.0**log_mass
    group_mass = params.group_mass_factor * np.bincount(group, subhalo_mass, len(occupied))
    stellar_mass = 10.0**(params.stellar_a + params.stellar_b * log_mass
                          + rng.normal(0.0, params.stellar_scatter, len(cells)))
    return SyntheticTNG(density=density, particles=particles,
                        subhalo_positions=_positions_in_cells(cells, grid, cell, rng),
                        subhalo_mass=subhalo_mass, stellar_mass=stellar_mass, group=group,
                        first_subhalo=first, n_subhalos=n_subhalos, group_mass=group_mass)


def _common_header(header, params, chunks):
    header.attrs["BoxSize"] = np.float64(params.box_size)
    header.attrs["Redshift"] = np.float64(0.0)
    header.attrs["Time"] = np.float64(1.0)
    header.attrs["HubbleParam"] = np.float64(0.6774)
    header.attrs["Omega0"] = np.float64(params.omega_m)
    header.attrs["OmegaLambda"] = np.float64(1.0 - params.omega_m)
    header.attrs["NumFiles"] = np.int32(chunks)


def _write_snapshot(folder, universe, params):
    """Dark-matter particles in ``params.chunks`` snapshot files."""
    total = len(universe.particles)
    mass_table = np.zeros(6)
    mass_table[DARK_MATTER_TYPE] = params.particle_mass / MASS_UNIT
    numbers = np.zeros(6, np.uint64)
    numbers[DARK_MATTER_TYPE] = total
    paths = []
    for i, part in enumerate(np.array_split(universe.particles, params.chunks)):
        path = os.path.join(folder, f"snap_{SNAPSHOT:03d}.{i}.hdf5")

        def write(partial):
            with h5py.File(partial, "w") as handle:
                header = handle.create_group("Header")
                _common_header(header, params, params.chunks)
                header.attrs["NumFilesPerSnapshot"] = np.int32(params.chunks)
                header.attrs["MassTable"] = mass_table
                this_file = np.zeros(6, np.int32)
                this_file[DARK_MATTER_TYPE] = len(part)
                header.attrs["NumPart_ThisFile"] = this_file
                header.attrs["NumPart_Total"] = (numbers % 2**32).astype(np.uint32)
                header.attrs["NumPart_Total_HighWord"] = (numbers >> np.uint64(32)).astype(
                    np.uint32)
                if len(part):
                    handle.create_dataset("PartType1/Coordinates", data=part)
        write_atomically(path, write)
        paths.append(path)
    return paths


def _write_catalogue(folder, universe, params, mass_type):
    """Groups and subhalos in chunks (the last one empty when there are several)."""
    n_groups, n_sub = len(universe.group_mass), len(universe.subhalo_mass)
    filled = max(params.chunks - 1, 1)
    group_bounds = np.linspace(0, n_groups, filled + 1).astype(np.int64)
    group_bounds = np.append(group_bounds, [n_groups] * (params.chunks - filled))
    sub_bounds = np.append(universe.first_subhalo, n_sub)[group_bounds]
    paths = []
    for i in range(params.chunks):
        groups = slice(group_bounds[i], group_bounds[i + 1])
        subs = slice(sub_bounds[i], sub_bounds[i + 1])
        path = os.path.join(folder, f"fof_subhalo_tab_{SNAPSHOT:03d}.{i}.hdf5")

        def write(partial):
            with h5py.File(partial, "w") as handle:
                header = handle.create_group("Header")
                _common_header(header, params, params.chunks)
                header.attrs["Ngroups_ThisFile"] = np.int32(groups.stop - groups.start)
                header.attrs["Ngroups_Total"] = np.int32(n_groups)
                header.attrs["Nsubgroups_ThisFile"] = np.int32(subs.stop - subs.start)
                header.attrs["Nsubgroups_Total"] = np.int32(n_sub)
                if groups.stop > groups.start:
                    handle.create_dataset("Group/GroupMass",
                                          data=(universe.group_mass[groups] / MASS_UNIT)
                                          .astype(np.float32))
                    handle.create_dataset("Group/GroupNsubs",
                                          data=universe.n_subhalos[groups].astype(np.int32))
                    handle.create_dataset("Group/GroupFirstSub",
                                          data=universe.first_subhalo[groups].astype(np.int32))
                if subs.stop > subs.start:
                    types = mass_type[subs] / MASS_UNIT
                    handle.create_dataset("Subhalo/SubhaloPos",
                                          data=universe.subhalo_positions[subs].astype(np.float32))
                    handle.create_dataset("Subhalo/SubhaloMass",
                                          data=types.sum(axis=1).astype(np.float32))
                    handle.create_dataset("Subhalo/SubhaloMassType", data=types.astype(np.float32))
                    handle.create_dataset("Subhalo/SubhaloGrNr",
                                          data=universe.group[subs].astype(np.int32))
        write_atomically(path, write)
        paths.append(path)
    return paths


def _mass_types(universe, hydro):
    """SubhaloMassType (n, 6) in Msun/h: dark matter, plus stars in the hydro catalogue."""
    types = np.zeros((len(universe.subhalo_mass), 6))
    types[:, DARK_MATTER_TYPE] = universe.subhalo_mass
    if hydro:
        types[:, STAR_TYPE] = universe.stellar_mass
    return types


def tng_paths(out_dir):
    """Folders of the synthetic files: {"snapshot", "dark_groups", "hydro_groups"} and the
    "parameters" JSON file."""
    return {"snapshot": os.path.join(out_dir, "Dark", f"snapdir_{SNAPSHOT:03d}"),
            "dark_groups": os.path.join(out_dir, "Dark", f"groups_{SNAPSHOT:03d}"),
            "hydro_groups": os.path.join(out_dir, "Hydro", f"groups_{SNAPSHOT:03d}"),
            "parameters": os.path.join(out_dir, "synthetic_tng.json")}


def write_synthetic_tng(out_dir, params=TNGSyntheticParams(), overwrite=False):
    """Write the synthetic snapshot and catalogues of ``params`` under ``out_dir``.

    Refuses (UserInputError naming it) to replace an existing output unless ``overwrite``.
    Returns:
      ``(paths, universe)``: :func:`tng_paths` of ``out_dir`` and the :class:`SyntheticTNG`.
    """
    params.check()
    paths = tng_paths(out_dir)
    for path in paths.values():
        if os.path.exists(path):
            if not overwrite:
                raise UserInputError(f"{path}: exists; refusing to overwrite it (pass "
                                     "overwrite=True / --overwrite to replace it)")
            if os.path.isdir(path):
                for name in os.listdir(path):
                    if name.endswith(".hdf5"):
                        os.remove(os.path.join(path, name))
    universe = synthetic_tng(params)
    for key in ("snapshot", "dark_groups", "hydro_groups"):
        os.makedirs(paths[key], exist_ok=True)
    _write_snapshot(paths["snapshot"], universe, params)
    _write_catalogue(paths["dark_groups"], universe, params, _mass_types(universe, False))
    _write_catalogue(paths["hydro_groups"], universe, params, _mass_types(universe, True))
    write_json(paths["parameters"], {"synthetic": True, **dataclasses.asdict(params)})
    return paths, universe


def _write(args):
    params = TNGSyntheticParams(
        grid=args.grid, particles_per_side=args.particles_per_side, box_size=args.box,
        seed=args.seed, chunks=args.chunks)
    paths, universe = write_synthetic_tng(args.out, params,
                                                       overwrite=args.overwrite)
    print(f"Wrote SYNTHETIC IllustrisTNG stand-in (lognormal density, not simulation output) "
          f"to {args.out}\n"
          f"  {paths['snapshot']}: {len(universe.particles)} dark-matter particles of "
          f"{params.particle_mass:.4g} Msun/h in {params.chunks} chunks, box {args.box:g} ckpc/h\n"
          f"  {paths['dark_groups']} and {paths['hydro_groups']}: {len(universe.group_mass)} "
          f"groups, {len(universe.subhalo_mass)} subhalos; log10 M* = {params.stellar_a:g} + "
          f"{params.stellar_b:g} log10 M_sub +- {params.stellar_scatter:g} dex\n"
          f"  {paths['parameters']} (generating parameters), seed {args.seed}")


def _add_arguments(parser):
    parser.add_argument("--grid", type=int, default=64,
                        help="cells per side of the density field (default 64)")
    parser.add_argument("--particles-per-side", type=int, default=64,
                        help="dark-matter particles = this cubed (default 64)")
    parser.add_argument("--box", type=float, default=25000.0,
                        help="box side in ckpc/h (default 25000)")
    parser.add_argument("--chunks", type=int, default=3, help="files per snapshot/catalogue "
                        "(default 3; the last catalogue chunk is empty)")


def main(argv=None):
    """``python -m tfastro.synthetic dm2gal``; returns the exit status (2 for bad input)."""
    return synthetic_main("python -m tfastro.synthetic dm2gal",
                          "IllustrisTNG-like snapshot and group catalogues (HDF5)",
                          "output directory", _add_arguments, _write, argv)
