"""Supernova-shell geometry: the Sedov-Taylor law and shell masks/radii on density cubes.

Convention (Hirashima et al. 2023): the *shell* is where the density rose by more
than ``threshold`` (10 per cent) above the density before the explosion.
"""
import numpy as np

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


def shell_mask(frame, initial, threshold=0.1):
    """Boolean mask of voxels whose density exceeds ``initial`` by more than ``threshold``.

    Args:
      frame, initial: arrays of the same shape (e.g. (X, Y, Z) or (B, X, Y, Z, C)),
        densities after and before the explosion.
    """
    frame = np.asarray(frame)
    initial = np.asarray(initial)
    return frame > (1.0 + threshold) * initial


def shell_radius(mask, center=None, voxel_size=1.0):
    """Mean distance of the masked voxels from ``center`` (default: the grid centre).

    Args:
      mask: boolean array (X, Y, Z).
      center: (3,) position in voxel units, voxel i sitting at coordinate i.
      voxel_size: length of one voxel, the unit of the result.
    Returns:
      the mean radius in units of ``voxel_size``; NaN for an empty mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"shell_radius: mask must be 3-D (X, Y, Z), got shape {mask.shape}")
    if center is None:
        center = (np.asarray(mask.shape) - 1) / 2.0
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return float("nan")
    r = np.linalg.norm(idx - np.asarray(center, dtype=np.float64), axis=1)
    return float(r.mean() * voxel_size)


def mask_iou(mask_a, mask_b):
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    a = np.asarray(mask_a, dtype=bool)
    b = np.asarray(mask_b, dtype=bool)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)
