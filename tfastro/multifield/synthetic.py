"""SYNTHETIC stand-in for the CAMELS multifield maps, with known statistics, in the real layout.

Model (all choices of this module, not fitted to CAMELS):

* Parameters: one row per simulation from a Latin hypercube over ``PARAM_RANGES`` (the
  log-uniform ones stratified in log10); only Omega_m and sigma_8 shape the maps.
* Each map: three unit-free Gaussian random fields g_c on the periodic 25 h^-1 Mpc square with
  the same spectrum (normalisation of :func:`tfastro.fields.spectra.power_spectrum`)

      P_g(k) = A sigma_8^2 (k / k_p)^n(Omega_m) exp(-(k / k_c)^2),
      A = 2.5 (h^-1 Mpc)^2, k_p = 1 h/Mpc, n(Omega_m) = -2 - 2 (Omega_m - 0.3),
      k_c = k_Nyq / 2 = pi R / (2 L)   (smooth at the pixel scale at every resolution R),

  and constant cross-correlation coefficients ``TRUE_CROSS_CORRELATION``
  (Mgas-HI 0.9, Mgas-B 0.7, HI-B 0.6), drawn by
  :func:`tfastro.fields.random_fields.correlated_fields`. At the fiducial (0.3, 0.8) on 256^2
  pixels std(g) ~ 1.
* log10(map_c) = ``LOG10_MEAN[c]`` + ``LOG10_SCALE[c]`` g_c: CMD-like log10 means
  (Mgas 10.41, HI 4.78, B -12.47), spreads of 0.5, 0.9 and 0.7 dex at std(g) = 1; stored as
  float32 10^(...) in physical units. All pixels lie inside ``LOG10_RANGES`` at the fiducial
  parameters; at the LH corner (Omega_m, sigma_8) = (0.1, 1.0) on 256^2 pixels about 3e-4 of
  the HI and B pixels fall below their range (normalised values down to about -1.2).

The normalised maps x_c = 2 (log10 m_c - lo_c) / (hi_c - lo_c) - 1 are therefore Gaussian with
the exact spectrum :func:`true_log_spectrum` and cross-correlation ``TRUE_CROSS_CORRELATION``.

Seeds: map j of simulation s of a file written with ``seed`` uses the random stream
(seed, 0, s, j); map j of :func:`synthetic_maps_at` uses (seed, 1, 0, j).
"""
import os

import numpy as np

from tfastro.core.cli import synthetic_main
from tfastro.core.errors import UserInputError
from tfastro.fields.random_fields import correlated_fields
from tfastro.multifield.io import (BOX_SIZE, CMD_FIELDS, LOG10_RANGES, MAGNETIC_SUITE,
                                   MAPS_PER_SIMULATION, PARAM_NAMES, check_fields,
                                   denormalise_params, maps_path, params_path)

__all__ = ["LOG10_MEAN", "LOG10_SCALE", "TRUE_CROSS_CORRELATION", "AMPLITUDE", "PIVOT_K",
           "DEFAULT_SIMULATIONS", "spectral_index", "cutoff_wavenumber", "gaussian_spectrum",
           "true_log_spectrum", "latin_hypercube_params", "synthetic_cmd_maps",
           "synthetic_maps_at", "write_synthetic_cmd"]


#: Mean of log10 of each field (CMD LH means).
LOG10_MEAN = {"Mgas": 10.41, "HI": 4.78, "B": -12.47}


#: dex of log10(field) per unit of the Gaussian field g.
LOG10_SCALE = {"Mgas": 0.5, "HI": 0.9, "B": 0.7}


#: r_ij of the fields (and of their normalised log maps) at every k.
TRUE_CROSS_CORRELATION = {("Mgas", "HI"): 0.9, ("Mgas", "B"): 0.7, ("HI", "B"): 0.6}


#: A of P_g, (h^-1 Mpc)^2.
AMPLITUDE = 2.5


#: Pivot wavenumber k_p of the spectral tilt, h/Mpc.
PIVOT_K = 1.0


#: Simulations written by default: 720 maps, 566 MB at 256^2, about 40 s on one CPU core.
DEFAULT_SIMULATIONS = 48


def spectral_index(omega_m):
    """n(Omega_m) = -2 - 2 (Omega_m - 0.3): -1.6 at Omega_m = 0.1, -2.4 at 0.5."""
    return -2.0 - 2.0 * (np.asarray(omega_m, dtype=np.float64) - 0.3)


def cutoff_wavenumber(resolution):
    """k_c = k_Nyq / 2 = pi R / (2 L) in h/Mpc for R pixels a side."""
    return np.pi * resolution / (2.0 * BOX_SIZE)


def gaussian_spectrum(k, omega_m, sigma_8, resolution):
    """P_g(k) of the unit-free Gaussian fields, (h^-1 Mpc)^2; 0 at k = 0 (zero mode removed)."""
    k = np.asarray(k, dtype=np.float64)
    safe = np.where(k > 0, k, 1.0)
    power = (AMPLITUDE * sigma_8**2 * (safe / PIVOT_K) ** spectral_index(omega_m)
             * np.exp(-(safe / cutoff_wavenumber(resolution)) ** 2))
    return np.where(k > 0, power, 0.0)


def true_log_spectrum(k, omega_m, sigma_8, field, resolution):
    """Exact P(k) of the normalised [-1, 1] log map of ``field`` (``normalise_maps``), in the
    convention of :func:`tfastro.fields.spectra.power_spectrum` with box ``BOX_SIZE``:
    (2 s_c / (hi_c - lo_c))^2 P_g(k), s_c = ``LOG10_SCALE[field]``, at wavenumbers ``k`` h/Mpc
    (a measured bin compares with the mean over its modes)."""
    (field,) = check_fields(field)
    lo, hi = LOG10_RANGES[field]
    gain = 2.0 * LOG10_SCALE[field] / (hi - lo)
    return gain**2 * gaussian_spectrum(k, omega_m, sigma_8, resolution)


def _correlation_matrix():
    r = np.eye(len(CMD_FIELDS))
    for (a, b), value in TRUE_CROSS_CORRELATION.items():
        i, j = CMD_FIELDS.index(a), CMD_FIELDS.index(b)
        r[i, j] = r[j, i] = value
    return r


def _log10_map(omega_m, sigma_8, resolution, seed):
    """log10 of the three fields, float64 ``(R, R, 3)`` in ``CMD_FIELDS`` order."""

    def power(k):
        return gaussian_spectrum(k, omega_m, sigma_8, resolution)

    g = correlated_fields((resolution, resolution), BOX_SIZE, [power] * len(CMD_FIELDS),
                          _correlation_matrix(), seed)
    mean = np.array([LOG10_MEAN[f] for f in CMD_FIELDS])
    scale = np.array([LOG10_SCALE[f] for f in CMD_FIELDS])
    return mean + scale * np.moveaxis(g, 0, -1)


def _physical(log_maps, fields):
    channels = [CMD_FIELDS.index(f) for f in check_fields(fields)]
    return (10.0 ** log_maps[..., channels]).astype(np.float32)


def _check_resolution(resolution):
    if int(resolution) != resolution or resolution < 2:
        raise UserInputError(f"resolution={resolution}: expected an integer >= 2 pixels a side")
    return int(resolution)


def latin_hypercube_params(num_simulations, seed=0):
    """float64 ``(num_simulations, 6)`` parameters (columns ``PARAM_NAMES``): each column takes
    one value in each of ``num_simulations`` equal strata of its LH range (in log10 for the
    log-uniform ones), the strata shuffled independently per column."""
    rng = np.random.default_rng(seed)
    n, d = int(num_simulations), len(PARAM_NAMES)
    unit = (np.stack([rng.permutation(n) for _ in range(d)], axis=1)
            + rng.uniform(size=(n, d))) / n
    return denormalise_params(2.0 * unit - 1.0, PARAM_NAMES)


def _simulation_maps(theta, simulation, resolution, seed, maps_per_simulation, fields):
    """float32 ``(maps_per_simulation, R, R, C)`` physical maps of one simulation."""
    omega_m, sigma_8 = theta[0], theta[1]
    return np.stack([_physical(_log10_map(omega_m, sigma_8, resolution,
                                          [seed, 0, simulation, j]), fields)
                     for j in range(maps_per_simulation)])


def synthetic_cmd_maps(theta_rows, resolution, seed, maps_per_simulation=MAPS_PER_SIMULATION,
                       fields=CMD_FIELDS):
    """The maps ``write_synthetic_cmd`` writes for parameter rows ``theta_rows``, in memory.

    Args:
      theta_rows: ``(n_sims, >= 2)`` physical parameters (columns Omega_m, sigma_8, ...).
      resolution: R pixels a side.
      seed: the file seed.
    Returns:
      float32 ``(n_sims * maps_per_simulation, R, R, C)`` physical maps, channels ``fields``.
    """
    theta_rows = np.atleast_2d(np.asarray(theta_rows, dtype=np.float64))
    resolution = _check_resolution(resolution)
    return np.concatenate([_simulation_maps(theta, s, resolution, seed, maps_per_simulation,
                                            fields)
                           for s, theta in enumerate(theta_rows)])


def synthetic_maps_at(omega_m, sigma_8, n_maps, resolution, seed=0, fields=CMD_FIELDS):
    """``n_maps`` independent synthetic maps at (Omega_m, sigma_8): float32 ``(n, R, R, C)``
    physical units (random streams distinct from those of the written files)."""
    resolution = _check_resolution(resolution)
    return np.stack([_physical(_log10_map(omega_m, sigma_8, resolution, [seed, 1, 0, j]),
                               fields)
                     for j in range(int(n_maps))])


def write_synthetic_cmd(out_dir, resolution=256, num_simulations=DEFAULT_SIMULATIONS,
                        suite="IllustrisTNG", set_name="LH", fields=CMD_FIELDS, seed=0,
                        overwrite=False):
    """Write synthetic ``Maps_{field}_{suite}_{set}_z=0.00.npy`` (float32 ``(15 n, R, R)``) and
    ``params_{set}_{suite}.txt`` (Latin hypercube, 6 columns, a '#' header marking them as
    synthetic) into ``out_dir``, one simulation at a time (memory: one simulation's maps).

    Refuses (UserInputError naming the file) to replace existing files unless ``overwrite``.
    Returns the paths written, maps in ``fields`` order then the parameter file.
    """
    resolution = _check_resolution(resolution)
    fields = check_fields(fields)
    if int(num_simulations) != num_simulations or num_simulations < 1:
        raise UserInputError(f"num_simulations={num_simulations}: expected an integer >= 1")
    if "B" in fields and suite != MAGNETIC_SUITE:
        raise UserInputError(f"fields={','.join(fields)}, suite={suite}: the B field exists "
                             f"only for suite {MAGNETIC_SUITE}")
    map_files = [maps_path(out_dir, f, suite, set_name) for f in fields]
    params_file = params_path(out_dir, suite, set_name)
    for path in map_files + [params_file]:
        if os.path.exists(path) and not overwrite:
            raise UserInputError(f"{path}: file exists; refusing to overwrite it "
                                 "(pass overwrite=True / --overwrite to replace it)")
    os.makedirs(out_dir, exist_ok=True)
    params = latin_hypercube_params(num_simulations, seed)
    n_maps = int(num_simulations) * MAPS_PER_SIMULATION
    partial = [path + ".partial.npy" for path in map_files]
    outputs = [np.lib.format.open_memmap(p, mode="w+", dtype=np.float32,
                                         shape=(n_maps, resolution, resolution))
               for p in partial]
    for s, theta in enumerate(params):
        maps = _simulation_maps(theta, s, resolution, seed, MAPS_PER_SIMULATION, fields)
        for c, out in enumerate(outputs):
            out[s * MAPS_PER_SIMULATION:(s + 1) * MAPS_PER_SIMULATION] = maps[..., c]
    for out, tmp, path in zip(outputs, partial, map_files):
        out.flush()
        os.replace(tmp, path)
    np.savetxt(params_file, params, header=f"SYNTHETIC stand-in (tfastro, seed {seed}): "
               + " ".join(PARAM_NAMES))
    return tuple(map_files) + (params_file,)


def _write(args):
    fields = tuple(f for f in CMD_FIELDS if f != "B" or args.suite == MAGNETIC_SUITE)
    paths = write_synthetic_cmd(
        args.out, resolution=args.resolution, num_simulations=args.simulations,
        suite=args.suite, set_name=args.set, fields=fields, seed=args.seed,
        overwrite=args.overwrite)
    n_maps = args.simulations * MAPS_PER_SIMULATION
    print(f"Wrote SYNTHETIC CAMELS multifield maps (Gaussian log-fields, not simulation output) "
          f"to {args.out}\n"
          f"  {args.simulations} simulations x {MAPS_PER_SIMULATION} maps = {n_maps} maps of "
          f"{args.resolution}^2 pixels per field, seed {args.seed}\n"
          + "".join(f"  {path}\n" for path in paths[:-1])
          + f"  {paths[-1]} (Latin hypercube, columns {' '.join(PARAM_NAMES)})")


def _add_arguments(parser):
    parser.add_argument("--resolution", type=int, default=256,
                        help="pixels per map side (default 256)")
    parser.add_argument("--simulations", type=int, default=DEFAULT_SIMULATIONS,
                        help=f"simulations, {MAPS_PER_SIMULATION} maps each (default "
                             f"{DEFAULT_SIMULATIONS}: 566 MB at 256^2, under a minute)")
    parser.add_argument("--suite", default=MAGNETIC_SUITE,
                        help=f"suite name in the file names (default {MAGNETIC_SUITE}; B is "
                             "written only for it)")
    parser.add_argument("--set", default="LH", help="set name in the file names (default LH)")


def main(argv=None):
    """``python -m tfastro.synthetic multifield``; returns the exit status (2 for bad input)."""
    return synthetic_main("python -m tfastro.synthetic multifield",
                          "CAMELS multifield maps (Mgas, HI, B) in the CMD layout",
                          "output directory", _add_arguments, _write, argv)
