"""Synthetic prestellar cores, their mock spectral (PPV) observation, files and tf.data.

Axis convention (the one used everywhere in tfastro's prestellar code)
  A 3D cube is indexed ``[ix, iy, iz]`` = physical (x, y, z) on a grid of N cells over
  [-1, 1] per axis; cell i has its centre at ``-1 + (i + 0.5) 2 / N`` ("grid units").
  The line of sight is z (numpy axis 2). The observer looks along +z, so ``v_z > 0`` is motion
  AWAY from the observer (redshift) and moves emission to a HIGHER channel index.
  A PPV cube is indexed ``[ix, iy, ic]`` (position x, position y, velocity channel); channel c
  covers ``[v_min + c dv, v_min + (c + 1) dv]`` with centre ``v_c = v_min + (c + 0.5) dv``.
  Network tensors are channels-last: PPV input ``(B, Nx, Ny, Nv, 1)``; targets
  ``(B, Nx, Ny, Nz, 2)``, channel 0 = log10(n / n_peak) (<= 0), channel 1 = v_z in km/s.

Cores (:func:`draw_core_params`, :func:`core_density`, :func:`core_velocity`)
  Density: a Plummer profile (1 + r^2 / a^2)^(-p/2) about the core centre times a positive
  structure factor exp(s g - s^2 / 2), normalised to a maximum of 1. g is the diary's "speckle"
  field, standardised: white Gaussian noise multiplied by the Lorentzian-like kernel
  1 / (1 + 1000 r^4) on a doubled grid (2N)^3 over [-2, 2]^3, the modulus of its FFT kept on the
  octant of non-negative frequencies [0, N)^3 (no pair k, -k in it, so no central symmetry);
  its grains are ~5 cells across at any N. s is the noise amplitude (rms of the factor's log).
  Velocity (km/s): solid-body rotation Omega n x (r - c) about an axis n through the centre
  ((-y, x, 0) Omega for n = z; the axis is random with n_z >= 0, so rotation adds a velocity
  gradient across the sky, constant along each column), plus infall
  v_in grad(rho) / max|grad(rho)| (towards the density peak, largest speed v_in), plus a
  systemic velocity v_sys. Omega is in km/s per grid unit (the speed at distance 1 from the
  axis).

Physical scales (spec: n_H 1e3-1e6 cm^-3, radius 0.01-1 pc, slope 1.5-2.5, T = 10 K)
  Each core draws its Plummer radius twice: a in grid units (its shape on the grid) and a_pc in
  pc; the box of that core then has the half-width h = a_pc / a pc (side 2h, cell 2h / N pc).
  The density arrays are normalised (peak 1); the peak n_H (``peak_density_cm3``) and h convert
  them: n_H = n_peak 10^log_density, and the column density of a pixel is
  N_H = n_peak h 3.0857e18 cm^-2 x sum_c PPV dv (``CoreParams.column_scale``). Velocities are
  drawn in km/s whatever the size, so the gradients in km/s/pc (``rotation / h``) are large
  for the smallest cores. Default ranges (:class:`CoreRanges`): centre offsets |c_i| <= 0.1,
  a in [0.15, 0.5], a_pc log-uniform in [0.01, 1] pc, p in [1.5, 2.5], n_peak log-uniform in
  [1e3, 1e6] cm^-3, s in [0.1, 0.3] (the spec's sigma 0.1 upwards), |Omega| in [0.3, 0.9] km/s
  with a random sign, v_in in [0.15, 0.5] km/s, v_sys in [-0.2, 0.2] km/s.

Mock observation (:func:`observe_ppv`; optically thin)
  ``PPV[ix, iy, c] = sum_z rho[ix, iy, iz] phi_c(v_z[ix, iy, iz]) dz`` with dz = 2 / Nz (grid
  units) and phi_c the line profile centred on v_z averaged over channel c: the difference of
  its CDF at the channel edges divided by dv, renormalised so that sum_c phi_c dv = 1 for every
  voxel (exact flux conservation, also for narrow lines; line wings beyond the band are put
  back in proportion). Units: (normalised density) x (grid length) / (km/s); sum_c PPV dv is
  the column sum_z rho dz. Line width: the thermal dispersion sigma = sqrt(k T / (mu m_H)) at
  T = 10 K with mu = 2.33 (the isothermal sound speed of molecular gas, 0.188 km/s). Shapes:
  Gaussian of dispersion sigma, or Lorentzian with the same FWHM (HWHM gamma = sigma
  sqrt(2 ln 2)). Default band [-2, 2] km/s: 32 channels give dv = 0.125 km/s.

Files (:func:`write_prestellar`, :func:`read_prestellar`)
  ``DIR/prestellar.h5``: datasets ``ppv`` (n_cores, N, N, Nv), ``log_density`` and ``v_los``
  (n_cores, N, N, N) float32 in the convention above, ``velocities`` (Nv,) channel centres in
  km/s, ``params`` (a table of :class:`CoreParams`, one row per core; fields ``PARAM_FIELDS``);
  attributes v_min, v_max, line_width_kms, profile, axes, synthetic.
  ``DIR/fits/core_<i>.fits``: primary HDU = the PPV cube stored as numpy (Nv, Ny, Nx), i.e.
  FITS axes 1 = x, 2 = y (CTYPE 'X', 'Y', CUNIT pc, centre at 0) and 3 = velocity (CTYPE3
  'VRAD', CUNIT3 'km/s', CRVAL3 / CDELT3 / CRPIX3), with the core's parameters as header cards;
  extensions LOG_DENSITY and V_LOS (numpy (Nz, Ny, Nx), FITS axes x, y, z in pc).

Datasets (:func:`core_dataset`, :func:`ppv_window_dataset`)
  Elements are (PPV, target) float32 pairs read core by core from the arrays (no copy of the
  whole set). Augmentation: one of the 8 symmetries of the square in the sky plane (rotations
  by 90 degrees, reflections) applied to x, y of both PPV and target; the line of sight is
  kept, and v_z is a scalar along it, so its values are unchanged.
"""
import dataclasses

import numpy as np
from scipy import special

from tfastro.core.cli import synthetic_main
from tfastro.core.errors import UserInputError

__all__ = ["cell_centres", "PROFILES", "V_RANGE", "PC_CM", "thermal_width", "CoreParams",
           "CoreRanges", "draw_core_params", "grid_coordinates", "structure_field", "core_density",
           "core_velocity", "line_profile", "observe_ppv", "channel_velocities", "make_core",
           "CoreSet", "synthetic_cores", "prestellar_targets"]


#: Line shapes of the mock observation.
PROFILES = ("gaussian", "lorentzian")


#: Default velocity band (km/s) of the PPV cubes.
V_RANGE = (-2.0, 2.0)


PC_CM = 3.0857e18


K_B = 1.380649e-16   # erg / K


M_H = 1.6735575e-24  # g


#: Name of the HDF5 file that :func:`write_prestellar` writes into its directory.


KERNEL_STEEPNESS = 1000.0  # the kernel 1 / (1 + 1000 r^4) of the structure field


def thermal_width(temperature_k=10.0, mu=2.33):
    """Thermal 1D velocity dispersion sqrt(k T / (mu m_H)) in km/s (0.188 at 10 K, mu 2.33)."""
    return float(np.sqrt(K_B * temperature_k / (mu * M_H)) / 1e5)


@dataclasses.dataclass(frozen=True)
class CoreParams:
    """Generating parameters of one core (module docstring for units and conventions).

    Attributes:
      centre: (x, y, z) of the core centre, grid units.
      radius: Plummer radius a, grid units.
      slope: Plummer slope p: rho ∝ (1 + r^2 / a^2)^(-p/2).
      radius_pc: Plummer radius in pc (sets the physical box half-width radius_pc / radius).
      peak_density_cm3: largest n_H of the cube, cm^-3 (density arrays are in its units).
      noise: amplitude s of the structure factor exp(s g - s^2 / 2).
      rotation: Omega, km/s per grid unit (signed).
      rotation_axis: unit vector n of the rotation axis (n_z >= 0).
      infall: largest infall speed v_in, km/s.
      v_sys: systemic line-of-sight velocity, km/s.
      seed: seed of the structure field's noise.
    """

    centre: tuple
    radius: float
    slope: float
    radius_pc: float
    peak_density_cm3: float
    noise: float
    rotation: float
    rotation_axis: tuple
    infall: float
    v_sys: float
    seed: int

    @property
    def half_width_pc(self):
        """Half-width h of the box in pc (grid unit 1 = h pc)."""
        return self.radius_pc / self.radius

    @property
    def column_scale(self):
        """N_H in cm^-2 per unit of sum_c PPV dv (n_peak h pc_cm)."""
        return self.peak_density_cm3 * self.half_width_pc * PC_CM


@dataclasses.dataclass(frozen=True)
class CoreRanges:
    """Ranges :func:`draw_core_params` draws from (uniform; ``radius_pc`` and
    ``peak_density_cm3`` log-uniform); a number x means [-x, x]. Units as in CoreParams."""

    centre: float = 0.1
    radius: tuple = (0.15, 0.5)
    radius_pc: tuple = (0.01, 1.0)
    slope: tuple = (1.5, 2.5)
    peak_density_cm3: tuple = (1e3, 1e6)
    noise: tuple = (0.1, 0.3)
    rotation: tuple = (0.3, 0.9)
    infall: tuple = (0.15, 0.5)
    v_sys: float = 0.2


def draw_core_params(rng, ranges=CoreRanges()):
    """Random :class:`CoreParams` from ``ranges``.

    Args:
      rng: a ``np.random.Generator`` or anything ``np.random.default_rng`` accepts.
      ranges: :class:`CoreRanges`.
    The rotation axis is isotropic on the hemisphere n_z >= 0 and the sign of Omega random.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def log_uniform(lo_hi):
        return float(np.exp(rng.uniform(*np.log(lo_hi))))

    centre = tuple(float(c) for c in rng.uniform(-ranges.centre, ranges.centre, 3))
    radius = float(rng.uniform(*ranges.radius))
    cos_i, azimuth = rng.uniform(0.0, 1.0), rng.uniform(0.0, 2.0 * np.pi)
    sin_i = np.sqrt(1.0 - cos_i**2)
    axis = (float(sin_i * np.cos(azimuth)), float(sin_i * np.sin(azimuth)), float(cos_i))
    return CoreParams(
        centre=centre, radius=radius, slope=float(rng.uniform(*ranges.slope)),
        radius_pc=log_uniform(ranges.radius_pc),
        peak_density_cm3=log_uniform(ranges.peak_density_cm3),
        noise=float(rng.uniform(*ranges.noise)),
        rotation=float(rng.choice([-1.0, 1.0]) * rng.uniform(*ranges.rotation)),
        rotation_axis=axis, infall=float(rng.uniform(*ranges.infall)),
        v_sys=float(rng.uniform(-ranges.v_sys, ranges.v_sys)),
        seed=int(rng.integers(2**31)))


def grid_coordinates(n):
    """Cell centres on [-1, 1]: ``(x, y, z)``, each float64 ``(n, n, n)`` indexed [ix, iy, iz]."""
    centres = cell_centres(n)
    return np.meshgrid(centres, centres, centres, indexing="ij")


def structure_field(n, seed):
    """The standardised speckle field g (module docstring): float64 ``(n, n, n)``, mean 0,
    standard deviation 1, no central symmetry."""
    m = 2 * n
    centres = -2.0 + (np.arange(m) + 0.5) * (4.0 / m)
    r2 = centres[:, None, None] ** 2 + centres[None, :, None] ** 2 + centres[None, None, :] ** 2
    kernel = 1.0 / (1.0 + KERNEL_STEEPNESS * r2**2)
    noise = np.random.default_rng(seed).standard_normal((m, m, m))
    modulus = np.abs(np.fft.rfftn(kernel * noise))[:n, :n, :n]
    return (modulus - modulus.mean()) / modulus.std()


def _check_grid(n):
    if int(n) != n or n < 4:
        raise UserInputError(f"grid n={n}: expected at least 4 cells per side")
    return int(n)


def core_density(params, n):
    """Normalised density ``(n, n, n)`` float32 [ix, iy, iz], maximum exactly 1.

    Plummer profile (1 + r^2 / a^2)^(-p/2) about ``params.centre`` times
    exp(s g - s^2 / 2), g = :func:`structure_field` (n, ``params.seed``), s = ``params.noise``.
    """
    n = _check_grid(n)
    x, y, z = grid_coordinates(n)
    cx, cy, cz = params.centre
    r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
    rho = (1.0 + r2 / params.radius**2) ** (-params.slope / 2.0)
    if params.noise:
        s = params.noise
        rho = rho * np.exp(s * structure_field(n, params.seed) - s**2 / 2.0)
    return (rho / rho.max()).astype(np.float32)


def core_velocity(params, n, density=None):
    """Velocity field in km/s: float32 ``(n, n, n, 3)``, last axis (v_x, v_y, v_z).

    Rotation Omega n x (r - c) + infall v_in grad(rho) / max|grad(rho)| + (0, 0, v_sys);
    ``density`` defaults to :func:`core_density` (params, n).
    """
    n = _check_grid(n)
    rho = core_density(params, n) if density is None else np.asarray(density, np.float64)
    d = np.stack(grid_coordinates(n), axis=-1) - np.asarray(params.centre)
    rotation = params.rotation * np.cross(np.asarray(params.rotation_axis), d)
    gradient = np.stack(np.gradient(rho.astype(np.float64), 2.0 / n), axis=-1)
    steepest = np.sqrt((gradient**2).sum(axis=-1)).max()
    infall = params.infall * gradient / steepest if steepest > 0 else 0.0 * gradient
    velocity = rotation + infall
    velocity[..., 2] += params.v_sys
    return velocity.astype(np.float32)


def _check_profile(shape, width):
    if shape not in PROFILES:
        raise ValueError(f"shape={shape!r}: expected one of {', '.join(PROFILES)}")
    if not width > 0:
        raise ValueError(f"width={width}: expected a line dispersion > 0 km/s")


def _cdf(x, width, shape):
    """CDF at offsets ``x`` (km/s) of a line of dispersion ``width`` (Lorentzian: same FWHM)."""
    if shape == "gaussian":
        return 0.5 * (1.0 + special.erf(x / (width * np.sqrt(2.0))))
    gamma = width * np.sqrt(2.0 * np.log(2.0))
    return 0.5 + np.arctan(x / gamma) / np.pi


def _channel_fractions(edge_offsets, width, shape):
    """Fraction of a line in each channel from offsets ``(..., C + 1)`` of the channel edges
    from the line centre, renormalised to sum 1 over the channels: ``(..., C)``."""
    fractions = np.diff(_cdf(edge_offsets, width, shape), axis=-1)
    total = fractions.sum(axis=-1, keepdims=True)
    return np.divide(fractions, total, out=np.zeros_like(fractions), where=total > 0)


def line_profile(offsets, width, shape="gaussian", channel_width=None):
    """Line profile phi in (km/s)^-1 at velocity offsets from the line centre (km/s).

    Args:
      offsets: 1D array v_c - v_0; with ``channel_width`` the centres of contiguous channels.
      width: dispersion sigma in km/s (the Lorentzian has the same FWHM: HWHM sigma
        sqrt(2 ln 2)).
      shape: "gaussian" or "lorentzian".
      channel_width: dv in km/s: phi averaged over each channel [offset -+ dv / 2] (CDF
        differences), renormalised so that sum(phi) dv = 1 over the channels. None: the
        probability density at the offsets (unit integral over all velocities).
    Returns:
      float64 array like ``offsets``.
    """
    _check_profile(shape, width)
    offsets = np.asarray(offsets, dtype=np.float64)
    if channel_width is None:
        if shape == "gaussian":
            return np.exp(-0.5 * (offsets / width) ** 2) / (width * np.sqrt(2.0 * np.pi))
        gamma = width * np.sqrt(2.0 * np.log(2.0))
        return gamma / (np.pi * (offsets**2 + gamma**2))
    edges = np.concatenate([offsets - channel_width / 2.0, offsets[-1:] + channel_width / 2.0])
    return _channel_fractions(edges, width, shape) / channel_width


def channel_velocities(n_channels, v_range=V_RANGE):
    """Channel centres v_c = v_min + (c + 0.5) dv in km/s, float64 ``(n_channels,)``."""
    v_min, v_max = v_range
    return v_min + (np.arange(n_channels) + 0.5) * (v_max - v_min) / n_channels


def observe_ppv(density, v_los, n_channels, v_range=V_RANGE, width=None, shape="gaussian"):
    """Optically thin PPV cube (module docstring): float32 ``(Nx, Ny, n_channels)``.

    Args:
      density: ``(Nx, Ny, Nz)`` emissivity (normalised density) [ix, iy, iz].
      v_los: ``(Nx, Ny, Nz)`` line-of-sight velocity v_z in km/s (> 0: redshift).
      n_channels: channels of the band ``v_range`` = (v_min, v_max) km/s.
      width: line dispersion in km/s (default :func:`thermal_width` at 10 K).
      shape: "gaussian" or "lorentzian".
    Returns:
      PPV[ix, iy, c] = sum_z density phi_c(v_z) dz, dz = 2 / Nz; sum_c PPV dv = sum_z density dz.
    """
    width = thermal_width() if width is None else width
    _check_profile(shape, width)
    density = np.asarray(density, dtype=np.float64)
    v_los = np.asarray(v_los, dtype=np.float64)
    if density.ndim != 3 or density.shape != v_los.shape:
        raise ValueError(f"density {density.shape} and v_los {v_los.shape}: expected two "
                         "arrays of the same (Nx, Ny, Nz) shape")
    v_min, v_max = v_range
    if not (n_channels >= 1 and v_max > v_min):
        raise ValueError(f"n_channels={n_channels}, v_range={v_range}: expected >= 1 channel "
                         "and v_min < v_max")
    dv = (v_max - v_min) / n_channels
    edges = v_min + np.arange(n_channels + 1) * dv
    dz = 2.0 / density.shape[2]
    ppv = np.zeros(density.shape[:2] + (n_channels,))
    for iz in range(density.shape[2]):  # one plane at a time keeps memory at Nx Ny (C + 1)
        fractions = _channel_fractions(edges - v_los[:, :, iz, None], width, shape)
        ppv += density[:, :, iz, None] * fractions
    return (ppv * (dz / dv)).astype(np.float32)


def make_core(params, n, n_channels=32, v_range=V_RANGE, width=None, shape="gaussian"):
    """One core and its observation.

    Returns:
      dict ``ppv`` float32 (n, n, n_channels), ``log_density`` float32 (n, n, n) =
      log10(rho / rho_max), ``v_los`` float32 (n, n, n) km/s, ``params``.
    """
    density = core_density(params, n)
    v_los = core_velocity(params, n, density)[..., 2]
    ppv = observe_ppv(density, v_los, n_channels, v_range, width, shape)
    return {"ppv": ppv, "log_density": np.log10(density), "v_los": v_los, "params": params}


@dataclasses.dataclass
class CoreSet:
    """Cores and their observations (axis convention in the module docstring).

    Attributes:
      ppv: ``(n_cores, N, N, Nv)`` float32; log_density, v_los: ``(n_cores, N, N, N)`` float32.
      params: list of :class:`CoreParams`, one per core.
      v_range: (v_min, v_max) of the band, km/s; line_width: dispersion in km/s; profile: shape.
    """

    ppv: np.ndarray
    log_density: np.ndarray
    v_los: np.ndarray
    params: list
    v_range: tuple = V_RANGE
    line_width: float = dataclasses.field(default_factory=thermal_width)
    profile: str = "gaussian"

    @property
    def velocities(self):
        """Channel centres in km/s."""
        return channel_velocities(self.ppv.shape[-1], self.v_range)

    @property
    def channel_width(self):
        """dv in km/s."""
        return (self.v_range[1] - self.v_range[0]) / self.ppv.shape[-1]

    @property
    def targets(self):
        """``(n_cores, N, N, N, 2)`` float32: log10 density, v_z (km/s)."""
        return prestellar_targets(self.log_density, self.v_los)


def prestellar_targets(log_density, v_los):
    """Stack log density and v_z channels-last: ``(..., 2)`` float32."""
    return np.stack([log_density, v_los], axis=-1).astype(np.float32)


def synthetic_cores(n_cores, n=32, n_channels=32, seed=0, v_range=V_RANGE, width=None,
                    shape="gaussian", ranges=CoreRanges()):
    """``n_cores`` random cores observed as PPV cubes: a :class:`CoreSet`.

    Core i draws its parameters from ``np.random.default_rng([seed, i])``, so a set's first k
    cores are those of a set of k cores with the same seed.
    """
    if int(n_cores) != n_cores or n_cores < 1:
        raise UserInputError(f"n_cores={n_cores}: expected at least 1 core")
    n = _check_grid(n)
    if int(n_channels) != n_channels or n_channels < 2:
        raise UserInputError(f"n_channels={n_channels}: expected at least 2 channels")
    width = thermal_width() if width is None else width
    cores = [make_core(draw_core_params([seed, i], ranges), n, n_channels, v_range, width,
                       shape) for i in range(n_cores)]
    return CoreSet(ppv=np.stack([c["ppv"] for c in cores]),
                   log_density=np.stack([c["log_density"] for c in cores]),
                   v_los=np.stack([c["v_los"] for c in cores]),
                   params=[c["params"] for c in cores], v_range=tuple(map(float, v_range)),
                   line_width=float(width), profile=shape)


def cell_centres(n):
    """Coordinates of the N cell centres of a grid over [-1, 1]: ``-1 + (i + 0.5) 2 / N``."""
    return -1.0 + (np.arange(n) + 0.5) * (2.0 / n)


def _write(args):
    cores = synthetic_cores(args.cores, args.grid, args.channels, seed=args.seed,
                                       shape=args.profile)
    from tfastro.prestellar.io import write_prestellar  # io imports this module
    paths = write_prestellar(args.out, cores, overwrite=args.overwrite)
    radii = [p.radius for p in cores.params]
    print(f"Wrote SYNTHETIC prestellar cores (Plummer cores, not simulation output) to "
          f"{args.out}\n"
          f"  {paths['hdf5']}: {args.cores} cores, ppv {cores.ppv.shape[1:]} "
          f"[x, y, channel], log_density and v_los {cores.log_density.shape[1:]} [x, y, z], "
          f"params table, seed {args.seed}\n"
          f"  {len(paths['fits'])} FITS cubes, e.g. {paths['fits'][0]}\n"
          f"  band {cores.v_range[0]:g} .. {cores.v_range[1]:g} km/s in {args.channels} "
          f"channels of {cores.channel_width:.4g} km/s, {args.profile} lines of dispersion "
          f"{cores.line_width:.3f} km/s (10 K); Plummer radii {min(radii):.2f} .. "
          f"{max(radii):.2f} (grid half-widths)")


def _add_arguments(parser):
    parser.add_argument("--cores", type=int, default=64, help="number of cores (default 64)")
    parser.add_argument("--grid", type=int, default=32,
                        help="cells per side of the cubes (default 32; the spec's 64)")
    parser.add_argument("--channels", type=int, default=32,
                        help="velocity channels over -2 .. 2 km/s (default 32; the spec's 100)")
    parser.add_argument("--profile", choices=PROFILES, default="gaussian",
                        help="line shape (default gaussian)")


def main(argv=None):
    """``python -m tfastro.synthetic prestellar``; returns the exit status (2 for bad input)."""
    return synthetic_main("python -m tfastro.synthetic prestellar",
                          "prestellar cores as PPV cubes (HDF5 + FITS)", "output directory",
                          _add_arguments, _write, argv)
