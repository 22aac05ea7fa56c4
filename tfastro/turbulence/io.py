"""Turbulent-box cubes (Athena++ HDF5 -> FITS), their image pipeline, buffered split and tf.data.

Files
  ``*.athdf`` (Athena++ HDF5 output): read by :mod:`tfastro.core.athena` (uniform meshes, any
  meshblock layout, ``prim`` or ``cons`` variables, float data, with or without mesh data).
  FITS (one file per snapshot): an empty primary HDU (ORIGIN, optional SIMCLASS), then one
  ImageHDU per field, EXTNAME in ``FIELDS``, float32 ``(N, N, N)`` indexed [z, y, x], BUNIT
  its unit, NATIVE the grid it was resampled from and RESAMPLE the method.

Fields derived from the Athena++ variables (code units, Heaviside-Lorentz B as in Athena++):
  density = rho (or dens in conserved outputs); cr_energy_density = Ec (the cr module's
  variable) or ecr (the crdiffusion module's);
  magnetic_energy_density = (Bcc1^2 + Bcc2^2 + Bcc3^2) / 2.

Resampling an N^3 cube to ``grid``^3: :func:`tfastro.core.athena.resample_cube`.

Image pipeline (:func:`classification_images`; numpy axis 0 of a cube is the slicing axis):
  log10 of the field, min-max over the whole cube to [0, 255] (non-finite -> 0)
  (:func:`to_byte_scale`); optionally phases only on each full slice (:func:`flatten_power`);
  each slice rolled by a random periodic shift, training slices also by the extra ``shifts``
  (default half a tile in y and x) giving extra copies; each slice cut into tile^2 tiles that
  cover it exactly once (:func:`tile_image`); each tile histogram-equalised (256 bins) to
  (0, 1] (:func:`equalise_histogram`). With ``projection`` = n > 1 the image of slice s is
  the average of the n raw slices s .. s + n - 1 (:func:`project_slices`), taken before the
  log (a column density).

Buffered split (:func:`buffered_split`): the slicing axis is cut into ``parts`` = 6 equal
parts numbered 0 .. 5 (part p holds slices [p N // 6, (p + 1) N // 6)); training images come
from part 1, validation from part 3, test from part 5. Parts 0, 2 and 4 are buffers, so
between any two sets lies a whole part, also across the periodic wrap (5 -> 0 -> 1). With a
projection of n slices only windows lying wholly inside their part are used.
"""
import os

import warnings

import numpy as np
from astropy.io import fits

from tfastro.core.athena import (COSMIC_RAY_ENERGY_VARIABLES, DENSITY_VARIABLES, athdf_variables,
                                 first_variable, read_athdf, resample_cube)
from tfastro.core.atomic import PARTIAL, write_atomically
from tfastro.core.errors import UserInputError

__all__ = ["TURBULENCE_CLASSES", "CLASS_LABELS", "FIELDS", "CODE_UNITS", "athdf_variables",
           "read_athdf", "athena_fields", "resample_cube", "athena_to_fits", "write_fits_cubes",
           "read_fits_cube", "fits_units", "class_files"]


#: Class folders; a class index is the position in this tuple.
TURBULENCE_CLASSES = ("mhd", "cr_advection", "cr_diffusion", "cr_diffusion_100kappa",
                      "cr_streaming")


#: Human titles of the classes, in the same order.
CLASS_LABELS = ("MHD", "CR advection", "CR diffusion", "CR diffusion (100 kappa)",
                "CR streaming")


#: FITS extensions (EXTNAME) of a snapshot.
FIELDS = ("density", "cr_energy_density", "magnetic_energy_density")


#: BUNIT written for fields converted from Athena++ (code units).
CODE_UNITS = {"density": "code_density", "cr_energy_density": "code_energy_density",
              "magnetic_energy_density": "code_energy_density"}


#: Athena++ variables each field needs: one name from each tuple of alternatives.
_ATHENA_VARIABLES = {"density": (DENSITY_VARIABLES,),
                     "cr_energy_density": (COSMIC_RAY_ENERGY_VARIABLES,),
                     "magnetic_energy_density": (("Bcc1",), ("Bcc2",), ("Bcc3",))}


def _field_variables(path, field, available):
    """The file's variable names that ``field`` is derived from (UserInputError naming the
    file and the missing names otherwise)."""
    what = f"{field} (a run without cosmic rays has none)" if field == "cr_energy_density" \
        else field
    return [first_variable(path, names, available, what) for names in _ATHENA_VARIABLES[field]]


def athena_fields(cubes, fields=FIELDS):
    """Derived fields (see the module docstring) from assembled Athena++ variables.

    Args:
      cubes: Athena++ variable name -> cube (e.g. from :func:`read_athdf`).
    Returns:
      field name -> float32 cube.
    """
    return {field: _derived(field, [cubes[n] for n in _field_variables(
        "cubes", field, list(cubes))]) for field in fields}


def _derived(field, variables):
    if field == "magnetic_energy_density":
        return 0.5 * sum(b ** 2 for b in variables)
    return variables[0]


def _check_fields(fields, where):
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    unknown = [f for f in fields if f not in FIELDS]
    if not fields or unknown or len(set(fields)) != len(fields):
        raise UserInputError(f"{where}: fields={','.join(map(str, fields))}; expected "
                             f"distinct names among {', '.join(FIELDS)}")
    return fields


def athena_to_fits(athdf_path, fits_path, fields=FIELDS, grid=None, overwrite=False,
                   units=None, header=None):
    """Convert an Athena++ ``.athdf`` snapshot to a FITS file of ``fields`` on a ``grid``^3 grid.

    Args:
      fields: names among ``FIELDS`` (an MHD run without cosmic rays has no
        cr_energy_density).
      grid: cells per side of the output (default None: the native grid); another grid is
        resampled (:func:`resample_cube`) with a warning saying from what to what.
      units: field -> BUNIT (default ``CODE_UNITS``).
      header: extra primary-header cards (e.g. {"SIMCLASS": "cr_diffusion"}).
    Returns:
      ``fits_path``.
    """
    fields = _check_fields(fields, f"{athdf_path}")
    _refuse_overwrite(fits_path, overwrite)
    available = athdf_variables(athdf_path)
    variables = {field: _field_variables(athdf_path, field, available) for field in fields}
    resampled = {}
    for field in fields:  # one field at a time: derived on the native grid, then resampled
        cubes, info = read_athdf(athdf_path, variables[field])
        native = next(iter(cubes.values())).shape
        if len(set(native)) != 1:
            raise UserInputError(f"{athdf_path}: mesh of {' x '.join(map(str, native[::-1]))} "
                                 "cells (x, y, z) is not a cube; expected N^3 cells")
        resampled[field], method = resample_cube(
            _derived(field, [cubes[n] for n in variables[field]]), grid or native[0])
    if method != "none":
        warnings.warn(f"{athdf_path}: resampling {', '.join(fields)} from {native[0]}^3 to "
                      f"{grid}^3 cells ({method} resampling); pass grid=None to keep the "
                      "native grid", stacklevel=2)
    units = {**CODE_UNITS, **(units or {})}
    primary = {"ORIGIN": "tfastro athena_to_fits", "SRCFILE": os.path.basename(athdf_path),
               "TIME": info["time"], **(header or {})}
    if info["box"] is not None:
        primary["BOXLEN"] = info["box"][0]
    extra = {"NATIVE": native[0], "RESAMPLE": method}
    return write_fits_cubes(fits_path, resampled, {f: units[f] for f in fields}, primary,
                            overwrite=overwrite, extension_header=extra)


def _refuse_overwrite(path, overwrite):
    if os.path.exists(path) and not overwrite:
        raise UserInputError(f"{path}: file exists; refusing to overwrite it (pass "
                             "overwrite=True to replace it)")


def write_fits_cubes(path, cubes, units, header=None, overwrite=False, extension_header=None):
    """Write field cubes as one FITS file: empty primary HDU + one float32 ImageHDU per field.

    Args:
      cubes: field name -> ``(N, N, N)`` array [z, y, x]; the names become EXTNAME.
      units: field name -> BUNIT string.
      header: primary-header cards; extension_header: cards added to every ImageHDU.
    Returns:
      ``path``; UserInputError if it exists and not ``overwrite``.
    """
    _refuse_overwrite(path, overwrite)
    primary = fits.PrimaryHDU()
    for key, value in (header or {}).items():
        primary.header[key] = value
    hdus = [primary]
    for name, cube in cubes.items():
        hdu = fits.ImageHDU(np.asarray(cube, dtype=np.float32), name=name)
        hdu.header["EXTNAME"] = name  # keep the case (name= upper-cases it)
        hdu.header["BUNIT"] = units[name]
        for key, value in (extension_header or {}).items():
            hdu.header[key] = value
        hdus.append(hdu)
    return write_atomically(path, lambda partial: fits.HDUList(hdus).writeto(partial,
                                                                             overwrite=True))


def _extension(hdus, field, path):
    """The ImageHDU whose EXTNAME is ``field`` (case-insensitive)."""
    names = [str(h.header.get("EXTNAME", "")) for h in hdus[1:]]
    if field.lower() not in [n.lower() for n in names]:
        raise UserInputError(f"{path}: no FITS extension {field!r}; the file has "
                             f"{', '.join(names) or 'none'}")
    return hdus[1 + [n.lower() for n in names].index(field.lower())]


def _open_fits(path):
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: no such FITS file")
    try:
        return fits.open(path, memmap=False)
    except OSError as err:
        raise UserInputError(f"{path}: not a readable FITS file ({err})") from err


def read_fits_cube(path, field):
    """The ``(N, N, N)`` float32 cube [z, y, x] of extension ``field`` of a FITS snapshot."""
    with _open_fits(path) as hdus:
        data = _extension(hdus, field, path).data
        if data is None or data.ndim != 3 or len(set(data.shape)) != 1:
            raise UserInputError(f"{path}: extension {field!r} has shape "
                                 f"{None if data is None else data.shape}; expected (N, N, N)")
        return np.asarray(data, dtype=np.float32)


def fits_units(path, field):
    """BUNIT of extension ``field`` ("" when absent)."""
    with _open_fits(path) as hdus:
        return str(_extension(hdus, field, path).header.get("BUNIT", ""))


def class_files(data_dir, classes=TURBULENCE_CLASSES):
    """``[(path, label), ...]`` of the ``*.fits`` snapshots in ``data_dir/<class>/``, sorted,
    label = index of the class in ``classes`` (``*.partial.fits``, what an interrupted write
    leaves, is not a snapshot)."""
    files = []
    for label, name in enumerate(classes):
        folder = os.path.join(data_dir, name)
        if not os.path.isdir(folder):
            raise UserInputError(f"{folder}: missing class folder; expected one folder per "
                                 f"class ({', '.join(classes)}) in {data_dir}")
        found = sorted(f for f in os.listdir(folder)
                       if f.lower().endswith(".fits") and not PARTIAL.search(f))
        if not found:
            raise UserInputError(f"{folder}: no *.fits snapshots in the class folder")
        files += [(os.path.join(folder, f), label) for f in found]
    return files
