"""Reader and writer of the 3D-MIM supernova ``.npz`` data file (``--dataset_name sn``).

The file holds three arrays:

``input_raw_data``
    float32, shape ``(frames, C, X, Y, Z)``: density cubes (channels first), already
    scaled to [0, 1]. The public sample is ``(240, 1, 32, 32, 32)``.
``clips``
    integer, shape ``(2, n_clips, 2)``: ``clips[0, i] = (start, length)`` of clip ``i``'s
    input frames and ``clips[1, i] = (start, length)`` of its output frames, both indexing
    the frame axis of ``input_raw_data``.
``dims``
    integer, shape ``(1, 4)``: ``(C, X, Y, Z)`` of one frame.

Files written by tfastro may also hold (all optional; files without them still load):

``normalisation``
    a JSON string: how frames relate to the physical density rho (:class:`Normalisation`),
    ``{"kind": "max", "scale": s}`` (frame = rho / s, the original's max-scaling) or
    ``{"kind": "log", "log_min": a, "log_max": b}`` (frame = (log10 rho - a) / (b - a),
    clipped to [0, 1]), with ``"units"`` of rho. Absent: max-scaling by an unknown scale.
``times``
    float64 ``(frames,)``: simulation time of each frame.
``box_size``
    float64 ``(3,)``: (X, Y, Z) extent of a frame's cube.
``centre``
    float64 ``(3,)``: (x, y, z) of the explosion centre in the simulation box.
``units``
    a JSON string: units of those, e.g. ``{"length": "code_length", "time": "code_time"}``.

A training sample is clip ``i``'s input frames followed by its output frames, cut to
``total_length`` frames and transposed to channels-last: ``(time, X, Y, Z, C)``.
Every problem with a file is reported as :class:`tfastro.core.errors.UserInputError` naming
the file and what was expected.
"""
import dataclasses
import json
import os
import zipfile

import numpy as np

from tfastro.core.atomic import write_atomically
from tfastro.core.errors import UserInputError

#: Names of the arrays an sn ``.npz`` file must contain.
REQUIRED_KEYS = ("input_raw_data", "clips", "dims")

#: Optional arrays tfastro stores beside them (see the module docstring).
EXTRA_KEYS = ("normalisation", "times", "box_size", "centre", "units")

#: Normalisations of density frames to [0, 1].
NORMALISATIONS = ("max", "log")


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """How frames in [0, 1] relate to the physical density rho.

    Attributes:
      kind: "max": frame = rho / scale, clipped to [0, 1] (the original 3D-MIM's, scale the
        largest density); "log": frame = (log10 rho - log_min) / (log_max - log_min), clipped
        to [0, 1].
      scale: the max-scaling's divisor (None: unknown, so frames cannot be turned back).
      log_min, log_max: log10 of the densities mapped to 0 and 1.
      units: of rho (e.g. "code_density", "g cm-3").
    """

    kind: str = "max"
    scale: float = None
    log_min: float = None
    log_max: float = None
    units: str = ""

    def __post_init__(self):
        for name in ("scale", "log_min", "log_max"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))
        if self.kind not in NORMALISATIONS:
            raise UserInputError(f"normalisation {self.kind!r}: expected one of "
                                 f"{', '.join(NORMALISATIONS)}")
        if self.kind == "max" and self.scale is not None and not (
                np.isfinite(self.scale) and self.scale > 0):
            raise UserInputError(f"max normalisation: scale={self.scale}; expected a finite "
                                 "positive density")
        if self.kind == "log" and not (
                self.log_min is not None and self.log_max is not None
                and np.isfinite([self.log_min, self.log_max]).all()
                and self.log_min < self.log_max):
            raise UserInputError(f"log normalisation: bounds log10 rho = {self.log_min}, "
                                 f"{self.log_max}; expected finite log_min < log_max")

    @property
    def invertible(self):
        """Whether frames can be turned back into densities (:meth:`density`)."""
        return self.kind == "log" or self.scale is not None

    def frames(self, density):
        """Physical density (any shape, > 0 for "log") -> float32 frames in [0, 1]."""
        if self.kind == "max":  # in float32, as the original's max-scaling
            return np.clip(np.asarray(density, np.float32) / np.float32(self._scale()), 0.0, 1.0)
        with np.errstate(divide="ignore"):
            unit = (np.log10(np.asarray(density, np.float64)) - self.log_min) / (
                self.log_max - self.log_min)
        return np.clip(unit, 0.0, 1.0).astype(np.float32)

    def density(self, frames):
        """Frames (any shape) -> float32 physical density (frames clipped to [0, 1] first)."""
        unit = np.clip(np.asarray(frames, dtype=np.float64), 0.0, 1.0)
        if self.kind == "log":
            return (10.0 ** (self.log_min + unit * (self.log_max - self.log_min))).astype(
                np.float32)
        return (unit * self._scale()).astype(np.float32)

    def _scale(self):
        if self.scale is None:
            raise UserInputError("max normalisation without a stored scale: frames cannot be "
                                 "turned back into densities")
        return self.scale

    def model_config(self):
        """The part a trained model keeps: the kind and, for "log", the bounds (a max-scaled
        file's scale is its own)."""
        if self.kind == "log":
            return {"kind": "log", "log_min": self.log_min, "log_max": self.log_max}
        return {"kind": "max"}

    def to_json(self):
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items()
                           if v is not None and v != ""})

    @classmethod
    def from_json(cls, text, where="normalisation"):
        """From :meth:`to_json`'s text (or a model config); UserInputError naming ``where``."""
        try:
            values = json.loads(text) if isinstance(text, str) else dict(text)
            return cls(**values)
        except (ValueError, TypeError) as err:
            raise UserInputError(f"{where}: {text!r} is not a normalisation ({err})") from None


def check_normalisation(kind, log_bounds=None):
    """UserInputError unless ``kind`` is one of NORMALISATIONS with ``log_bounds`` (log10 rho
    at 0, at 1) given for "log" and only for it."""
    if kind not in NORMALISATIONS:
        raise UserInputError(f"normalisation={kind!r}: expected one of "
                             f"{', '.join(NORMALISATIONS)}")
    if (kind == "log") != (log_bounds is not None):
        raise UserInputError(f"normalisation={kind}, log_bounds={log_bounds}: the bounds "
                             "(log10 density at 0 and at 1) go with the log normalisation and "
                             "only with it")


def normalisation_of(density, kind="max", log_bounds=None, units=""):
    """The :class:`Normalisation` ``kind`` of physical densities ``density`` (any shape):
    "max" scales by their largest value, "log" maps log10 density between ``log_bounds``
    (see :func:`check_normalisation`)."""
    check_normalisation(kind, log_bounds)
    if kind == "max":
        return Normalisation("max", scale=float(np.max(density)), units=units)
    return Normalisation("log", log_min=log_bounds[0], log_max=log_bounds[1], units=units)


@dataclasses.dataclass
class SNData:
    """The contents of one or two sn ``.npz`` files.

    Attributes:
      frames: float32 ``(frames, C, X, Y, Z)``, values in [0, 1].
      clips: int64 ``(2, n_clips, 2)`` of (start, length) pairs into ``frames``
        (row 0: input frames, row 1: output frames).
      dims: ``(C, X, Y, Z)`` of one frame, as a tuple of ints.
      paths: the file(s) the data came from, in order.
      clips_per_file: how many clips each of ``paths`` contributed (same order); used to
        name the right file in error messages. Defaults to all clips from ``paths[0]``.
      metadata: per file of ``paths``, a dict of its :data:`EXTRA_KEYS` (``normalisation`` a
        :class:`Normalisation`, the max-scaling of unknown scale when the file has none).
    """

    frames: np.ndarray
    clips: np.ndarray
    dims: tuple
    paths: tuple
    clips_per_file: tuple = None
    metadata: tuple = None

    def __post_init__(self):
        if self.clips_per_file is None:
            self.clips_per_file = (self.clips.shape[1],)
        if self.metadata is None:
            self.metadata = tuple({"normalisation": Normalisation()} for _ in self.paths)

    @property
    def num_clips(self):
        """Number of clips, ``clips.shape[1]``."""
        return int(self.clips.shape[1])

    def clip_length(self, i):
        """Number of frames available to clip ``i`` (input length + output length)."""
        return int(self.clips[0, i, 1] + self.clips[1, i, 1])

    def source_of_clip(self, i):
        """Path of the file clip ``i`` was read from."""
        return self.paths[self._file_of_clip(i)]

    def _file_of_clip(self, i):
        return int(np.searchsorted(np.cumsum(self.clips_per_file), i, side="right"))

    def normalisation(self, i=0):
        """:class:`Normalisation` of clip ``i``'s frames (that of its file)."""
        return self.metadata[self._file_of_clip(i)]["normalisation"]

    def clip(self, i, total_length):
        """Clip ``i`` as a float32 array ``(total_length, X, Y, Z, C)``.

        The input frames followed by the output frames, channels-last, cut to the first
        ``total_length`` frames. Only this clip is copied out of ``frames``.
        """
        if not 0 <= i < self.num_clips:
            raise IndexError(f"clip index {i} out of range for {self.num_clips} clips")
        if total_length < 1 or total_length > self.clip_length(i):
            raise UserInputError(
                f"{self.source_of_clip(i)}: clip {i} has {self.clip_length(i)} frames "
                f"(input + output); total_length={total_length} must be between 1 and that")
        (in_start, in_len), (out_start, _) = self.clips[0, i], self.clips[1, i]
        if total_length <= in_len or out_start == in_start + in_len:
            seq = self.frames[in_start:in_start + total_length]
        else:
            n_out = total_length - in_len
            seq = np.concatenate([self.frames[in_start:in_start + in_len],
                                  self.frames[out_start:out_start + n_out]])
        return np.ascontiguousarray(np.moveaxis(seq, 1, -1), dtype=np.float32)


def _read_one(path):
    """Read and validate one sn ``.npz``; returns (frames, clips, dims)."""
    if os.path.isdir(path):
        raise UserInputError(f"{path}: a folder; expected an .npz file with arrays "
                             f"{', '.join(REQUIRED_KEYS)}")
    if not os.path.isfile(path):
        raise UserInputError(
            f"{path}: no such file (expected an .npz with arrays {', '.join(REQUIRED_KEYS)})")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserInputError(f"{path}: not a readable .npz file ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserInputError(f"{path}: holds a single array, expected an .npz archive "
                             f"with arrays {', '.join(REQUIRED_KEYS)}")
    with archive:
        missing = [k for k in REQUIRED_KEYS if k not in archive.files]
        if missing:
            raise UserInputError(f"{path}: missing array(s) {', '.join(missing)} "
                                 f"(found: {', '.join(archive.files) or 'none'})")
        try:
            frames, clips, dims = (archive[k] for k in REQUIRED_KEYS)
            extra = {k: archive[k] for k in EXTRA_KEYS if k in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise UserInputError(f"{path}: cannot read arrays ({err})") from err

    if frames.ndim != 5 or not np.issubdtype(frames.dtype, np.floating):
        raise UserInputError(f"{path}: input_raw_data must be a float array of shape "
                             f"(frames, C, X, Y, Z), got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise UserInputError(f"{path}: input_raw_data holds no frames")
    if not np.isfinite(frames).all():
        bad = int(np.size(frames) - np.count_nonzero(np.isfinite(frames)))
        raise UserInputError(f"{path}: input_raw_data holds {bad} non-finite value(s)")
    if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2 or clips.shape[1] == 0 \
            or not np.issubdtype(clips.dtype, np.integer):
        raise UserInputError(f"{path}: clips must be an integer array of shape "
                             f"(2, n_clips, 2) with n_clips >= 1, got {clips.dtype} {clips.shape}")
    if dims.shape != (1, 4) or not np.issubdtype(dims.dtype, np.integer):
        raise UserInputError(f"{path}: dims must be an integer array of shape (1, 4) = "
                             f"(C, X, Y, Z), got {dims.dtype} {dims.shape}")
    dims = tuple(int(d) for d in dims[0])
    if dims != frames.shape[1:]:
        raise UserInputError(f"{path}: dims {dims} do not match the frame shape "
                             f"{frames.shape[1:]} of input_raw_data (C, X, Y, Z)")
    _check_clips_in_range(clips, frames.shape[0], path)
    return (frames.astype(np.float32, copy=False), clips.astype(np.int64), dims,
            _metadata(extra, frames.shape[0], path))


def _metadata(extra, n_frames, path):
    """The optional arrays of a file, checked and decoded (see the module docstring)."""
    meta = {"normalisation": Normalisation.from_json(
        str(extra.pop("normalisation", "{}")), f"{path}: normalisation")}
    if "units" in extra:
        try:
            meta["units"] = dict(json.loads(str(extra.pop("units"))))
        except (ValueError, TypeError) as err:
            raise UserInputError(f"{path}: units is not a JSON object ({err})") from None
    shapes = {"times": (n_frames,), "box_size": (3,), "centre": (3,)}
    for key, value in extra.items():
        if value.shape != shapes[key] or not np.issubdtype(value.dtype, np.number):
            raise UserInputError(f"{path}: {key} must be a number array of shape "
                                 f"{shapes[key]}, got {value.dtype} {value.shape}")
        meta[key] = value.astype(np.float64)
    return meta


def _check_clips_in_range(clips, n_frames, where):
    starts, lengths = clips[..., 0], clips[..., 1]
    bad = (starts < 0) | (lengths < 1) | (starts + lengths > n_frames)
    if bad.any():
        part, i = (int(v) for v in np.argwhere(bad)[0])
        kind = ("input", "output")[part]
        raise UserInputError(
            f"{where}: clips[{part}, {i}] = ({starts[part, i]}, {lengths[part, i]}) "
            f"({kind} frames of clip {i}) is out of range: need start >= 0, length >= 1 and "
            f"start + length <= {n_frames} frames")


def _split_paths(paths):
    if isinstance(paths, os.PathLike):
        paths = os.fspath(paths)
    if not isinstance(paths, str):
        raise UserInputError(f"data paths must be a string of one or two comma-separated "
                             f"paths, got {type(paths).__name__}")
    parts = [p.strip() for p in paths.split(",")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise UserInputError(f"data paths {paths!r}: expected one path or two "
                             "comma-separated paths")
    return parts


def load_sn_npz(paths) -> SNData:
    """Load one sn ``.npz`` file, or two comma-separated ones concatenated.

    With two files the frames are concatenated and the clip starts of the second file
    are shifted by the number of *frames* of the first, so every clip still points at
    its own frames. (The original 3D-MIM reader shifted them by the number of clips of
    the first file, which makes the second file's clips read the wrong frames; this is
    the corrected behaviour.)

    Args:
      paths: ``"a.npz"`` or ``"a.npz,b.npz"`` (a path-like object for a single file).
    Returns:
      :class:`SNData`.
    Raises:
      UserInputError naming the file: missing or unreadable file, missing arrays, wrong
      shapes or dtypes, dims not matching the frames, clips out of range, non-finite
      values, unreadable optional arrays, or two files whose dims or normalisations
      (kind and log bounds) differ.
    """
    parts = _split_paths(paths)
    loaded = [_read_one(p) for p in parts]
    frames, clips, dims, meta = loaded[0]
    if len(loaded) == 2:
        frames2, clips2, dims2, meta2 = loaded[1]
        kinds = [m["normalisation"].model_config() for m in (meta, meta2)]
        if kinds[0] != kinds[1]:
            raise UserInputError(f"{parts[1]}: normalised as {kinds[1]}, {parts[0]} as "
                                 f"{kinds[0]}; both files must hold frames of one normalisation")
        if dims2 != dims:
            raise UserInputError(f"{parts[1]}: dims {dims2} differ from dims {dims} of "
                                 f"{parts[0]}; both files must hold frames of one shape")
        clips2 = clips2.copy()
        clips2[..., 0] += frames.shape[0]
        frames = np.concatenate([frames, frames2])
        clips = np.concatenate([clips, clips2], axis=1)
    return SNData(frames=frames, clips=clips, dims=dims, paths=tuple(parts),
                  clips_per_file=tuple(c.shape[1] for _, c, _, _ in loaded),
                  metadata=tuple(m for *_, m in loaded))


def check_sn_config(data: SNData, *, total_length, width, height, depth, channels):
    """Check that loaded data fits the run configuration; raise UserInputError if not.

    Args:
      data: from :func:`load_sn_npz`.
      total_length: frames per sample (``--total_length``).
      width, height, depth: X, Y, Z of a frame (``--img_width``, ``--img_height``,
        ``--img_depth``); pass the resolved height (the flag's 0 means "= width").
      channels: C of a frame (``--img_channel``).
    Raises:
      UserInputError naming the flag and the file.
    """
    files = ",".join(data.paths)
    for flag, want, have in zip(("--img_channel", "--img_width", "--img_height", "--img_depth"),
                                (channels, width, height, depth), data.dims):
        if want != have:
            raise UserInputError(f"{flag}={want} does not match {files}: its frames are "
                                 f"(C, X, Y, Z) = {data.dims}")
    lengths = data.clips[0, :, 1] + data.clips[1, :, 1]
    short = np.flatnonzero(lengths < total_length)
    if short.size:
        i = int(short[0])
        raise UserInputError(
            f"--total_length={total_length} is longer than clip {i} of "
            f"{data.source_of_clip(i)}, which has {int(lengths[i])} frames (input + output); "
            f"{short.size} clip(s) are too short, the shortest has {int(lengths.min())}")


def default_clips(n_frames, clip_length, input_length=None):
    """Consecutive non-overlapping clips covering ``n_frames`` frames.

    Clip ``i`` uses frames ``[i*clip_length, (i+1)*clip_length)``: the first
    ``input_length`` (default ``clip_length // 2``) as input, the rest as output.

    Returns:
      int32 array ``(2, n_frames // clip_length, 2)`` in the sn ``clips`` layout.
    """
    if clip_length < 2 or n_frames < clip_length or n_frames % clip_length:
        raise UserInputError(f"n_frames={n_frames} must be a positive multiple of "
                             f"clip_length={clip_length} (and clip_length >= 2)")
    if input_length is None:
        input_length = clip_length // 2
    if not 1 <= input_length < clip_length:
        raise UserInputError(f"input_length={input_length} must be between 1 and "
                             f"clip_length - 1 = {clip_length - 1}")
    starts = np.arange(n_frames // clip_length) * clip_length
    clips = np.empty((2, starts.size, 2), dtype=np.int32)
    clips[0, :, 0] = starts
    clips[0, :, 1] = input_length
    clips[1, :, 0] = starts + input_length
    clips[1, :, 1] = clip_length - input_length
    return clips


def save_sn_npz(path, frames, clips, *, overwrite=False, normalisation=None, times=None,
                box_size=None, centre=None, units=None):
    """Write an sn ``.npz`` (``dims`` derived from ``frames``); returns ``path``.

    Args:
      path: destination, written exactly as given (no suffix is added). Parent
        directories are created.
      frames: ``(frames, C, X, Y, Z)`` finite values, stored as float32.
      clips: integer ``(2, n_clips, 2)`` (start, length) pairs into the frame axis, e.g.
        from :func:`default_clips`.
      overwrite: replace an existing file; without it an existing file is an error.
      normalisation, times, box_size, centre, units: the optional arrays of the module
        docstring (a :class:`Normalisation`, ``(frames,)``, ``(3,)``, ``(3,)``, a dict of
        unit names); None leaves them out.

    The archive is written to a temporary file beside ``path`` and renamed into place,
    so an interrupted write never leaves a partial file under ``path``.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise UserInputError(f"{path}: file exists; refusing to overwrite it "
                             "(pass overwrite=True / --overwrite)")
    frames = np.asarray(frames, dtype=np.float32)
    clips = np.asarray(clips)
    if frames.ndim != 5 or frames.shape[0] == 0:
        raise UserInputError(f"{path}: frames must have shape (frames, C, X, Y, Z), "
                             f"got {frames.shape}")
    if not np.isfinite(frames).all():
        raise UserInputError(f"{path}: frames hold non-finite values")
    if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2 or clips.shape[1] == 0 \
            or not np.issubdtype(clips.dtype, np.integer):
        raise UserInputError(f"{path}: clips must be an integer array of shape "
                             f"(2, n_clips, 2), got {clips.dtype} {clips.shape}")
    _check_clips_in_range(clips, frames.shape[0], path)
    dims = np.asarray([frames.shape[1:]], dtype=np.int32)
    extra = {"normalisation": None if normalisation is None else np.array(
        normalisation.to_json()), "units": None if units is None else np.array(json.dumps(units)),
        "times": times, "box_size": box_size, "centre": centre}
    extra = {k: np.asarray(v) for k, v in extra.items() if v is not None}
    _metadata(dict(extra), frames.shape[0], path)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(partial):
        with open(partial, "wb") as f:
            np.savez(f, input_raw_data=frames, clips=clips.astype(np.int32), dims=dims, **extra)
    return write_atomically(path, write)
