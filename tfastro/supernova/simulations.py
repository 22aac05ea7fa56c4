"""Clips from a grid code's time series: Athena++ ``.athdf`` outputs of a 3D uniform mesh ->
the sn ``.npz`` of :mod:`tfastro.supernova.io`::

    python -m tfastro.supernova.simulations --out clips.npz run/*.athdf [--grid 32]
        [--region 64] [--centre X,Y,Z] [--normalisation log --log_bounds -2,1]
        [--clip_length 20 --input_length 10] [--overwrite]

Each file is one frame: its gas density (``rho``, or ``dens`` in conserved outputs; read by
:mod:`tfastro.core.athena`, any meshblock layout, float32/float64), the frames ordered by their
Time. Around the explosion centre, a cube of ``region`` native cells per side is cut with the
periodic wrap and brought to ``grid`` cells per side: as it is when ``region == grid`` (the
default: a crop), by block averages when ``grid`` divides ``region``, by band-limited
interpolation when the whole periodic box is resampled (``region`` = the mesh).

The centre is given (x, y, z in the box's length units; without mesh data in cells, the box
spanning [0, n) along each axis) or detected:
the circular mean, along each axis, of the cell positions weighted by the density change from
the first frame, |rho_t - rho_0|, summed over the frames t = 1 .. ``centre_frames`` (the young
shell), so a blast across the periodic boundary is found where it is.

Frames are normalised to [0, 1] (:class:`tfastro.supernova.io.Normalisation`): ``max`` (by the
largest density of the series, the original's) or ``log`` (log10 density between the stated
``log_bounds``). The ``.npz`` also stores the frame times, the clip cube's (X, Y, Z) size, the
centre, the normalisation and their units.
"""
import argparse
import sys

import numpy as np

from tfastro.core.athena import (DENSITY_VARIABLES, athdf_variables, first_variable, read_athdf,
                                 resample_cube)
from tfastro.core.cli import comma_numbers
from tfastro.core.errors import UserInputError
from tfastro.supernova.io import (NORMALISATIONS, check_normalisation, default_clips,
                                  normalisation_of, save_sn_npz)

__all__ = ["read_density_series", "detect_centre", "periodic_cut", "simulation_clips",
           "write_simulation_clips", "main"]

#: Units of what the clips store from Athena++'s code units (cells without mesh data).
CODE_UNITS = {"length": "code_length", "time": "code_time", "density": "code_density"}


def read_density_series(paths):
    """The gas density of each ``.athdf`` file, in time order.

    Returns:
      ``(density, times, box, origin)``: float32 ``(T, X, Y, Z)`` (indexed [x, y, z]),
      float64 ``(T,)``, and the (x, y, z) box extents and lower corner (None without mesh data).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise UserInputError("no .athdf files given; expected a time series of outputs")
    frames = []
    for path in paths:
        name = first_variable(path, DENSITY_VARIABLES, athdf_variables(path), "the gas density")
        cubes, info = read_athdf(path, [name])
        if not np.isfinite(info["time"]):
            raise UserInputError(f"{path}: no Time attribute; expected Athena++ outputs of "
                                 "a time series")
        frames.append((info["time"], path, cubes[name].transpose(2, 1, 0), info))
    frames.sort(key=lambda frame: frame[0])
    (time0, path0, cube0, info0) = frames[0]
    for (t, path, cube, info), previous in zip(frames[1:], frames):
        if cube.shape != cube0.shape or info["box"] != info0["box"]:
            raise UserInputError(f"{path}: mesh {_xyz(cube.shape)} of box {info['box']} differs "
                                 f"from {path0}'s {_xyz(cube0.shape)} of box {info0['box']}")
        if t == previous[0]:
            raise UserInputError(f"{path}: Time {t} is that of {previous[1]}; expected one "
                                 "output per time")
    if cube0.ndim != 3 or min(cube0.shape) < 2:
        raise UserInputError(f"{path0}: mesh {_xyz(cube0.shape)} is not a 3D mesh")
    reverse = (lambda v: None if v is None else tuple(v[::-1]))
    return (np.stack([f[2] for f in frames]), np.array([f[0] for f in frames]),
            reverse(info0["box"]), reverse(info0["origin"]))


def _xyz(shape):
    return " x ".join(map(str, shape)) + " cells (x, y, z)"


def detect_centre(density, centre_frames=3):
    """Explosion centre (x, y, z) in cell coordinates (cell i's centre at i) of ``density``
    ``(T, X, Y, Z)``: per axis, the circular mean of the positions weighted by
    sum_{t=1..centre_frames} |rho_t - rho_0| (see the module docstring)."""
    density = np.asarray(density, dtype=np.float64)
    if int(centre_frames) < 1:
        raise UserInputError(f"centre_frames={centre_frames}: expected at least 1 frame after "
                             "the first")
    if density.shape[0] < 2:
        raise UserInputError("detecting the centre needs at least two frames (the change from "
                             "the first); give the centre instead")
    change = np.abs(density[1:1 + centre_frames] - density[0]).sum(axis=0)
    if not change.any():
        raise UserInputError("the density does not change over the first frames; give the "
                             "centre instead")
    centre = []
    for axis, n in enumerate(change.shape):
        weights = change.sum(axis=tuple(a for a in range(3) if a != axis))
        phase = np.angle(np.sum(weights * np.exp(2j * np.pi * np.arange(n) / n)))
        centre.append(float(n * phase / (2 * np.pi) % n))
    return tuple(centre)


def periodic_cut(cube, centre, size):
    """``(size, size, size)`` cells of the periodic ``cube`` (X, Y, Z) around ``centre`` (cell
    coordinates): along each axis cells round(c) - size // 2 .. + size - 1, wrapped."""
    cut = np.asarray(cube)
    for axis, (c, n) in enumerate(zip(centre, cut.shape)):
        start = int(np.floor(c + 0.5)) - size // 2
        cut = np.take(cut, np.arange(start, start + size) % n, axis=axis)
    return cut


def _cell_centre(centre, box, origin, shape):
    """A position in box units -> cell coordinates (cell i's centre at i)."""
    return tuple((c - o) * n / b - 0.5 for c, o, n, b in zip(centre, origin, shape, box))


def _box_centre(cells, box, origin, shape):
    """Cell coordinates -> a position in box units."""
    return tuple(o + (c + 0.5) * b / n for c, o, n, b in zip(cells, origin, shape, box))


def simulation_clips(paths, *, grid=None, region=None, centre=None, centre_frames=3,
                     normalisation="max", log_bounds=None, clip_length=None, input_length=None):
    """Clips of a time series of Athena++ outputs (see the module docstring).

    Args:
      paths: the ``.athdf`` files (any order).
      grid: cells per side of the clips (default: ``region``, else the smallest mesh side).
      region: native cells per side cut around the centre (default: ``grid``).
      centre: (x, y, z) in the box's length units (cells without mesh data); None: detected
        from the first ``centre_frames`` + 1 frames.
      normalisation: "max" or "log"; log_bounds: (log10 rho at 0, at 1), needed for "log".
      clip_length, input_length: frames per clip (default all) and context frames of each
        (default half), consecutive clips as :func:`tfastro.supernova.io.default_clips`.
    Returns:
      dict of the arguments of :func:`tfastro.supernova.io.save_sn_npz`: ``frames`` float32
      ``(T, 1, grid, grid, grid)`` in [0, 1], ``clips``, ``times`` ``(T,)``, ``box_size`` (X, Y, Z)
      of a clip's cube, ``centre`` (x, y, z) in the box, ``units``, ``normalisation``.
    """
    check_normalisation(normalisation, log_bounds)
    for name, value in (("grid", grid), ("region", region)):
        if value is not None and int(value) < 1:
            raise UserInputError(f"{name}={value}: expected a positive number of cells")
    density, times, box, origin = read_density_series(paths)
    shape = density.shape[1:]
    units = dict(CODE_UNITS)
    if box is None:  # no mesh data: lengths in cells, the box spanning [0, n) along each axis
        box, origin, units["length"] = shape, (0.0, 0.0, 0.0), "cell"
    region = _region(region, grid, shape)
    grid = int(grid or region)
    if grid != region and region % grid and not region == shape[0] == shape[1] == shape[2]:
        raise UserInputError(f"grid={grid}, region={region}: a cut of the mesh is resampled by "
                             "block averages only (grid dividing region); band-limited "
                             "resampling needs the whole periodic cube")
    cells = (detect_centre(density, centre_frames) if centre is None
             else _cell_centre(centre, box, origin, shape))
    cuts = np.stack([resample_cube(periodic_cut(frame, cells, region), grid)[0]
                     for frame in density])
    scale = normalisation_of(cuts, normalisation, log_bounds, units=CODE_UNITS["density"])
    n_frames = len(times)
    clip_length = int(clip_length or n_frames)
    clips = default_clips(n_frames, clip_length, input_length)
    return {"frames": scale.frames(cuts)[:, None], "clips": clips, "times": times,
            "box_size": region * np.asarray(box) / np.asarray(shape),
            "centre": np.asarray(_box_centre(cells, box, origin, shape)), "units": units,
            "normalisation": scale}


def _region(region, grid, shape):
    """Native cells per side of the cut: ``region``, else ``grid`` where the mesh holds it,
    else the mesh (checked against the mesh)."""
    region = int(region or (grid if grid and grid <= min(shape) else min(shape)))
    if not 1 <= region <= min(shape):
        raise UserInputError(f"region={region}: expected 1 to {min(shape)} native cells (the "
                             f"mesh is {_xyz(shape)})")
    return region


def write_simulation_clips(out, paths, overwrite=False, **options):
    """:func:`simulation_clips` written to the sn ``.npz`` ``out``; returns ``out``."""
    clips = simulation_clips(paths, **options)
    return save_sn_npz(out, clips.pop("frames"), clips.pop("clips"), overwrite=overwrite, **clips)


def add_normalisation_options(parser):
    """--normalisation and --log_bounds, the options of every command writing clips from
    physical densities."""
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default="max",
                        help="max: density / its largest value (the original's); log: log10 "
                        "density between --log_bounds")
    parser.add_argument("--log_bounds", type=comma_numbers(2, "log10 rho at 0, at 1"),
                        help="log10 of the densities mapped to 0 and 1 (with --normalisation "
                        "log)")


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m tfastro.supernova.simulations",
        description="Athena++ .athdf outputs of a 3D uniform mesh (one per time) -> sn .npz "
                    "clips in [0, 1] with their times, centre and normalisation.")
    parser.add_argument("paths", nargs="+", help="the .athdf outputs (any order)")
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--grid", type=int, help="cells per side of the clips (default: "
                        "--region, else the mesh)")
    parser.add_argument("--region", type=int, help="native cells per side cut around the "
                        "centre (default: --grid)")
    parser.add_argument("--centre", type=comma_numbers(3, "x,y,z"), help="explosion centre x,y,z "
                        "in box units (default: detected)")
    parser.add_argument("--centre_frames", type=int, default=3, help="frames after the first "
                        "whose density change locates the centre (default 3)")
    add_normalisation_options(parser)
    parser.add_argument("--clip_length", type=int, help="frames per clip (default: all)")
    parser.add_argument("--input_length", type=int, help="context frames per clip (default: "
                        "half)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def main(argv=None):
    """The command line (module docstring); returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        out = write_simulation_clips(
            args.out, args.paths, overwrite=args.overwrite, grid=args.grid, region=args.region,
            centre=args.centre, centre_frames=args.centre_frames,
            normalisation=args.normalisation, log_bounds=args.log_bounds,
            clip_length=args.clip_length, input_length=args.input_length)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
