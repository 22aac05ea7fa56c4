"""SYNTHETIC stand-in for the cosmic-ray turbulence boxes: five classes of FITS cubes.

Every snapshot (class c, snapshot j, ``seed``) is built from a periodic 3D Gaussian random field
g (:func:`tfastro.fields.random_fields.gaussian_random_field`, random stream (seed, c, j)) with

    P(k) ∝ k^-beta exp(-(k / k_c)^2),   k in units of the fundamental mode, k_c = N / lambda_c,

rescaled to zero mean and unit standard deviation (lambda_c is a wavelength in cells, so a tile
of a given number of pixels looks alike at every cube size N). The classes (``SYNTHETIC_CLASSES``):

  0 mhd                    beta = 11/3 (Kolmogorov), lambda_c = 2 cells (the grid scale)
  1 cr_advection           beta = 3 (shallower: more small-scale structure), lambda_c = 2
  2 cr_diffusion           beta = 11/3, lambda_c = 6 cells (smoothed)
  3 cr_diffusion_100kappa  beta = 11/3, lambda_c = 16 cells (smoothest, like fast diffusion)
  4 cr_streaming           a class-2 field g whose phases are those of the sharpened field
                           t = sign(g) |g|^0.3 (front-like steps) and whose Fourier amplitudes
                           are g's: g4 = IFFT(|FFT g| FFT t / |FFT t|). Same amplitude spectrum
                           as class 2 (exactly, mode by mode, for the same random stream), only
                           the phases differ; still zero mean and unit variance (Parseval).

Classes 0-3 are Gaussian, so their phase-only ("flattened power") images are statistically
identical; class 4's phases are coupled and stay distinct.

Fields (float32 [z, y, x] cubes, FITS layout of :mod:`tfastro.turbulence.io`), with
s = (ln rho - <ln rho>) / std(ln rho), which equals g (g4 for class 4):

  density                  rho = RHO0 exp(SIGMA_LN_RHO g) / <exp(SIGMA_LN_RHO g)>    [g cm-3]
  magnetic_energy_density  e_B = E_B0 exp(1.5 tanh(s)^2 + eps_B)  (pointwise)        [erg cm-3]
  cr_energy_density        e_c = E_C0 exp(cos(2 s1) + eps_c)                         [erg cm-3]

with s1 the standardised Gaussian smoothing (1 cell) of s (cosmic rays diffuse over a small
kernel) and eps_B, eps_c independent white noise of standard deviation ``NOISE`` = 0.05
(random stream (seed, c, j, 1)). Both are non-monotonic in the density, so neither the
identity map nor the mean predicts them; the same maps hold in every class.

Files: ``out_dir/<class>/snapshot_<j>.fits`` (j = 000, 001, ...), primary header SIMCLASS,
CLASSIDX, SNAPSHOT, SEED, ORIGIN and SYNTH = True (synthetic).
"""
import dataclasses
import os

import numpy as np
from scipy import ndimage

from tfastro.core.cli import synthetic_main
from tfastro.core.errors import UserInputError
from tfastro.fields.random_fields import gaussian_random_field
from tfastro.turbulence.io import FIELDS, TURBULENCE_CLASSES, write_fits_cubes

__all__ = ["SyntheticClass", "SYNTHETIC_CLASSES", "SIGMA_LN_RHO", "RHO0", "E_B0", "E_C0", "NOISE",
           "SYNTHETIC_UNITS", "planted_spectrum", "class_gaussian_field", "synthetic_snapshot",
           "snapshot_path", "write_synthetic_turbulence"]


#: Standard deviation of ln(rho).
SIGMA_LN_RHO = 0.5


#: Mean gas density (g cm^-3); scales of the magnetic and cosmic-ray energy densities (erg cm^-3)
#: (n ~ 1 cm^-3 at 1e4 K, plasma beta ~ 10, cosmic-ray pressure ~ gas pressure).
RHO0, E_B0, E_C0 = 2.0e-24, 1.4e-13, 4.0e-12


#: Standard deviation of the white noise added to ln e_B and ln e_c.
NOISE = 0.05


#: BUNIT of each field.
SYNTHETIC_UNITS = {"density": "g cm-3", "cr_energy_density": "erg cm-3",
                   "magnetic_energy_density": "erg cm-3"}


@dataclasses.dataclass(frozen=True)
class SyntheticClass:
    """Spectrum of a class: P(k) ∝ k^-beta exp(-(k lambda_c / N)^2); ``sharpen``: exponent p of
    the sign-preserving transform whose phases the field takes (None: Gaussian)."""

    beta: float
    cutoff_cells: float
    sharpen: float = None


#: The planted classes, keyed by the names of ``TURBULENCE_CLASSES`` (module docstring).
SYNTHETIC_CLASSES = {
    "mhd": SyntheticClass(11.0 / 3.0, 2.0),
    "cr_advection": SyntheticClass(3.0, 2.0),
    "cr_diffusion": SyntheticClass(11.0 / 3.0, 6.0),
    "cr_diffusion_100kappa": SyntheticClass(11.0 / 3.0, 16.0),
    "cr_streaming": SyntheticClass(11.0 / 3.0, 6.0, sharpen=0.3),
}


def planted_spectrum(k, name, size):
    """Unnormalised P(k) of class ``name``'s Gaussian field on a ``size``^3 grid (k in units of
    the fundamental mode; 0 at k = 0)."""
    spec = SYNTHETIC_CLASSES[name]
    k = np.asarray(k, dtype=np.float64)
    safe = np.where(k > 0, k, 1.0)
    power = safe ** -spec.beta * np.exp(-(safe * spec.cutoff_cells / size) ** 2)
    return np.where(k > 0, power, 0.0)


def _standardised(field):
    return (field - field.mean()) / field.std()


def _sharpened_phases(g, p):
    """IFFT(|FFT g| FFT t / |FFT t|) with t = sign(g) |g|^p."""
    modes = np.fft.rfftn(g)
    sharp = np.fft.rfftn(np.sign(g) * np.abs(g) ** p)
    amplitude = np.abs(sharp)
    phases = np.divide(sharp, amplitude, out=np.zeros_like(sharp), where=amplitude > 0)
    return np.fft.irfftn(np.abs(modes) * phases, s=g.shape, axes=range(g.ndim))


def class_gaussian_field(name, size, seed):
    """Zero-mean, unit-variance field g of class ``name`` (g4 for cr_streaming), float64
    ``(size,) * 3``; ``seed`` is the random stream (anything ``np.random.default_rng`` takes)."""
    spec = SYNTHETIC_CLASSES[name]
    # A box of side 2 pi puts k in units of the fundamental mode.
    g = _standardised(gaussian_random_field((size,) * 3, 2.0 * np.pi,
                                            lambda k: planted_spectrum(k, name, size), seed))
    return g if spec.sharpen is None else _sharpened_phases(g, spec.sharpen)


def synthetic_snapshot(name, size, seed):
    """The fields of one snapshot of class ``name``: field -> float32 ``(size,) * 3``.

    ``seed`` is a sequence of ints, e.g. (seed, class index, snapshot); the field noise uses
    ``seed + (1,)``.
    """
    seed = tuple(seed)
    g = class_gaussian_field(name, size, seed)
    rho = np.exp(SIGMA_LN_RHO * g)
    rho *= RHO0 / rho.mean()
    s = _standardised(np.log(rho))
    smooth = _standardised(ndimage.gaussian_filter(s, 1.0, mode="wrap"))
    noise = np.random.default_rng(seed + (1,)).normal(0.0, NOISE, (2,) + g.shape)
    cubes = {"density": rho,
             "cr_energy_density": E_C0 * np.exp(np.cos(2.0 * smooth) + noise[0]),
             "magnetic_energy_density": E_B0 * np.exp(1.5 * np.tanh(s) ** 2 + noise[1])}
    return {field: cubes[field].astype(np.float32) for field in FIELDS}


def snapshot_path(out_dir, name, snapshot):
    """``out_dir/<name>/snapshot_<snapshot:03d>.fits``."""
    return os.path.join(out_dir, name, f"snapshot_{snapshot:03d}.fits")


def write_synthetic_turbulence(out_dir, size=128, snapshots=6, seed=0, overwrite=False):
    """Write ``snapshots`` FITS snapshots of each class of ``TURBULENCE_CLASSES`` to
    ``out_dir/<class>/`` (module docstring). Returns the paths, class by class.

    Refuses (UserInputError) to replace existing files unless ``overwrite``.
    """
    if size < 8:
        raise UserInputError(f"size={size}: expected at least 8 cells per side")
    if snapshots < 1:
        raise UserInputError(f"snapshots={snapshots}: expected at least 1")
    paths = [(label, name, j, snapshot_path(out_dir, name, j))
             for label, name in enumerate(TURBULENCE_CLASSES) for j in range(snapshots)]
    existing = [p for *_, p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise UserInputError(f"{existing[0]}: file exists; refusing to overwrite "
                             f"{len(existing)} snapshot file(s) (pass overwrite=True, or "
                             "--overwrite, to replace them)")
    for label, name, j, path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        header = {"SIMCLASS": name, "CLASSIDX": label, "SNAPSHOT": j, "SEED": seed,
                  "ORIGIN": "tfastro synthetic turbulence", "SYNTH": True}
        write_fits_cubes(path, synthetic_snapshot(name, size, (seed, label, j)),
                         SYNTHETIC_UNITS, header, overwrite=overwrite)
    return [p for *_, p in paths]


def _write(args):
    paths = write_synthetic_turbulence(
        args.out, size=args.size, snapshots=args.snapshots, seed=args.seed,
        overwrite=args.overwrite)
    lines = "".join(f"  {name}: P(k) ∝ k^-{spec.beta:.3g} exp(-(k / k_c)^2), lambda_c = "
                    f"{spec.cutoff_cells:g} cells"
                    + (f", phases of sign(g) |g|^{spec.sharpen:g}\n" if spec.sharpen else "\n")
                    for name, spec in SYNTHETIC_CLASSES.items())
    print(f"Wrote SYNTHETIC cosmic-ray turbulence snapshots (random fields, not simulation "
          f"output) to {args.out}\n"
          f"  {len(paths)} FITS files: {args.snapshots} snapshots x "
          f"{len(SYNTHETIC_CLASSES)} classes of {args.size}^3 cubes "
          f"(density, cr_energy_density, magnetic_energy_density), seed {args.seed}\n" + lines
          + f"  e.g. {paths[0]}")


def _add_arguments(parser):
    parser.add_argument("--size", type=int, default=128, help="cube side in cells (default "
                        "128: 25 MB per snapshot, 750 MB in all)")
    parser.add_argument("--snapshots", type=int, default=6,
                        help="snapshots per class (default 6)")


def main(argv=None):
    """``python -m tfastro.synthetic turbulence``; returns the exit status (2 for bad input)."""
    return synthetic_main("python -m tfastro.synthetic turbulence",
                          "cosmic-ray turbulence classes as FITS cubes",
                          "output directory (one folder per class)", _add_arguments, _write, argv)
