"""Halo-occupation (HOD) baseline of dm2gal: stellar masses for gravity-only subhalos drawn from
the hydro subhalos that live in hosts of similar mass.

Host-halo masses of both catalogues are binned in log10 on shared edges over the range of both
(masses in any one unit, e.g. 1e10 Msun/h). For each gravity-only subhalo, a stellar mass is
drawn with replacement from the hydro subhalos of the same host-mass bin and the same type
(central or satellite). Where a bin holds no hydro subhalo of that type, the nearest bin (in bin
index) that holds one is used, the lower one on a tie. The caller assigns the drawn masses to a
grid at the gravity-only positions (:func:`tfastro.fields.assignment.mass_assignment`).
"""
import numpy as np

__all__ = ["host_mass_edges", "hod_stellar_masses"]


def _positive_masses(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1D array of masses, got shape "
                         f"{values.shape}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name}: host masses must be finite and positive")
    return values


def _flags(values, name, size):
    values = np.asarray(values)
    if values.shape != (size,):
        raise ValueError(f"{name}: expected ({size},) central flags, got shape {values.shape}")
    return values.astype(bool)


def host_mass_edges(host_mass_dark, host_mass_hydro, bins=10):
    """(bins + 1,) log10 host-mass edges, evenly spaced from the smallest to the largest host
    mass of both catalogues."""
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    log_masses = np.log10(np.concatenate([host_mass_dark, host_mass_hydro]))
    low, high = log_masses.min(), log_masses.max()
    if high == low:
        high = low + 1.0  # a single mass: one bin holding everything
    return np.linspace(low, high, int(bins) + 1)


def _bin_index(host_mass, edges):
    """Bin of each mass: 0 .. len(edges) - 2, the largest mass in the last bin."""
    return np.clip(np.digitize(np.log10(host_mass), edges) - 1, 0, len(edges) - 2)


def _source_bin(wanted, filled):
    """The filled bin nearest to ``wanted`` (the lower one on a tie)."""
    options = np.flatnonzero(filled)
    return int(options[np.argmin(np.abs(options - wanted))])


def hod_stellar_masses(host_mass_dark, is_central_dark, host_mass_hydro, is_central_hydro,
                       stellar_mass_hydro, bins=10, seed=0):
    """Stellar masses of gravity-only subhalos drawn from hydro subhalos of the same host-mass
    bin and type.

    Args:
      host_mass_dark: (n_dark,) mass of the host halo of each gravity-only subhalo (> 0).
      is_central_dark: (n_dark,) True for centrals (the first subhalo of their group).
      host_mass_hydro: (n_hydro,) host-halo mass of each hydro subhalo, same unit.
      is_central_hydro: (n_hydro,) central flags of the hydro subhalos.
      stellar_mass_hydro: (n_hydro,) stellar masses of the hydro subhalos (any unit; returned
        in it).
      bins: number of log10 host-mass bins (see :func:`host_mass_edges`).
      seed: seed of the draws.
    Returns:
      (n_dark,) float64 stellar masses, one per gravity-only subhalo.
    Raises:
      ValueError: for bad shapes or masses, or a type (central / satellite) needed by the
        gravity-only catalogue of which the hydro catalogue holds no subhalo at all.
    """
    host_mass_dark = _positive_masses(host_mass_dark, "host_mass_dark")
    host_mass_hydro = _positive_masses(host_mass_hydro, "host_mass_hydro")
    central_dark = _flags(is_central_dark, "is_central_dark", host_mass_dark.size)
    central_hydro = _flags(is_central_hydro, "is_central_hydro", host_mass_hydro.size)
    stellar = np.asarray(stellar_mass_hydro, dtype=np.float64)
    if stellar.shape != host_mass_hydro.shape:
        raise ValueError(f"stellar_mass_hydro: expected shape {host_mass_hydro.shape} like "
                         f"host_mass_hydro, got {stellar.shape}")
    edges = host_mass_edges(host_mass_dark, host_mass_hydro, bins)
    n_bins = len(edges) - 1
    bin_dark, bin_hydro = _bin_index(host_mass_dark, edges), _bin_index(host_mass_hydro, edges)
    rng = np.random.default_rng(seed)
    drawn = np.empty(host_mass_dark.size)
    for central in (True, False):
        kind = "central" if central else "satellite"
        of_kind_dark, of_kind_hydro = central_dark == central, central_hydro == central
        if not of_kind_dark.any():
            continue
        if not of_kind_hydro.any():
            raise ValueError(f"is_central_hydro: the hydro catalogue has no {kind} subhalo to "
                             f"draw stellar masses from")
        filled = np.bincount(bin_hydro[of_kind_hydro], minlength=n_bins) > 0
        for b in np.unique(bin_dark[of_kind_dark]):
            targets = np.flatnonzero(of_kind_dark & (bin_dark == b))
            pool = stellar[of_kind_hydro & (bin_hydro == _source_bin(b, filled))]
            drawn[targets] = rng.choice(pool, size=targets.size, replace=True)
    return drawn
