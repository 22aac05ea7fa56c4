"""Prestellar-core files: ``prestellar.h5`` (PPV cubes, targets and each core's parameters)
and one FITS file per core (PPV cube with a km/s spectral axis, LOG_DENSITY and V_LOS
extensions). Axis conventions are those of :mod:`tfastro.prestellar.synthetic`.
"""
import os

import h5py
import numpy as np
from astropy import units
from astropy.io import fits

from tfastro.core.atomic import write_atomically
from tfastro.core.errors import UserInputError
from tfastro.prestellar.synthetic import CoreParams, CoreSet, thermal_width

__all__ = ["PARAM_FIELDS", "HDF5_NAME", "write_prestellar", "read_prestellar",
           "read_prestellar_fits"]


HDF5_NAME = "prestellar.h5"

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
    write_atomically(h5_path, lambda partial: _write_hdf5(partial, cores))
    for i, path in enumerate(fits_paths):
        write_atomically(path, lambda partial, i=i: _core_hdus(cores, i).writeto(partial,
                                                                                 overwrite=True))
    return {"hdf5": h5_path, "fits": fits_paths}


def _finite_dataset(handle, name, path):
    """Dataset ``name`` of an open HDF5 file as float32; UserInputError naming the file and
    the dataset unless it holds finite numbers."""
    dataset = handle[name]
    if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "biuf":
        kind = dataset.dtype if isinstance(dataset, h5py.Dataset) else "a group"
        raise UserInputError(f"{path}: dataset {name!r} holds {kind} values; expected numbers")
    return _finite(np.asarray(dataset, dtype=np.float32), path, f"dataset {name!r}")


def _finite(values, path, what):
    """``values`` unless some are NaN or inf (UserInputError naming ``path`` and ``what``)."""
    bad = np.count_nonzero(~np.isfinite(values))
    if bad:
        raise UserInputError(f"{path}: {what} holds {bad} non-finite value(s) (NaN or inf as "
                             "float32); expected finite numbers")
    return values


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
        ppv, log_density, v_los = (_finite_dataset(handle, name, path)
                                   for name in ("ppv", "log_density", "v_los"))
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
        ppv, log_density, v_los = (
            _finite(np.asarray(hdu.data, np.float32), path, what).transpose(2, 1, 0)
            for hdu, what in ((hdus[0], "the primary HDU (PPV)"),
                              (hdus[1 + names.index("LOG_DENSITY")], "extension LOG_DENSITY"),
                              (hdus[1 + names.index("V_LOS")], "extension V_LOS")))
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
