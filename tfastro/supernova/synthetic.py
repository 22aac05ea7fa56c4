"""Synthetic supernova-shell data standing in for the (undistributed) 3D-MIM simulations.

A point explosion at the grid centre drives a blast wave through either a turbulent,
lognormal cloud (``medium='turbulent'``) or a uniform medium (``medium='uniform'``).
The output is density only, in the sn ``.npz`` layout of :mod:`tfastro.supernova.io`:
frames ``(n_clips * clip_length, 1, size, size, size)`` float32 in [0, 1].

Physical set-up (defaults of :class:`SNParams`)
  * Periodic box of 60 pc (voxel = 60 pc / size, 1.875 pc at 32^3), mean hydrogen number
    density n0 = 44.5 cm^-3, mean mass per H nucleus 1.4 m_H (rho0 = 1.04e-22 g cm^-3),
    explosion energy E = 1e51 erg. The simulations this mimics start at T0 = 100 K;
    temperature, pressure and velocity are not modelled here.
  * Cloud: a Gaussian random field with power spectrum P(k) ∝ k^-2 (3-D spectrum,
    periodic, from :mod:`tfastro.fields.random_fields`), scaled to standard deviation
    ``sigma`` and exponentiated, rho/n0 = exp(sigma g) / <exp(sigma g)>, so the mean is
    exactly n0. sigma = 1 is the log-density spread of supersonic turbulence at Mach ~ 4.
  * Blast: every direction n evolves as its own Sedov-Taylor sector,
    R(n, t) = xi (E t^2 / rho_sw(n, R))^(1/5), with rho_sw the mass-weighted mean ambient
    density swept up along the ray from the centre to R (xi = 1.15, gamma = 5/3), so dense
    directions lag. The ST phase is assumed throughout (radiative losses are ignored).
  * Density at time t: inside the shock the gas is rarefied to 10 per cent of its
    ambient value; the removed (swept-up) mass of each direction lies in a rim just
    behind the shock with a half-Gaussian profile of width 3 per cent of R; outside R the
    ambient cloud is unchanged. Profiles are averaged over each voxel's radial extent,
    so the shell moves smoothly through the grid and mass is conserved to ~1 per cent
    (less where a low-density sector's shell leaves the box late in a clip).
  * Times: frame k of a clip is at t_k = k dt. Frame 0 (t = 0) is the density just
    before the explosion, so "density above the first frame by > 10 per cent" marks the
    shell. dt = t_end / (clip_length - 1) with t_end the time at which the ST radius in
    the mean density reaches 40 per cent of the box: dt = 17.9 kyr for 20-frame clips
    (R from 3.9 to 12.8 voxels at 32^3).
  * Clips: each clip is a new random cloud from a seed derived from ``seed``; in a uniform
    medium all clips are identical.
  * Normalisation: densities (in units of n0) are divided by one scale per file, the
    largest density of the file, and clipped to [0, 1]; ratios between frames (hence the
    shell mask) are preserved.

Command line (prints that the data is synthetic)::

    python -m tfastro.synthetic supernova --out data/sn/synthetic.npz \
        [--frames 240] [--clip-length 20] [--size 32] [--seed 0] \
        [--medium turbulent|uniform] [--overwrite]

"""
import dataclasses
import functools
import os

import numpy as np
from scipy import ndimage, special

from tfastro.core.cli import synthetic_main
from tfastro.core.errors import UserInputError
from tfastro.fields.random_fields import lognormal_field
from tfastro.supernova.io import Normalisation, default_clips, save_sn_npz

#: Dimensionless Sedov-Taylor constant for an adiabatic index gamma = 5/3.
XI_GAMMA_5_3 = 1.15


def sedov_taylor_radius(t, energy, density, xi=XI_GAMMA_5_3):
    """Blast-wave radius R(t) = xi (E t^2 / rho)^(1/5).

    Args:
      t: time since the explosion (any units consistent with the others), scalar or array.
      energy: explosion energy E.
      density: ambient mass density rho.
    Returns:
      R in the length unit implied by (E, t, rho); e.g. cm for erg, s, g cm^-3.
    """
    t = np.asarray(t, dtype=np.float64)
    return xi * (energy * t**2 / density) ** 0.2


PC_CM = 3.0857e18


KYR_S = 3.15576e10


M_H_G = 1.6726e-24


MEDIA = ("turbulent", "uniform")


@dataclasses.dataclass(frozen=True)
class SNParams:
    """Physical parameters of the synthetic explosion (see the module docstring).

    Attributes:
      box_pc: box side in pc.
      n0_cm3: mean hydrogen number density in cm^-3.
      mu_h: mean mass per hydrogen nucleus in units of m_H.
      energy_erg: explosion energy in erg.
      final_radius_fraction: ST radius in the mean density at the last frame of a
        clip, as a fraction of the box side (sets the frame spacing).
      interior_fraction: density inside the shell relative to the ambient density.
      rim_fraction: width of the half-Gaussian rim as a fraction of R.
      cloud_sigma: standard deviation of ln(rho) of the turbulent cloud.
      cloud_slope: exponent of the 3-D power spectrum P(k) ∝ k^slope of the Gaussian field.
      xi: Sedov-Taylor constant.
    """

    box_pc: float = 60.0
    n0_cm3: float = 44.5
    mu_h: float = 1.4
    energy_erg: float = 1e51
    final_radius_fraction: float = 0.4
    interior_fraction: float = 0.1
    rim_fraction: float = 0.03
    cloud_sigma: float = 1.0
    cloud_slope: float = -2.0
    xi: float = XI_GAMMA_5_3

    @property
    def density_gcm3(self):
        """Mean ambient mass density rho0 in g cm^-3."""
        return self.n0_cm3 * self.mu_h * M_H_G

    def voxel_pc(self, size):
        """Voxel side in pc for a ``size``^3 grid."""
        return self.box_pc / size

    def st_radius_voxels(self, t_kyr, size, density_n0=1.0):
        """Sedov-Taylor radius in voxels at ``t_kyr`` for ambient density ``density_n0`` * n0."""
        r_cm = sedov_taylor_radius(np.asarray(t_kyr, dtype=np.float64) * KYR_S,
                                   self.energy_erg, self.density_gcm3 * density_n0, self.xi)
        return r_cm / (self.voxel_pc(size) * PC_CM)

    def frame_times_kyr(self, clip_length):
        """Times (kyr) of the frames of a clip: ``k * dt`` for k = 0 .. clip_length-1."""
        if clip_length < 2:
            raise UserInputError(f"clip_length={clip_length} must be >= 2 "
                                 "(frame 0 is the density before the explosion)")
        # R ∝ t^(2/5): the time at which R reaches the target scales as (R/R(1 kyr))^(5/2).
        r_1kyr_pc = self.st_radius_voxels(1.0, size=1) * self.box_pc  # 1 voxel = the box
        t_end = (self.final_radius_fraction * self.box_pc / r_1kyr_pc) ** 2.5
        return np.arange(clip_length) * (t_end / (clip_length - 1))


def lognormal_cloud(size, seed, *, slope=-2.0, sigma=1.0):
    """Periodic lognormal density cube with mean exactly 1 (units of n0).

    Args:
      size: cube side in voxels.
      seed: anything ``np.random.default_rng`` accepts.
      slope: exponent of the power spectrum P(k) ∝ k^slope of the underlying Gaussian
        field (k in units of the fundamental mode; the k = 0 mode is removed).
      sigma: standard deviation of the Gaussian field, i.e. of ln(rho).
    Returns:
      float64 array ``(size, size, size)``.
    """
    # A box of side 2 pi puts k in units of the fundamental mode.
    return lognormal_field((size,) * 3, 2.0 * np.pi, lambda k: k**slope, seed, sigma=sigma)


@functools.lru_cache(maxsize=2)
def _geometry(size):
    return _Geometry(size)


class _Geometry:
    """Rays from the grid centre and each voxel's place among them, for one grid size.

    Directions form a regular grid in (cos theta, phi); radii are steps of 0.5 voxel out
    past the box corners. Each voxel gets bilinear weights into the direction grid.
    """

    def __init__(self, size):
        self.center = (size - 1) / 2.0
        self.n_mu, self.n_phi = size, 2 * size
        self.radii = np.arange(int(np.ceil(np.sqrt(3.0) * size)) + 4) * 0.5
        mu = -1.0 + (np.arange(self.n_mu) + 0.5) * 2.0 / self.n_mu
        phi = np.arange(self.n_phi) * 2.0 * np.pi / self.n_phi
        sin_t = np.sqrt(1.0 - mu**2)
        self.directions = np.stack(np.broadcast_arrays(
            sin_t[:, None] * np.cos(phi)[None, :],
            sin_t[:, None] * np.sin(phi)[None, :],
            mu[:, None]), axis=-1).reshape(-1, 3)

        d = np.indices((size,) * 3, dtype=np.float64) - self.center
        self.r = np.sqrt((d**2).sum(axis=0))
        cos_t = np.divide(d[2], self.r, out=np.ones_like(self.r), where=self.r > 0)
        f_mu = np.clip((cos_t + 1.0) / 2.0 * self.n_mu - 0.5, 0.0, self.n_mu - 1.0)
        f_phi = (np.arctan2(d[1], d[0]) % (2.0 * np.pi)) / (2.0 * np.pi) * self.n_phi
        i0 = np.minimum(np.floor(f_mu).astype(int), self.n_mu - 2)
        j0 = np.floor(f_phi).astype(int) % self.n_phi
        w_mu, w_phi = f_mu - i0, f_phi - np.floor(f_phi)
        j1 = (j0 + 1) % self.n_phi
        self.corner_index = np.stack([i0 * self.n_phi + j0, i0 * self.n_phi + j1,
                                      (i0 + 1) * self.n_phi + j0, (i0 + 1) * self.n_phi + j1])
        self.corner_weight = np.stack([(1 - w_mu) * (1 - w_phi), (1 - w_mu) * w_phi,
                                       w_mu * (1 - w_phi), w_mu * w_phi])

    def swept_density(self, ambient):
        """Mass-weighted mean ambient density within radius r along each ray.

        Returns ``(n_directions, n_radii)``: 3/r^3 ∫_0^r rho(s) s^2 ds, with rho linear
        between the samples (trilinear, periodic) and integrated exactly.
        """
        pts = self.center + self.directions[:, :, None] * self.radii[None, None, :]
        rho = ndimage.map_coordinates(ambient, pts.transpose(1, 0, 2).reshape(3, -1),
                                      order=1, mode="grid-wrap")
        rho = rho.reshape(len(self.directions), len(self.radii))
        a, b = self.radii[:-1], self.radii[1:]
        h = b - a
        s3, s4 = (b**3 - a**3) / 3.0, (b**4 - a**4) / 4.0
        w_a, w_b = (b * s3 - s4) / h, (s4 - a * s3) / h
        mass = np.concatenate([np.zeros((rho.shape[0], 1)),
                               np.cumsum(rho[:, :-1] * w_a + rho[:, 1:] * w_b, axis=1)], axis=1)
        mean = np.empty_like(rho)
        mean[:, 0] = rho[:, 0]
        mean[:, 1:] = 3.0 * mass[:, 1:] / self.radii[1:] ** 3
        return mean

    def to_voxels(self, per_direction):
        """Interpolate ``(T, n_directions)`` values onto the voxels: ``(T, X, Y, Z)``."""
        return np.einsum("k...,tk...->t...", self.corner_weight,
                         per_direction[:, self.corner_index])


def _shell_radii(swept, radii, t_kyr, params, size):
    """Shock radius (voxels) and swept mean density per direction at each time t > 0.

    Each ray's time of arrival at radius r follows from the ST law with the swept density
    rho_sw(r); it increases with r, so R(t) is found by interpolation, and by the ST law
    with the outermost rho_sw beyond the tabulated radii. Returns two ``(T, n_dir)`` arrays.
    """
    r_1kyr = params.st_radius_voxels(1.0, size, swept[:, 1:])
    arrival = np.zeros_like(swept)
    arrival[:, 1:] = (radii[1:] / r_1kyr) ** 2.5
    t = t_kyr[:, None]
    k = (arrival[None] < t[..., None]).sum(axis=-1)
    inside = k < len(radii)
    hi = np.minimum(k, len(radii) - 1)
    ray = np.arange(len(arrival))
    t_lo, t_hi = arrival[ray, hi - 1], arrival[ray, hi]
    frac = np.clip((t - t_lo) / (t_hi - t_lo), 0.0, 1.0)
    radius = np.where(inside, radii[hi - 1] + frac * (radii[hi] - radii[hi - 1]),
                      radii[-1] * (t / arrival[:, -1]) ** 0.4)
    density = np.where(inside, swept[ray, hi - 1] * (1 - frac) + swept[ray, hi] * frac,
                       swept[:, -1])
    return radius, density


def blast_density(ambient, t_kyr, params=SNParams()):
    """Density cubes of a blast wave from the grid centre at the given times.

    Args:
      ambient: ``(N, N, N)`` density before the explosion, in units of n0 (periodic).
      t_kyr: ``(T,)`` times since the explosion in kyr, >= 0; t = 0 gives ``ambient``.
      params: :class:`SNParams`.
    Returns:
      float32 ``(T, N, N, N)`` densities in units of n0.
    """
    ambient = np.asarray(ambient, dtype=np.float64)
    t_kyr = np.atleast_1d(np.asarray(t_kyr, dtype=np.float64))
    if ambient.ndim != 3 or len(set(ambient.shape)) != 1:
        raise UserInputError(f"blast_density: ambient must be a cube (N, N, N), "
                             f"got {ambient.shape}")
    if (t_kyr < 0).any():
        raise UserInputError("blast_density: times must be >= 0 (kyr since the explosion)")
    size = ambient.shape[0]
    geo = _geometry(size)
    out = np.empty((len(t_kyr),) + ambient.shape, dtype=np.float32)
    out[t_kyr == 0] = ambient
    live = t_kyr > 0
    if not live.any():
        return out

    radius, swept = _shell_radii(geo.swept_density(ambient), geo.radii, t_kyr[live],
                                 params, size)
    R = geo.to_voxels(radius)
    rho_sw = geo.to_voxels(swept)
    # Half-Gaussian rim exp(-(R-r)^2 / 2w^2) for r < R holding the swept-up mass minus
    # what stays in the rarefied interior: A ∫_0^R exp(..) r^2 dr = (1-f) rho_sw R^3 / 3.
    f_in = params.interior_fraction
    w = params.rim_fraction * R
    root = np.sqrt(np.pi / 2.0)
    rim_integral = R**2 * w * root - 2.0 * R * w**2 + w**3 * root
    amplitude = (1.0 - f_in) * rho_sw * R**3 / (3.0 * rim_integral)
    # Average over each voxel's radial extent [r - 1/2, r + 1/2].
    lo = geo.r - 0.5
    hi = np.minimum(geo.r + 0.5, R)
    scale = np.sqrt(2.0) * w
    rim = np.where(lo < R, amplitude * w * root * (special.erf((R - lo) / scale)
                                                   - special.erf(np.maximum(R - hi, 0) / scale)),
                   0.0)
    inside = np.clip(R - lo, 0.0, 1.0)
    out[live] = ambient * (1.0 - (1.0 - f_in) * inside) + rim
    return out


def sn_density_clips(n_clips, clip_length, size, *, medium="turbulent", seed=0,
                     params=SNParams()):
    """Densities of ``n_clips`` explosions, ``clip_length`` frames each.

    Returns:
      float32 ``(n_clips * clip_length, size, size, size)`` in units of n0; frames of clip
      i are ``[i * clip_length, (i + 1) * clip_length)`` at times
      ``params.frame_times_kyr(clip_length)``.
    """
    if medium not in MEDIA:
        raise UserInputError(f"medium={medium!r}: expected one of {', '.join(MEDIA)}")
    if n_clips < 1:
        raise UserInputError(f"n_clips={n_clips} must be >= 1")
    if size < 4:
        raise UserInputError(f"size={size} must be >= 4 voxels")
    times = params.frame_times_kyr(clip_length)
    seeds = np.random.SeedSequence(seed).spawn(n_clips)
    out = np.empty((n_clips * clip_length,) + (size,) * 3, dtype=np.float32)
    for i in range(n_clips):
        if medium == "uniform":
            ambient = np.ones((size,) * 3)
        else:
            ambient = lognormal_cloud(size, seeds[i], slope=params.cloud_slope,
                                      sigma=params.cloud_sigma)
        out[i * clip_length:(i + 1) * clip_length] = blast_density(ambient, times, params)
    return out


def normalise_density(density):
    """Scale densities to [0, 1] by one scale, their maximum (the ``max`` normalisation).

    Returns:
      ``(scaled float32 array, scale)`` with ``scaled = clip(density / scale, 0, 1)``.
    """
    scale = float(np.max(density))
    if not np.isfinite(scale) or scale <= 0:
        raise UserInputError(f"normalise_density: the largest density is {scale}; "
                             "expected a finite positive value")
    return Normalisation("max", scale=scale).frames(density), scale


def sample_particles(density, box_size, particles_per_cell, *, seed=0, neighbours=32, time=0.0,
                     units="pc, Msun, kyr"):
    """Equal-mass gas particles drawn from a density cube, stratified by cell.

    Cell (i, j, k) spans ``[i, i + 1) x [j, j + 1) x [k, k + 1)`` times ``box_size / N``; it
    receives ``floor(M_cell / m + u)`` particles (u uniform in [0, 1)), placed uniformly in it,
    with m the mean cell mass over ``particles_per_cell``: the counts are the cell masses to
    within one particle, and the positions follow the cube's piecewise-constant density.

    Args:
      density: ``(N, N, N)`` mass per volume (e.g. Msun pc^-3), >= 0.
      box_size: side of the periodic box (e.g. pc).
      particles_per_cell: particles in a cell of the mean density.
      seed: seed of ``np.random.default_rng``.
      neighbours: particles within a support radius, which is set from the cell density:
        ``H = (3 neighbours m / (4 pi rho))^(1/3)``.
      time: the snapshot's time; units: the units of box_size, density and time.
    Returns:
      :class:`tfastro.supernova.particles.GasParticles` with densities (of the cells) and ids.
    """
    from tfastro.supernova.particles import GasParticles
    density = np.asarray(density, dtype=np.float64)
    if density.ndim != 3 or len(set(density.shape)) != 1 or (density < 0).any():
        raise UserInputError(f"sample_particles: density must be a non-negative cube (N, N, N), "
                             f"got shape {density.shape}")
    if not particles_per_cell > 0:
        raise UserInputError(f"particles_per_cell={particles_per_cell}: must be positive")
    rng = np.random.default_rng(seed)
    cell = box_size / density.shape[0]
    mass = density.mean() * cell**3 / particles_per_cell
    counts = np.floor(density.ravel() * cell**3 / mass + rng.random(density.size)).astype(int)
    cells = np.repeat(np.arange(density.size), counts)
    corner = np.stack(np.unravel_index(cells, density.shape), axis=-1)
    rho = density.ravel()[cells]
    return GasParticles(
        positions=(corner + rng.random(corner.shape)) * cell, masses=np.full(len(cells), mass),
        support=(3.0 * neighbours * mass / (4.0 * np.pi * rho)) ** (1.0 / 3.0),
        box_size=float(box_size), time=float(time), units=units, densities=rho,
        ids=np.arange(len(cells)), path="synthetic")


def make_sn_clips(n_clips, clip_length, size, *, medium="turbulent", seed=0,
                  params=SNParams()):
    """Synthetic sn frames and clips, ready for :func:`tfastro.supernova.io.save_sn_npz`.

    Returns:
      ``(frames, clips)``: float32 ``(n_clips * clip_length, 1, size, size, size)`` in
      [0, 1] (normalised by the largest density of all clips), and int32
      ``(2, n_clips, 2)`` from :func:`tfastro.supernova.io.default_clips` (first half of each
      clip input, second half output).
    """
    density = sn_density_clips(n_clips, clip_length, size, medium=medium, seed=seed,
                               params=params)
    frames, _ = normalise_density(density)
    return frames[:, None], default_clips(len(frames), clip_length)


def _write(args):
    if args.frames % args.clip_length or args.frames < args.clip_length:
        raise UserInputError(f"--frames={args.frames} must be a positive multiple of "
                             f"--clip-length={args.clip_length}")
    if os.path.exists(args.out) and not args.overwrite:
        raise UserInputError(f"{args.out}: file exists; refusing to overwrite it "
                             "(add --overwrite to replace it)")
    params = SNParams()
    n_clips = args.frames // args.clip_length
    density = sn_density_clips(n_clips, args.clip_length, args.size, medium=args.medium,
                               seed=args.seed, params=params)
    frames, scale = normalise_density(density)
    clips = default_clips(args.frames, args.clip_length)
    save_sn_npz(args.out, frames[:, None], clips, overwrite=args.overwrite)
    dt = params.frame_times_kyr(args.clip_length)[1]
    print(f"Wrote SYNTHETIC supernova-shell data (not simulation output) to {args.out}\n"
          f"  input_raw_data {frames[:, None].shape} float32: {n_clips} clips x "
          f"{args.clip_length} frames of density, {args.medium} medium, seed {args.seed}\n"
          f"  box {params.box_pc:g} pc ({params.voxel_pc(args.size):.3f} pc voxels), "
          f"n0 = {params.n0_cm3:g} cm^-3, E = {params.energy_erg:.3g} erg, "
          f"Sedov-Taylor blast from the grid centre\n"
          f"  frame k at t = k x {dt:.2f} kyr (frame 0 = before the explosion); "
          f"1.0 = {scale:.3f} n0 = {scale * params.n0_cm3:.1f} cm^-3")


def _add_arguments(parser):
    parser.add_argument("--frames", type=int, default=240, help="total frames (default 240)")
    parser.add_argument("--clip-length", type=int, default=20,
                        help="frames per clip (default 20)")
    parser.add_argument("--size", type=int, default=32, help="cube side in voxels (default 32)")
    parser.add_argument("--medium", choices=MEDIA, default="turbulent",
                        help="ambient medium (default turbulent)")


def main(argv=None):
    """``python -m tfastro.synthetic supernova``; returns the exit status (2 for bad input)."""
    return synthetic_main("python -m tfastro.synthetic supernova",
                          "supernova shells in a 3D-MIM sn .npz file", "output .npz path",
                          _add_arguments, _write, argv)
