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
import os

import h5py
import numpy as np
import tensorflow as tf
from astropy import units
from astropy.io import fits
from scipy import special

from tfastro.analysis.prestellar import cell_centres
from tfastro.errors import UserInputError

__all__ = ["PROFILES", "V_RANGE", "PC_CM", "PARAM_FIELDS", "HDF5_NAME", "thermal_width",
           "CoreParams", "CoreRanges", "draw_core_params", "grid_coordinates",
           "structure_field", "core_density", "core_velocity", "line_profile", "observe_ppv",
           "channel_velocities", "make_core", "CoreSet", "synthetic_cores",
           "prestellar_targets", "write_prestellar", "read_prestellar", "read_prestellar_fits",
           "core_dataset", "ppv_window_dataset"]

#: Line shapes of the mock observation.
PROFILES = ("gaussian", "lorentzian")
#: Default velocity band (km/s) of the PPV cubes.
V_RANGE = (-2.0, 2.0)
PC_CM = 3.0857e18
K_B = 1.380649e-16   # erg / K
M_H = 1.6735575e-24  # g
#: Name of the HDF5 file that :func:`write_prestellar` writes into its directory.
HDF5_NAME = "prestellar.h5"
KERNEL_STEEPNESS = 1000.0  # the kernel 1 / (1 + 1000 r^4) of the structure field


def thermal_width(temperature_k=10.0, mu=2.33):
    """Thermal 1D velocity dispersion sqrt(k T / (mu m_H)) in km/s (0.188 at 10 K, mu 2.33)."""
    return float(np.sqrt(K_B * temperature_k / (mu * M_H)) / 1e5)


# --------------------------------------------------------------------------- core parameters

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


#: Columns of the parameter table (HDF5 ``params``): scalars of :class:`CoreParams`, vectors
#: split into components.
PARAM_FIELDS = ("centre_x", "centre_y", "centre_z", "radius", "slope", "radius_pc",
                "peak_density_cm3", "noise", "rotation", "axis_x", "axis_y", "axis_z",
                "infall", "v_sys", "seed")
#: FITS header card of each parameter column.
_FITS_CARDS = dict(zip(PARAM_FIELDS, ("CENX", "CENY", "CENZ", "RADIUS", "SLOPE", "RADPC",
                                      "NPEAK", "NOISE", "OMEGA", "AXISX", "AXISY", "AXISZ",
                                      "INFALL", "VSYS", "SEED")))


def _param_row(params):
    """``PARAM_FIELDS`` -> value of one :class:`CoreParams`."""
    values = (*params.centre, params.radius, params.slope, params.radius_pc,
              params.peak_density_cm3, params.noise, params.rotation, *params.rotation_axis,
              params.infall, params.v_sys, params.seed)
    return dict(zip(PARAM_FIELDS, values))


def _params_from_row(row):
    """:class:`CoreParams` from a mapping of ``PARAM_FIELDS`` (a table row or FITS cards)."""
    f = {name: float(row[name]) for name in PARAM_FIELDS}
    return CoreParams(centre=(f["centre_x"], f["centre_y"], f["centre_z"]), radius=f["radius"],
                      slope=f["slope"], radius_pc=f["radius_pc"],
                      peak_density_cm3=f["peak_density_cm3"], noise=f["noise"],
                      rotation=f["rotation"],
                      rotation_axis=(f["axis_x"], f["axis_y"], f["axis_z"]),
                      infall=f["infall"], v_sys=f["v_sys"], seed=int(f["seed"]))


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


# --------------------------------------------------------------------------- density, velocity

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


# --------------------------------------------------------------------------- mock observation

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


# --------------------------------------------------------------------------- sets of cores

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


# --------------------------------------------------------------------------- files

AXES_NOTE = ("cubes [ix, iy, iz], line of sight z (axis 2), v_z > 0 away from the observer; "
             "ppv [ix, iy, ic], v_c = v_min + (c + 0.5) dv")


def _fits_paths(out_dir, n_cores):
    return [os.path.join(out_dir, "fits", f"core_{i:04d}.fits") for i in range(n_cores)]


def _spatial_cards(header, n, half_width_pc, axes):
    for k, name in enumerate(axes, start=1):
        header[f"CTYPE{k}"] = name
        header[f"CUNIT{k}"] = "pc"
        header[f"CRPIX{k}"] = (n + 1) / 2.0
        header[f"CRVAL{k}"] = 0.0
        header[f"CDELT{k}"] = 2.0 * half_width_pc / n


def _core_hdus(cores, i):
    """The FITS HDUs of core i (layout in the module docstring)."""
    p = cores.params[i]
    n = cores.ppv.shape[1]
    primary = fits.PrimaryHDU(np.ascontiguousarray(cores.ppv[i].transpose(2, 1, 0)))
    h = primary.header
    _spatial_cards(h, n, p.half_width_pc, ("X", "Y"))
    dv = cores.channel_width
    h["CTYPE3"], h["CUNIT3"], h["SPECSYS"] = "VRAD", "km/s", "LSRK"
    h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = 1.0, float(cores.velocities[0]), dv
    h["PPVUNIT"] = ("n/npeak*h/(km/s)", "N_H = NHSCALE * sum_c PPV dv")
    h["NHSCALE"] = (p.column_scale, "cm-2 per unit of sum_c PPV dv")
    h["LINEWID"] = (cores.line_width, "line dispersion, km/s")
    h["PROFILE"] = cores.profile
    for name, value in _param_row(p).items():
        h[_FITS_CARDS[name]] = value
    h["HALFWPC"] = (p.half_width_pc, "box half-width h, pc")
    h["ORIGIN"], h["SYNTH"] = "tfastro synthetic prestellar", True
    extensions = []
    for name, cube, unit in (("LOG_DENSITY", cores.log_density[i], "log10(n/npeak)"),
                             ("V_LOS", cores.v_los[i], "km/s")):
        hdu = fits.ImageHDU(np.ascontiguousarray(cube.transpose(2, 1, 0)), name=name)
        _spatial_cards(hdu.header, n, p.half_width_pc, ("X", "Y", "Z"))
        hdu.header["BUNIT"] = unit
        extensions.append(hdu)
    return fits.HDUList([primary] + extensions)


def _write_hdf5(path, cores):
    table = np.array([tuple(_param_row(p).values()) for p in cores.params],
                     dtype=[(name, np.int64 if name == "seed" else np.float64)
                            for name in PARAM_FIELDS])
    with h5py.File(path, "w") as handle:
        handle["ppv"] = cores.ppv.astype(np.float32)
        handle["log_density"] = cores.log_density.astype(np.float32)
        handle["v_los"] = cores.v_los.astype(np.float32)
        handle["velocities"] = cores.velocities
        handle["params"] = table
        handle.attrs.update({"v_min": cores.v_range[0], "v_max": cores.v_range[1],
                             "line_width_kms": cores.line_width, "profile": cores.profile,
                             "axes": AXES_NOTE, "synthetic": True})


def write_prestellar(out_dir, cores, overwrite=False, fits_files=True):
    """Write a :class:`CoreSet` to ``out_dir/prestellar.h5`` and (``fits_files``) one FITS file
    per core ``out_dir/fits/core_<i>.fits`` (module docstring).

    Returns:
      dict ``hdf5``: path, ``fits``: list of paths. UserInputError, before writing anything,
      if any of them exists and not ``overwrite``.
    """
    out_dir = os.fspath(out_dir)
    h5_path = os.path.join(out_dir, HDF5_NAME)
    fits_paths = _fits_paths(out_dir, len(cores.params)) if fits_files else []
    existing = [p for p in [h5_path] + fits_paths if os.path.exists(p)]
    if existing and not overwrite:
        raise UserInputError(f"{existing[0]}: file exists; refusing to overwrite "
                             f"{len(existing)} file(s) (pass overwrite=True, or --overwrite, "
                             "to replace them)")
    os.makedirs(os.path.join(out_dir, "fits") if fits_files else out_dir, exist_ok=True)
    _write_hdf5(h5_path, cores)
    for i, path in enumerate(fits_paths):
        _core_hdus(cores, i).writeto(path, overwrite=True)
    return {"hdf5": h5_path, "fits": fits_paths}


def _read_hdf5(path):
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise UserInputError(f"{path}: not a readable HDF5 file ({err})") from err
    with handle:
        missing = [k for k in ("ppv", "log_density", "v_los", "params") if k not in handle]
        missing += [k for k in ("v_min", "v_max", "line_width_kms", "profile")
                    if k not in handle.attrs]
        if missing:
            raise UserInputError(f"{path}: missing {', '.join(missing)}; expected a prestellar "
                                 "file written by write_prestellar")
        ppv = np.asarray(handle["ppv"], dtype=np.float32)
        log_density = np.asarray(handle["log_density"], dtype=np.float32)
        v_los = np.asarray(handle["v_los"], dtype=np.float32)
        table = np.asarray(handle["params"])
        absent = [f for f in PARAM_FIELDS if f not in (table.dtype.names or ())]
        if absent:
            raise UserInputError(f"{path}: params table lacks columns {', '.join(absent)}")
        attrs = dict(handle.attrs)
    n = ppv.shape[1] if ppv.ndim == 4 else None
    if (ppv.ndim != 4 or ppv.shape[2] != n or log_density.shape != (len(ppv), n, n, n)
            or v_los.shape != log_density.shape or len(table) != len(ppv)):
        raise UserInputError(f"{path}: ppv {ppv.shape}, log_density {log_density.shape}, "
                             f"v_los {v_los.shape}, params ({len(table)},); expected "
                             "(cores, N, N, Nv), (cores, N, N, N) twice and one row per core")
    profile = attrs["profile"]
    return CoreSet(ppv, log_density, v_los, [_params_from_row(row) for row in table],
                   (float(attrs["v_min"]), float(attrs["v_max"])),
                   float(attrs["line_width_kms"]),
                   profile.decode() if isinstance(profile, bytes) else str(profile))


def read_prestellar_fits(path):
    """One core's FITS file (layout in the module docstring) as a :class:`CoreSet` of 1 core.

    The spectral axis (CTYPE3 VRAD or VELO*, any velocity CUNIT3) is converted to km/s.
    """
    path = os.fspath(path)
    try:
        hdus = fits.open(path, memmap=False)
    except OSError as err:
        raise UserInputError(f"{path}: not a readable FITS file ({err})") from err
    with hdus:
        h = hdus[0].header
        names = [str(hdu.header.get("EXTNAME", "")).upper() for hdu in hdus[1:]]
        if not str(h.get("CTYPE3", "")).startswith(("VRAD", "VELO")) or "CDELT3" not in h:
            raise UserInputError(f"{path}: no spectral axis (CTYPE3 VRAD with CDELT3) in the "
                                 "primary header; expected a prestellar PPV cube")
        if "LOG_DENSITY" not in names or "V_LOS" not in names or hdus[0].data is None:
            raise UserInputError(f"{path}: expected a PPV primary HDU and extensions "
                                 f"LOG_DENSITY and V_LOS; found {', '.join(names) or 'none'}")
        missing = [card for card in _FITS_CARDS.values() if card not in h]
        if missing:
            raise UserInputError(f"{path}: missing core parameter cards {', '.join(missing)}")
        to_kms = units.Unit(h.get("CUNIT3", "km/s")).to(units.km / units.s)
        dv = float(h["CDELT3"]) * to_kms
        v0 = (float(h["CRVAL3"]) + (1.0 - float(h.get("CRPIX3", 1.0))) * float(h["CDELT3"]))
        v_min = v0 * to_kms - dv / 2.0
        ppv = np.asarray(hdus[0].data, dtype=np.float32).transpose(2, 1, 0)
        log_density = np.asarray(hdus[1 + names.index("LOG_DENSITY")].data,
                                 np.float32).transpose(2, 1, 0)
        v_los = np.asarray(hdus[1 + names.index("V_LOS")].data, np.float32).transpose(2, 1, 0)
        params = _params_from_row({name: h[card] for name, card in _FITS_CARDS.items()})
        return CoreSet(ppv[None], log_density[None], v_los[None], [params],
                       (v_min, v_min + dv * ppv.shape[-1]),
                       float(h.get("LINEWID", thermal_width())), str(h.get("PROFILE", "gaussian")))


def read_prestellar(path):
    """Read cores written by :func:`write_prestellar`: a :class:`CoreSet`.

    ``path``: the directory (reads its ``prestellar.h5``), the HDF5 file, or one core's
    ``.fits`` file. UserInputError naming the file when it is missing or malformed.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, HDF5_NAME)
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: no such prestellar file (expected a directory with "
                             f"{HDF5_NAME}, an HDF5 file or a core's .fits file)")
    if path.lower().endswith((".fits", ".fit", ".fits.gz")):
        return read_prestellar_fits(path)
    return _read_hdf5(path)


# --------------------------------------------------------------------------- tf.data

def _rot90_sky(x):
    """Rotate by 90 degrees in the sky plane (axes 0, 1): like ``np.rot90(x, axes=(0, 1))``."""
    perm = [1, 0] + list(range(2, len(x.shape)))
    return tf.reverse(tf.transpose(x, perm), [0])


def _sky_symmetry(x, index):
    """Symmetry ``index`` (0 .. 7) of the square on axes 0, 1 of ``x``: reflection of axis 0
    when index >= 4, then ``index % 4`` rotations by 90 degrees (0 is the identity)."""
    x = tf.cond(index >= 4, lambda: tf.reverse(x, [0]), lambda: x)
    branches = [lambda: x, lambda: _rot90_sky(x), lambda: _rot90_sky(_rot90_sky(x)),
                lambda: _rot90_sky(_rot90_sky(_rot90_sky(x)))]
    return tf.switch_case(index % 4, branches)


def _augmented(data, seed, target_is_column):
    """Apply one random symmetry of the sky plane per element to PPV and (unless it is a
    central column, which the symmetries keep) the target."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def transform(pair, s):
        ppv, target = pair
        index = tf.random.stateless_uniform([], s, minval=0, maxval=8, dtype=tf.int32)
        ppv = _sky_symmetry(ppv, index)
        return ppv, target if target_is_column else _sky_symmetry(target, index)

    return tf.data.Dataset.zip((data, seeds)).map(transform,
                                                  num_parallel_calls=tf.data.AUTOTUNE)


def _core_reader(ppv, targets):
    """Dataset of core indices -> dataset of (ppv (N, N, Nv, 1), target (N, N, Nz, 2)) float32,
    read from the arrays one core at a time."""
    ppv_shape = tuple(ppv.shape[1:4]) + (1,)
    target_shape = tuple(targets.shape[1:])

    def read(index):
        i = int(index)
        return (np.asarray(ppv[i], np.float32).reshape(ppv_shape),
                np.asarray(targets[i], np.float32))

    def load(index):
        x, y = tf.numpy_function(read, [index], (tf.float32, tf.float32), stateful=False)
        return tf.ensure_shape(x, ppv_shape), tf.ensure_shape(y, target_shape)

    return load


def _cores(ppv, targets, shuffle, seed, repeat):
    """Dataset of the (PPV, target) cores read one by one, optionally in a new order every
    epoch and repeated."""
    data = tf.data.Dataset.range(len(ppv))
    if shuffle:
        data = data.shuffle(len(ppv), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    return data.map(_core_reader(ppv, targets), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)


def _check_pairs(ppv, targets, batch_size):
    if batch_size < 1:
        raise UserInputError(f"batch_size={batch_size}: expected at least 1")
    shape_ok = (ppv.ndim in (4, 5) and (ppv.ndim == 4 or ppv.shape[4] == 1)
                and targets.ndim == 5 and targets.shape[4] == 2
                and len(ppv) == len(targets) and ppv.shape[1:3] == targets.shape[1:3]
                and ppv.shape[1] == ppv.shape[2])
    if not shape_ok:
        raise ValueError(f"ppv {ppv.shape} and targets {targets.shape}: expected (cores, N, N, "
                         "Nv[, 1]) and (cores, N, N, Nz, 2) with the same cores and N")


def core_dataset(ppv, targets, batch_size, shuffle=True, seed=None, augment=False,
                 repeat=False, drop_remainder=False):
    """Batches of whole cores: ``(ppv (B, N, N, Nv, 1), targets (B, N, N, Nz, 2))`` float32.

    Args:
      ppv: ``(n_cores, N, N, Nv)`` (or with a trailing 1) array; targets: ``(n_cores, N, N, Nz,
        2)`` (:func:`prestellar_targets`). Arrays or array-likes indexable by core (e.g. an
        h5py dataset): each core is read when needed.
      shuffle: a new core order every epoch (seeded by ``seed``).
      augment: one random symmetry of the sky plane per core (module docstring), the same for
        PPV and targets; a seeded stream that changes from epoch to epoch.
      repeat: repeat forever; drop_remainder: drop a last, smaller batch.
    """
    _check_pairs(ppv, targets, batch_size)
    data = _cores(ppv, targets, shuffle, seed, repeat)
    if augment:
        data = _augmented(data, seed, False)
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _windows(ppv, target, window, stride, target_kind):
    """All ``window`` x ``window`` sky windows of one core at ``stride``, row-major over the
    window's start (i, j): ppv ``(W, w, w, Nv, 1)`` and target ``(W, w, w, Nz, 2)`` (window) or
    ``(W, Nz, 2)`` (the central column at (i + w // 2, j + w // 2))."""
    n = ppv.shape[0]
    n_v, n_z = ppv.shape[2], target.shape[2]

    def patches(cube, depth):
        flat = tf.image.extract_patches(tf.reshape(cube, (1, n, n, depth)),
                                        sizes=[1, window, window, 1],
                                        strides=[1, stride, stride, 1], rates=[1, 1, 1, 1],
                                        padding="VALID")
        return tf.reshape(flat, (-1, window, window, depth))

    ppv_windows = tf.reshape(patches(ppv, n_v), (-1, window, window, n_v, 1))
    if target_kind == "window":
        return ppv_windows, tf.reshape(patches(target, 2 * n_z), (-1, window, window, n_z, 2))
    count = (n - window) // stride + 1
    centre = window // 2
    columns = target[centre:centre + stride * (count - 1) + 1:stride,
                     centre:centre + stride * (count - 1) + 1:stride]
    return ppv_windows, tf.reshape(columns, (-1, n_z, 2))


def ppv_window_dataset(ppv, targets, window, batch_size, stride=1, target="column", shuffle=True,
                   seed=None, augment=False, shuffle_buffer=None, repeat=False,
                   drop_remainder=False):
    """Batches of sky windows of the cores (the windowed "scanner" training data).

    Windows are ``window`` x ``window`` pixels over all channels, starting at (i, j) = multiples
    of ``stride`` with the window inside the map (no padding), core by core, row-major.

    Args:
      ppv, targets: as in :func:`core_dataset`.
      target: "column": the target's central column at (i + window // 2, j + window // 2),
        ``(B, Nz, 2)`` (``window`` must then be odd); "window": the target's window
        ``(B, window, window, Nz, 2)``.
      shuffle: new core order every epoch and windows shuffled in a buffer of
        ``shuffle_buffer`` (default: the windows of 4 cores).
      augment: one random symmetry of the sky plane per window (about its centre), on the PPV
        and a target window alike (a central column is unchanged by it).
    Returns:
      dataset of float32 ``(ppv (B, window, window, Nv, 1), target)``.
    """
    _check_pairs(ppv, targets, batch_size)
    n = ppv.shape[1]
    if target not in ("column", "window"):
        raise UserInputError(f"target={target!r}: expected 'column' or 'window'")
    if not 1 <= window <= n or stride < 1 or (target == "column" and window % 2 == 0):
        raise UserInputError(f"window={window}, stride={stride}: expected 1 <= window <= {n}, "
                             "stride >= 1, and an odd window for central columns")
    per_core = ((n - window) // stride + 1) ** 2
    data = _cores(ppv, targets, shuffle, seed, repeat)
    data = data.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices(
        _windows(x[..., 0], y, window, stride, target)))
    if shuffle:
        data = data.shuffle(shuffle_buffer or 4 * per_core, seed=seed,
                            reshuffle_each_iteration=True)
    if augment:
        data = _augmented(data, seed, target == "column")
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
