"""Target, dm2gal prediction and HOD stellar-mass cubes compared: the statistics of the dm2gal
paper's figures.

Cubes are periodic ``(N, N, N)`` stellar masses per voxel (Msun/h) of a box of side
``box_size`` h^-1 Mpc. Clustering statistics use the overdensity delta = M / mean(M) - 1 of each
cube, so they are blind to the total mass (P and B of 2M equal those of M) and the total is
reported on its own:
- power spectrum P(k) of delta (:func:`tfastro.fields.spectra.power_spectrum`, Pylians bins
  of width k_F, optional mass-assignment correction ``mas``), and its ratio to the target's;
- bispectrum B(theta) and reduced Q(theta) of delta for fixed sides k1, k2
  (:func:`tfastro.fields.bispectra.bispectrum`), and their ratios to the target's;
- total stellar mass, and its ratio to the target's;
- histogram of log10 M over the non-empty voxels (M > ``min_mass``), on edges shared by all
  cubes, as counts.

:func:`compare_cubes` returns a JSON-serialisable dict (lists and floats; a non-finite value,
e.g. a ratio to a zero bispectrum, becomes None).
"""
import numpy as np

from tfastro.fields.bispectra import bispectrum
from tfastro.fields.pdf import pdf_bin_edges
from tfastro.fields.spectra import power_spectrum

__all__ = ["DEFAULT_THETAS", "compare_cubes"]


#: The paper's 25 triangle angles, evenly spaced over [0, pi].
DEFAULT_THETAS = np.linspace(0.0, np.pi, 25)


def _listed(values):
    """A float or array as floats / nested lists, non-finite values as None."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        return float(values) if np.isfinite(values) else None
    return [_listed(v) for v in values]


def _checked_cubes(cubes):
    shape = None
    for name, cube in cubes.items():
        cube = np.asarray(cube)
        if cube.ndim != 3 or len(set(cube.shape)) != 1:
            raise ValueError(f"{name}: expected an (N, N, N) mass cube, got shape {cube.shape}")
        if shape is not None and cube.shape != shape:
            raise ValueError(f"{name}: shape {cube.shape} differs from the target's {shape}")
        if not np.all(np.isfinite(cube)):
            raise ValueError(f"{name}: masses must be finite (fill unpredicted voxels first)")
        if not cube.sum() > 0:
            raise ValueError(f"{name}: the total mass must be positive to form an overdensity")
        shape = cube.shape


def _overdensity(cube):
    cube = np.asarray(cube, dtype=np.float64)
    return (cube / cube.mean() - 1.0).astype(np.float32)


def _ratios(values, reference="target"):
    with np.errstate(divide="ignore", invalid="ignore"):
        return {name: np.asarray(v) / np.asarray(values[reference])
                for name, v in values.items() if name != reference}


def compare_cubes(target, prediction, hod=None, *, box_size, k1, k2, thetas=DEFAULT_THETAS,
                  mas="CIC", bins=50, min_mass=0.0):
    """P(k), B(theta), Q(theta), total mass and mass histograms of the cubes, with ratios to
    the target.

    Args:
      target, prediction: ``(N, N, N)`` stellar mass per voxel (Msun/h), finite, positive sum
        (unpredicted voxels of a masked prediction must be filled, e.g. with 0, first).
      hod: optional ``(N, N, N)`` HOD cube, compared likewise.
      box_size: box side L in h^-1 Mpc.
      k1, k2: bispectrum triangle sides in h/Mpc, in (0, k_Nyquist].
      thetas: angles between k1 and k2 in radians (default 25 over [0, pi]).
      mas: mass-assignment window deconvolved in P and B (None, NGP, CIC, TSC, PCS).
      bins: number of log10 mass bins of the histograms.
      min_mass: voxels with M > min_mass are non-empty (histogrammed).
    Returns:
      dict with ``k``, ``nmodes`` (bins of P), ``power`` / ``power_ratio`` (per cube / per
      non-target cube), ``bispectrum`` (``k1``, ``k2``, ``thetas``, ``k3``, ``B``, ``Q``,
      ``B_ratio``, ``Q_ratio``), ``total_mass`` / ``total_mass_ratio``, ``histogram``
      (``log10_edges``, ``counts``, ``non_empty``), and ``box_size``, ``grid``, ``mas``.
    """
    cubes = {"target": target, "prediction": prediction}
    if hod is not None:
        cubes["hod"] = hod
    _checked_cubes(cubes)
    thetas = np.atleast_1d(np.asarray(thetas, dtype=np.float64))
    deltas = {name: _overdensity(cube) for name, cube in cubes.items()}

    power = {}
    for name, delta in deltas.items():
        k, power[name], nmodes = power_spectrum(delta, box_size, mas=mas)
    spectra = {name: bispectrum(delta, box_size, k1, k2, thetas, mas=mas)
               for name, delta in deltas.items()}
    b_values = {name: s.B for name, s in spectra.items()}
    q_values = {name: s.Q for name, s in spectra.items()}
    totals = {name: float(np.sum(cube, dtype=np.float64)) for name, cube in cubes.items()}

    log_masses = {name: np.log10(np.asarray(cube, np.float64)[np.asarray(cube) > min_mass])
                  for name, cube in cubes.items()}
    empty = [name for name, values in log_masses.items() if values.size == 0]
    if empty:
        raise ValueError(f"{empty[0]}: no voxel holds more than min_mass={min_mass}")
    edges = pdf_bin_edges(*log_masses.values(), bins=bins, log10=False)
    counts = {name: np.histogram(values, edges)[0] for name, values in log_masses.items()}

    return {
        "box_size": float(box_size), "grid": int(np.shape(target)[0]), "mas": mas,
        "k": _listed(k), "nmodes": _listed(nmodes),
        "power": {name: _listed(p) for name, p in power.items()},
        "power_ratio": {name: _listed(r) for name, r in _ratios(power).items()},
        "bispectrum": {
            "k1": float(k1), "k2": float(k2), "thetas": _listed(thetas),
            "k3": _listed(spectra["target"].k3),
            "B": {name: _listed(v) for name, v in b_values.items()},
            "Q": {name: _listed(v) for name, v in q_values.items()},
            "B_ratio": {name: _listed(r) for name, r in _ratios(b_values).items()},
            "Q_ratio": {name: _listed(r) for name, r in _ratios(q_values).items()},
        },
        "total_mass": totals,
        "total_mass_ratio": {name: _listed(r) for name, r in _ratios(totals).items()},
        "histogram": {"log10_edges": _listed(edges),
                      "counts": {name: [int(c) for c in v] for name, v in counts.items()},
                      "non_empty": {name: int(v.size) for name, v in log_masses.items()},
                      "min_mass": float(min_mass)},
    }
