"""Synthetic supernova-shell data standing in for the (undistributed) 3D-MIM simulations.

A point explosion at the grid centre drives a blast wave through either a turbulent,
lognormal cloud (``medium='turbulent'``) or a uniform medium (``medium='uniform'``).
The output is density only, in the sn ``.npz`` layout of :mod:`tfastro.data.npz`:
frames ``(n_clips * clip_length, 1, size, size, size)`` float32 in [0, 1].

Physical set-up (defaults of :class:`SNParams`)
  * Periodic box of 60 pc (voxel = 60 pc / size, 1.875 pc at 32^3), mean hydrogen number
    density n0 = 44.5 cm^-3, mean mass per H nucleus 1.4 m_H (rho0 = 1.04e-22 g cm^-3),
    explosion energy E = 1e51 erg. The simulations this mimics start at T0 = 100 K;
    temperature, pressure and velocity are not modelled here.
  * Cloud: a Gaussian random field with power spectrum P(k) ∝ k^-2 (3-D spectrum,
    periodic, from :mod:`tfastro.data.random_fields`), scaled to standard deviation
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

    python -m tfastro.data.synthetic sn --out data/sn/synthetic.npz \
        [--frames 240] [--clip-length 20] [--size 32] [--seed 0] \
        [--medium turbulent|uniform] [--overwrite]

The ``cmd`` command writes SYNTHETIC CAMELS multifield maps (Mgas, HI, B) and their parameter
file in the real CMD layout (see :mod:`tfastro.data.cmd_synthetic`)::

    python -m tfastro.data.synthetic cmd --out data/cmd [--resolution 256] [--simulations 48] \
        [--suite IllustrisTNG] [--set LH] [--seed 0] [--overwrite]

The ``tng`` command writes a SYNTHETIC IllustrisTNG-Dark snapshot and Dark/Hydro group
catalogues in the real HDF5 layout (see :mod:`tfastro.data.tng_synthetic`)::

    python -m tfastro.data.synthetic tng --out data/tng [--grid 64] [--particles-per-side 64] \
        [--box 25000] [--seed 0] [--chunks 3] [--overwrite]

The ``turbulence`` command writes SYNTHETIC cosmic-ray turbulence snapshots, five classes of
FITS cubes (density, cr_energy_density, magnetic_energy_density) in class folders
``DIR/<class>/snapshot_<j>.fits`` (see :mod:`tfastro.data.turbulence_synthetic`)::

    python -m tfastro.data.synthetic turbulence --out data/turbulence [--size 128] \
        [--snapshots 6] [--seed 0] [--overwrite]

The ``prestellar`` command writes SYNTHETIC prestellar cores (Plummer cores with speckle
structure, rotation and infall) observed as optically thin position-position-velocity cubes:
``DIR/prestellar.h5`` (all cores, their targets and parameters) and ``DIR/fits/core_<i>.fits``
(PPV cube with a km/s spectral axis, LOG_DENSITY and V_LOS extensions; see
:mod:`tfastro.data.prestellar`). The spec's full size is ``--grid 64 --channels 100``::

    python -m tfastro.data.synthetic prestellar --out data/prestellar [--cores 64] [--grid 32] \
        [--channels 32] [--profile gaussian|lorentzian] [--seed 0] [--overwrite]
"""
import argparse
import dataclasses
import functools
import os
import sys

import numpy as np
from scipy import ndimage, special

from tfastro.analysis.shells import XI_GAMMA_5_3, sedov_taylor_radius
from tfastro.data import cmd_synthetic, prestellar, tng_synthetic, turbulence_synthetic
from tfastro.data.cmd import CMD_FIELDS, MAGNETIC_SUITE, MAPS_PER_SIMULATION, PARAM_NAMES
from tfastro.data.npz import default_clips, save_sn_npz
from tfastro.data.random_fields import (  # noqa: F401  (re-exported)
    correlated_fields, gaussian_random_field, lognormal_field)
from tfastro.errors import UserInputError

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
    """Scale densities to [0, 1] by one scale, their maximum.

    Returns:
      ``(scaled float32 array, scale)`` with ``scaled = clip(density / scale, 0, 1)``.
    """
    scale = float(np.max(density))
    if not np.isfinite(scale) or scale <= 0:
        raise UserInputError(f"normalise_density: the largest density is {scale}; "
                             "expected a finite positive value")
    return np.clip(np.asarray(density, dtype=np.float32) / np.float32(scale), 0.0, 1.0), scale


def make_sn_clips(n_clips, clip_length, size, *, medium="turbulent", seed=0,
                  params=SNParams()):
    """Synthetic sn frames and clips, ready for :func:`tfastro.data.npz.save_sn_npz`.

    Returns:
      ``(frames, clips)``: float32 ``(n_clips * clip_length, 1, size, size, size)`` in
      [0, 1] (normalised by the largest density of all clips), and int32
      ``(2, n_clips, 2)`` from :func:`tfastro.data.npz.default_clips` (first half of each
      clip input, second half output).
    """
    density = sn_density_clips(n_clips, clip_length, size, medium=medium, seed=seed,
                               params=params)
    frames, _ = normalise_density(density)
    return frames[:, None], default_clips(len(frames), clip_length)


def _sn_command(args):
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


def _cmd_command(args):
    fields = tuple(f for f in CMD_FIELDS if f != "B" or args.suite == MAGNETIC_SUITE)
    paths = cmd_synthetic.write_synthetic_cmd(
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


def _tng_command(args):
    params = tng_synthetic.TNGSyntheticParams(
        grid=args.grid, particles_per_side=args.particles_per_side, box_size=args.box,
        seed=args.seed, chunks=args.chunks)
    paths, universe = tng_synthetic.write_synthetic_tng(args.out, params,
                                                       overwrite=args.overwrite)
    print(f"Wrote SYNTHETIC IllustrisTNG stand-in (lognormal density, not simulation output) "
          f"to {args.out}\n"
          f"  {paths['snapshot']}: {len(universe.particles)} dark-matter particles of "
          f"{params.particle_mass:.4g} Msun/h in {params.chunks} chunks, box {args.box:g} ckpc/h\n"
          f"  {paths['dark_groups']} and {paths['hydro_groups']}: {len(universe.group_mass)} "
          f"groups, {len(universe.subhalo_mass)} subhalos; log10 M* = {params.stellar_a:g} + "
          f"{params.stellar_b:g} log10 M_sub +- {params.stellar_scatter:g} dex\n"
          f"  {paths['parameters']} (generating parameters), seed {args.seed}")


def _turbulence_command(args):
    paths = turbulence_synthetic.write_synthetic_turbulence(
        args.out, size=args.size, snapshots=args.snapshots, seed=args.seed,
        overwrite=args.overwrite)
    lines = "".join(f"  {name}: P(k) ∝ k^-{spec.beta:.3g} exp(-(k / k_c)^2), lambda_c = "
                    f"{spec.cutoff_cells:g} cells"
                    + (f", phases of sign(g) |g|^{spec.sharpen:g}\n" if spec.sharpen else "\n")
                    for name, spec in turbulence_synthetic.SYNTHETIC_CLASSES.items())
    print(f"Wrote SYNTHETIC cosmic-ray turbulence snapshots (random fields, not simulation "
          f"output) to {args.out}\n"
          f"  {len(paths)} FITS files: {args.snapshots} snapshots x "
          f"{len(turbulence_synthetic.SYNTHETIC_CLASSES)} classes of {args.size}^3 cubes "
          f"(density, cr_energy_density, magnetic_energy_density), seed {args.seed}\n" + lines
          + f"  e.g. {paths[0]}")


def _prestellar_command(args):
    cores = prestellar.synthetic_cores(args.cores, args.grid, args.channels, seed=args.seed,
                                       shape=args.profile)
    paths = prestellar.write_prestellar(args.out, cores, overwrite=args.overwrite)
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


def main(argv=None):
    """Command-line entry point; returns the exit status (2 for bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m tfastro.data.synthetic",
        description="Generate SYNTHETIC stand-in data (not simulation output).")
    sub = parser.add_subparsers(dest="command", required=True)
    sn = sub.add_parser("sn", help="supernova shells in a 3D-MIM sn .npz file")
    sn.add_argument("--out", required=True, help="output .npz path")
    sn.add_argument("--frames", type=int, default=240, help="total frames (default 240)")
    sn.add_argument("--clip-length", type=int, default=20, help="frames per clip (default 20)")
    sn.add_argument("--size", type=int, default=32, help="cube side in voxels (default 32)")
    sn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sn.add_argument("--medium", choices=MEDIA, default="turbulent",
                    help="ambient medium (default turbulent)")
    sn.add_argument("--overwrite", action="store_true", help="replace an existing file")
    cmd = sub.add_parser("cmd", help="CAMELS multifield maps (Mgas, HI, B) in the CMD layout")
    cmd.add_argument("--out", required=True, help="output directory")
    cmd.add_argument("--resolution", type=int, default=256,
                     help="pixels per map side (default 256)")
    cmd.add_argument("--simulations", type=int, default=cmd_synthetic.DEFAULT_SIMULATIONS,
                     help=f"simulations, {MAPS_PER_SIMULATION} maps each (default "
                          f"{cmd_synthetic.DEFAULT_SIMULATIONS}: 566 MB at 256^2, under a "
                          "minute)")
    cmd.add_argument("--suite", default=MAGNETIC_SUITE,
                     help=f"suite name in the file names (default {MAGNETIC_SUITE}; B is "
                          "written only for it)")
    cmd.add_argument("--set", default="LH", help="set name in the file names (default LH)")
    cmd.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cmd.add_argument("--overwrite", action="store_true", help="replace existing files")
    tng = sub.add_parser("tng", help="IllustrisTNG-like snapshot and group catalogues (HDF5)")
    tng.add_argument("--out", required=True, help="output directory")
    tng.add_argument("--grid", type=int, default=64,
                     help="cells per side of the density field (default 64)")
    tng.add_argument("--particles-per-side", type=int, default=64,
                     help="dark-matter particles = this cubed (default 64)")
    tng.add_argument("--box", type=float, default=25000.0,
                     help="box side in ckpc/h (default 25000)")
    tng.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tng.add_argument("--chunks", type=int, default=3, help="files per snapshot/catalogue "
                     "(default 3; the last catalogue chunk is empty)")
    tng.add_argument("--overwrite", action="store_true", help="replace existing files")
    turb = sub.add_parser("turbulence", help="cosmic-ray turbulence classes as FITS cubes")
    turb.add_argument("--out", required=True, help="output directory (one folder per class)")
    turb.add_argument("--size", type=int, default=128,
                      help="cube side in cells (default 128: 25 MB per snapshot, 750 MB in all)")
    turb.add_argument("--snapshots", type=int, default=6,
                      help="snapshots per class (default 6)")
    turb.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    turb.add_argument("--overwrite", action="store_true", help="replace existing files")
    pre = sub.add_parser("prestellar", help="prestellar cores as PPV cubes (HDF5 + FITS)")
    pre.add_argument("--out", required=True, help="output directory")
    pre.add_argument("--cores", type=int, default=64, help="number of cores (default 64)")
    pre.add_argument("--grid", type=int, default=32,
                     help="cells per side of the cubes (default 32; the spec's 64)")
    pre.add_argument("--channels", type=int, default=32,
                     help="velocity channels over -2 .. 2 km/s (default 32; the spec's 100)")
    pre.add_argument("--profile", choices=prestellar.PROFILES, default="gaussian",
                     help="line shape (default gaussian)")
    pre.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pre.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    try:
        {"sn": _sn_command, "cmd": _cmd_command, "tng": _tng_command,
         "turbulence": _turbulence_command, "prestellar": _prestellar_command}[args.command](args)
    except UserInputError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
