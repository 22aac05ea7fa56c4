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

A training sample is clip ``i``'s input frames followed by its output frames, cut to
``total_length`` frames and transposed to channels-last: ``(time, X, Y, Z, C)``.
Every problem with a file is reported as :class:`tfastro.core.errors.UserInputError` naming
the file and what was expected.
"""
import contextlib
import dataclasses
import os
import uuid
import zipfile

import numpy as np

from tfastro.core.errors import UserInputError

#: Names of the arrays an sn ``.npz`` file must contain.
REQUIRED_KEYS = ("input_raw_data", "clips", "dims")


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
    """

    frames: np.ndarray
    clips: np.ndarray
    dims: tuple
    paths: tuple
    clips_per_file: tuple = None

    def __post_init__(self):
        if self.clips_per_file is None:
            self.clips_per_file = (self.clips.shape[1],)

    @property
    def num_clips(self):
        """Number of clips, ``clips.shape[1]``."""
        return int(self.clips.shape[1])

    def clip_length(self, i):
        """Number of frames available to clip ``i`` (input length + output length)."""
        return int(self.clips[0, i, 1] + self.clips[1, i, 1])

    def source_of_clip(self, i):
        """Path of the file clip ``i`` was read from."""
        bounds = np.cumsum(self.clips_per_file)
        return self.paths[int(np.searchsorted(bounds, i, side="right"))]

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
    return frames.astype(np.float32, copy=False), clips.astype(np.int64), dims


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
      values, or two files whose dims differ.
    """
    parts = _split_paths(paths)
    loaded = [_read_one(p) for p in parts]
    frames, clips, dims = loaded[0]
    if len(loaded) == 2:
        frames2, clips2, dims2 = loaded[1]
        if dims2 != dims:
            raise UserInputError(f"{parts[1]}: dims {dims2} differ from dims {dims} of "
                                 f"{parts[0]}; both files must hold frames of one shape")
        clips2 = clips2.copy()
        clips2[..., 0] += frames.shape[0]
        frames = np.concatenate([frames, frames2])
        clips = np.concatenate([clips, clips2], axis=1)
    return SNData(frames=frames, clips=clips, dims=dims, paths=tuple(parts),
                  clips_per_file=tuple(c.shape[1] for _, c, _ in loaded))


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


def save_sn_npz(path, frames, clips, *, overwrite=False):
    """Write an sn ``.npz`` (``dims`` derived from ``frames``); returns ``path``.

    Args:
      path: destination, written exactly as given (no suffix is added). Parent
        directories are created.
      frames: ``(frames, C, X, Y, Z)`` finite values, stored as float32.
      clips: integer ``(2, n_clips, 2)`` (start, length) pairs into the frame axis, e.g.
        from :func:`default_clips`.
      overwrite: replace an existing file; without it an existing file is an error.

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

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, input_raw_data=frames, clips=clips.astype(np.int32), dims=dims)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
