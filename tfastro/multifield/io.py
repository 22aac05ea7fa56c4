"""Reader, scaling, split and ``tf.data`` pipeline of the CAMELS Multifield Dataset (CMD) 2D maps.

Layout of the real files (one directory, ``root``):

``Maps_{field}_{suite}_{set}_z=0.00.npy``
    float32 ``(N, R, R)``: N maps of R^2 pixels (R = 256) of one field, in physical units
    ((Msun/h)/(Mpc/h)^2 for Mgas and HI, Gauss for B). The same index in different field files
    is the same region; each map is a periodic square of side ``BOX_SIZE`` = 25 h^-1 Mpc.
    The B field exists only for suite IllustrisTNG. An LH file is 3.75 GB: files are
    memory-mapped and only the maps asked for are read.
``params_{set}_{suite}.txt``
    text (``np.loadtxt``), one row per simulation, columns ``PARAM_NAMES``
    (Omega_m, sigma_8, A_SN1, A_AGN1, A_SN2, A_AGN2). Map i belongs to simulation i // 15.

Scaling (invertible, no clipping): a map channel becomes x = 2 (log10 m - lo) / (hi - lo) - 1
with the fixed per-field ``LOG10_RANGES`` (lo, hi); parameters become
2 (v - lo) / (hi - lo) - 1 over their Latin-hypercube ``PARAM_RANGES``, with v -> log10 v for the
log-uniform ones. Both map the range onto [-1, 1].

Splits are by simulation, never by map (the 15 maps of a simulation share its parameters and
its volume). Rotations by 90 degrees, flips and periodic shifts leave the labels unchanged and
serve as augmentation.

Problems with the files are reported as :class:`tfastro.core.errors.UserInputError` naming the file.
"""
import dataclasses
import math
import os
from typing import NamedTuple

import numpy as np

from tfastro.core.errors import UserInputError

__all__ = ["CMD_FIELDS", "LOG10_RANGES", "PARAM_NAMES", "PARAM_RANGES", "ParamRange",
           "MAPS_PER_SIMULATION", "BOX_SIZE", "MAGNETIC_SUITE", "check_fields", "maps_path",
           "params_path", "open_cmd", "CMDMaps", "normalise_maps", "denormalise_maps",
           "normalise_params", "denormalise_params", "split_simulations", "map_indices"]


#: The fields the emulator uses, in channel order: gas mass, neutral hydrogen, magnetic field.
CMD_FIELDS = ("Mgas", "HI", "B")


#: Fixed (lo, hi) of log10 of each field, mapped onto [-1, 1].
LOG10_RANGES = {"Mgas": (7.0, 15.0), "HI": (0.0, 14.0), "B": (-16.0, -3.0)}


#: Columns of the parameter files.
PARAM_NAMES = ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")


#: Maps per simulation: map i belongs to simulation i // 15.
MAPS_PER_SIMULATION = 15


#: Side of every map in h^-1 Mpc (periodic).
BOX_SIZE = 25.0


#: The only suite with magnetic-field (B) maps.
MAGNETIC_SUITE = "IllustrisTNG"


class ParamRange(NamedTuple):
    """Latin-hypercube range [low, high] of a parameter; ``log``: sampled uniformly in log10."""

    low: float
    high: float
    log: bool


#: LH ranges of the CAMELS parameters (fiducial 0.3, 0.8, 1, 1, 1, 1).
PARAM_RANGES = {
    "Omega_m": ParamRange(0.1, 0.5, False),
    "sigma_8": ParamRange(0.6, 1.0, False),
    "A_SN1": ParamRange(0.25, 4.0, True),
    "A_AGN1": ParamRange(0.25, 4.0, True),
    "A_SN2": ParamRange(0.5, 2.0, True),
    "A_AGN2": ParamRange(0.5, 2.0, True),
}


def maps_path(root, field, suite="IllustrisTNG", set_name="LH"):
    """``root/Maps_{field}_{suite}_{set_name}_z=0.00.npy``."""
    return os.path.join(root, f"Maps_{field}_{suite}_{set_name}_z=0.00.npy")


def params_path(root, suite="IllustrisTNG", set_name="LH"):
    """``root/params_{set_name}_{suite}.txt``."""
    return os.path.join(root, f"params_{set_name}_{suite}.txt")


def check_fields(fields):
    """``fields`` (a name or names) as a tuple of distinct names of ``LOG10_RANGES``;
    UserInputError otherwise."""
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    unknown = [f for f in fields if f not in LOG10_RANGES]
    if not fields or unknown or len(set(fields)) != len(fields):
        raise UserInputError(f"fields={','.join(map(str, fields))}: expected distinct names "
                             f"among {', '.join(CMD_FIELDS)}")
    return fields


def check_param_names(names):
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in PARAM_RANGES]
    if not names or unknown or len(set(names)) != len(names):
        raise UserInputError(f"parameter names {','.join(map(str, names))}: expected distinct "
                             f"names among {', '.join(PARAM_NAMES)}")
    return names


@dataclasses.dataclass
class CMDMaps:
    """Memory-mapped CMD maps of one suite and set, with their simulation parameters.

    Attributes:
      root, suite, set_name: where the files are and which ones.
      fields: field names in channel order.
      maps: field -> read-only ``np.memmap`` ``(N, R, R)`` in physical units.
      params: float64 ``(n_sims, 6)``, columns ``PARAM_NAMES``.
    """

    root: str
    suite: str
    set_name: str
    fields: tuple
    maps: dict
    params: np.ndarray

    @property
    def num_maps(self):
        """N, the number of maps of each field."""
        return int(self.maps[self.fields[0]].shape[0])

    @property
    def resolution(self):
        """R, pixels per side."""
        return int(self.maps[self.fields[0]].shape[1])

    @property
    def num_simulations(self):
        """Simulations with maps: ceil(N / 15)."""
        return math.ceil(self.num_maps / MAPS_PER_SIMULATION)

    def path(self, field):
        """The file of ``field``."""
        return maps_path(self.root, field, self.suite, self.set_name)

    def simulation_of(self, map_index):
        """Simulation of map(s) ``map_index``: ``map_index // 15`` (int or int64 array)."""
        return np.asarray(map_index) // MAPS_PER_SIMULATION

    def _indices(self, indices):
        indices = np.atleast_1d(np.asarray(indices))
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise ValueError(f"indices: expected a 1-D sequence of map indices, got shape "
                             f"{indices.shape} dtype {indices.dtype}")
        indices = indices.astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_maps):
            raise ValueError(f"indices: expected map indices in [0, {self.num_maps}), got "
                             f"[{indices.min()}, {indices.max()}]")
        return indices

    def read(self, indices):
        """Maps ``indices`` as float32 ``(len, R, R, C)``, physical units, channels ``fields``.

        Only these maps are read (in increasing index order, returned in the order asked);
        a NaN or infinity in them raises UserInputError naming the file and the map.
        """
        indices = self._indices(indices)
        order = np.argsort(indices, kind="stable")
        out = np.empty((len(indices), self.resolution, self.resolution, len(self.fields)),
                       dtype=np.float32)
        for c, field in enumerate(self.fields):
            block = np.asarray(self.maps[field][indices[order]])
            _check_finite_block(block, indices[order], self.path(field))
            out[order, ..., c] = block
        return out

    def parameters(self, indices, names=("Omega_m", "sigma_8")):
        """Physical parameters ``names`` of the simulations of maps ``indices``: float64
        ``(len, len(names))``."""
        names = check_param_names(names)
        columns = [PARAM_NAMES.index(n) for n in names]
        return self.params[self.simulation_of(self._indices(indices))][:, columns]

    def check_finite(self, chunk=64):
        """Scan every map of every field, ``chunk`` maps at a time (bounded memory);
        UserInputError naming the file and the first map with a NaN or infinity."""
        if int(chunk) != chunk or chunk < 1:
            raise ValueError(f"chunk={chunk!r}: expected a positive integer")
        for field in self.fields:
            for start in range(0, self.num_maps, int(chunk)):
                block = self.maps[field][start:start + int(chunk)]
                _check_finite_block(block, np.arange(start, start + len(block)),
                                    self.path(field))


def _check_finite_block(block, indices, path):
    finite = np.isfinite(block).all(axis=(1, 2))
    if not finite.all():
        raise UserInputError(f"{path}: map {indices[np.argmin(finite)]} holds NaN or infinite "
                             "values; expected finite maps")


def _open_field(path, field, suite):
    if not os.path.isfile(path):
        hint = (f" (the {field} field exists only for suite {MAGNETIC_SUITE})"
                if field == "B" and suite != MAGNETIC_SUITE else "")
        raise UserInputError(f"{path}: file not found{hint}")
    try:
        maps = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserInputError(f"{path}: not a readable .npy array ({err})") from err
    if (maps.ndim != 3 or maps.shape[1] != maps.shape[2] or maps.shape[0] < 1
            or not np.issubdtype(maps.dtype, np.floating)):
        raise UserInputError(f"{path}: expected a float (N, R, R) array of N >= 1 square maps, "
                             f"got {maps.dtype} {maps.shape}")
    return maps


def _load_params(path, num_maps):
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: parameter file not found")
    try:
        params = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise UserInputError(f"{path}: not a table of numbers ({err})") from err
    needed = math.ceil(num_maps / MAPS_PER_SIMULATION)
    if params.shape[1] != len(PARAM_NAMES):
        raise UserInputError(f"{path}: expected {len(PARAM_NAMES)} columns "
                             f"({', '.join(PARAM_NAMES)}), got {params.shape[1]}")
    if params.shape[0] < needed:
        raise UserInputError(f"{path}: {params.shape[0]} rows; expected one per simulation, "
                             f"at least {needed} for {num_maps} maps ({MAPS_PER_SIMULATION} "
                             "per simulation)")
    bad = ~np.isfinite(params).all(axis=1)
    if bad.any():
        raise UserInputError(f"{path}: row {np.argmax(bad)} (simulation {np.argmax(bad)}) holds "
                             "NaN or infinite values; expected finite parameters")
    return params


def open_cmd(root, suite="IllustrisTNG", set_name="LH", fields=CMD_FIELDS):
    """Memory-map the CMD maps of ``fields`` and load the parameters of one suite and set.

    Checks shapes, dtypes, that all fields hold the same N maps of R^2 pixels, and that the
    parameter file has 6 finite columns and a row for each of the ceil(N / 15) simulations.
    The maps' values are checked only when read (``CMDMaps.read``) or scanned
    (``CMDMaps.check_finite``).
    """
    fields = check_fields(fields)
    maps = {f: _open_field(maps_path(root, f, suite, set_name), f, suite) for f in fields}
    first = fields[0]
    for f in fields[1:]:
        if maps[f].shape != maps[first].shape:
            raise UserInputError(f"{maps_path(root, f, suite, set_name)}: shape "
                                 f"{maps[f].shape} differs from {maps[first].shape} of "
                                 f"{maps_path(root, first, suite, set_name)}; expected the same "
                                 "N maps of R x R pixels for every field")
    params = _load_params(params_path(root, suite, set_name), maps[first].shape[0])
    return CMDMaps(root=root, suite=suite, set_name=set_name, fields=fields, maps=maps,
                   params=params)


def _channel_ranges(fields, n_channels):
    fields = check_fields(fields)
    if n_channels != len(fields):
        raise ValueError(f"maps: {n_channels} channels on the last axis, expected "
                         f"{len(fields)} for fields {','.join(fields)}")
    lo, hi = np.array([LOG10_RANGES[f] for f in fields]).T
    return lo, hi


def _float_dtype(x):
    return x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64


def normalise_maps(maps, fields):
    """Physical maps ``(..., C)`` -> 2 (log10 m - lo) / (hi - lo) - 1 per channel.

    ``LOG10_RANGES`` (lo, hi) map onto [-1, 1]; values outside are not clipped. Non-positive
    values (no log10) are floored to 10^lo, i.e. become -1. Float32 in, float32 out.
    """
    maps = np.asarray(maps)
    lo, hi = _channel_ranges(fields, maps.shape[-1])
    positive = maps > 0
    log_maps = np.where(positive, np.log10(np.where(positive, maps, 1.0), dtype=np.float64), lo)
    return (2.0 * (log_maps - lo) / (hi - lo) - 1.0).astype(_float_dtype(maps))


def denormalise_maps(x, fields):
    """Inverse of :func:`normalise_maps`: ``(..., C)`` in [-1, 1] -> physical maps."""
    x = np.asarray(x)
    lo, hi = _channel_ranges(fields, x.shape[-1])
    return (10.0 ** (lo + (x.astype(np.float64) + 1.0) * (hi - lo) / 2.0)).astype(_float_dtype(x))


def _param_ranges(names, n_columns):
    names = check_param_names(names)
    if n_columns != len(names):
        raise ValueError(f"theta: {n_columns} columns, expected {len(names)} for "
                         f"{','.join(names)}")
    ranges = [PARAM_RANGES[n] for n in names]
    log = np.array([r.log for r in ranges])
    lo = np.array([np.log10(r.low) if r.log else r.low for r in ranges])
    hi = np.array([np.log10(r.high) if r.log else r.high for r in ranges])
    return lo, hi, log


def normalise_params(theta, names=("Omega_m", "sigma_8")):
    """Physical parameters ``(..., n)`` (columns ``names``) -> [-1, 1] over the LH ranges
    (log10 first for the log-uniform ones). Float64 out."""
    theta = np.asarray(theta, dtype=np.float64)
    lo, hi, log = _param_ranges(names, theta.shape[-1])
    value = np.where(log, np.log10(np.where(log, theta, 1.0)), theta)
    return 2.0 * (value - lo) / (hi - lo) - 1.0


def denormalise_params(x, names=("Omega_m", "sigma_8")):
    """Inverse of :func:`normalise_params`: ``(..., n)`` in [-1, 1] -> physical values."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi, log = _param_ranges(names, x.shape[-1])
    value = lo + (x + 1.0) * (hi - lo) / 2.0
    return np.where(log, 10.0 ** value, value)


def split_simulations(num_simulations, fractions=(0.8, 0.1, 0.1), seed=0):
    """Random train/validation/test split of simulations (never of maps).

    Set sizes are ``fractions * num_simulations`` rounded by largest remainder; a set with a
    positive fraction gets at least one simulation (taken from the largest set).
    Returns ``{"train", "validation", "test"}`` -> sorted int64 simulation indices: disjoint,
    together ``range(num_simulations)``, the same for the same seed.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    positive = fractions > 0
    if (fractions.shape != (3,) or (fractions < 0).any()
            or not math.isclose(fractions.sum(), 1.0, abs_tol=1e-6)):
        raise UserInputError(f"fractions={tuple(fractions.tolist())}: expected three "
                             "non-negative train/validation/test fractions summing to 1")
    if int(num_simulations) != num_simulations or num_simulations < positive.sum():
        raise UserInputError(f"num_simulations={num_simulations}: expected an integer >= "
                             f"{positive.sum()}, one simulation for each non-empty set")
    n = int(num_simulations)
    exact = fractions / fractions.sum() * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[:n - counts.sum()]] += 1
    for i in np.flatnonzero(positive & (counts == 0)):
        counts[np.argmax(counts)] -= 1
        counts[i] = 1
    order = np.random.default_rng(seed).permutation(n)
    parts = np.split(order, np.cumsum(counts)[:-1])
    return {name: np.sort(part).astype(np.int64)
            for name, part in zip(("train", "validation", "test"), parts)}


def map_indices(simulations, maps_per_simulation=MAPS_PER_SIMULATION, num_maps=None):
    """Indices of the maps of ``simulations`` (in that order), int64; ``num_maps``: drop the
    indices >= num_maps (a last, incomplete simulation)."""
    simulations = np.asarray(simulations, dtype=np.int64).ravel()
    indices = (simulations[:, None] * maps_per_simulation
               + np.arange(maps_per_simulation)).ravel()
    return indices if num_maps is None else indices[indices < num_maps]
