"""Forecasters without training, scored beside the networks: persistence (the last context
frame) and the Sedov-Taylor rescaling of the last context frame's blast.

Both have the networks' ``forecast(context, n_frames)``: context (B, L, X, Y, Z, C), the
first L frames of clips, in [0, 1]; returns (B, n_frames, X, Y, Z, C) float32, the frames
L .. L + n_frames - 1. Like :class:`tfastro.supernova.evaluation.ForecastScores`, the
Sedov-Taylor forecaster takes a clip's first frame as the gas before the explosion and the
density as the sum over channels.
"""
import numpy as np
from scipy import ndimage

from tfastro.supernova.evaluation import shell_mask, shell_radius

#: R ∝ t^(2/5): the Sedov-Taylor blast radius against time.
SEDOV_TAYLOR_EXPONENT = 0.4


class Persistence:
    """Every forecast frame is the last context frame."""

    name = "persistence"

    def forecast(self, context, n_frames):
        context = np.asarray(context, dtype=np.float32)
        return np.repeat(context[:, -1:], int(n_frames), axis=1)


def blast_region(frame, initial, threshold=0.1):
    """Voxels the blast changed: |density - initial| > threshold * initial; boolean, the
    shape of ``frame`` and ``initial`` (e.g. (X, Y, Z))."""
    frame, initial = np.asarray(frame), np.asarray(initial)
    return np.abs(frame - initial) > threshold * initial


def explosion_centre(region):
    """Centre (3,) in voxels of the boolean (X, Y, Z) ``region`` in a periodic box: per axis,
    the circular mean of the voxel positions (exact for a region within half the box around
    its centre). The grid centre for an empty region."""
    region = np.asarray(region, dtype=bool)
    sizes = np.asarray(region.shape)
    idx = np.argwhere(region)
    if len(idx) == 0:
        return (sizes - 1) / 2.0
    angle = 2.0 * np.pi * idx / sizes
    mean = np.arctan2(np.sin(angle).mean(axis=0), np.cos(angle).mean(axis=0))
    return (mean * sizes / (2.0 * np.pi)) % sizes


def measured_radius(frame, initial, centre=None, threshold=0.1):
    """Mean distance (voxels) of the shell voxels of ``frame`` (X, Y, Z) from ``centre``
    (default: the explosion centre detected in ``frame``); NaN without a shell."""
    if centre is None:
        centre = explosion_centre(blast_region(frame, initial, threshold))
    return shell_radius(shell_mask(frame, initial, threshold), centre)


def _displacements(shape, centre):
    """(3, X, Y, Z): each voxel's offset from ``centre``, wrapped into [-N/2, N/2)."""
    sizes = np.asarray(shape, dtype=np.float64).reshape(3, 1, 1, 1)
    d = np.indices(shape, dtype=np.float64) - np.asarray(centre).reshape(3, 1, 1, 1)
    return (d + sizes / 2) % sizes - sizes / 2


def sedov_taylor_rescale(frame, initial, scale, threshold=0.1):
    """``frame`` (X, Y, Z, C) with its blast stretched by ``scale`` about its centre.

    The blast region (see :func:`blast_region`, on the densities summed over channels) and
    the gas within it are remapped radially: the voxel at offset d from the explosion centre
    takes the (trilinearly interpolated, periodic) value at d / scale where that point lies in
    the region; elsewhere the gas is the ambient gas of ``frame``. Returns float32 (X, Y, Z, C).
    """
    frame = np.asarray(frame, dtype=np.float32)
    region = blast_region(frame.sum(axis=-1), np.asarray(initial).sum(axis=-1), threshold)
    if not region.any():
        return frame.copy()
    centre = explosion_centre(region)
    source = np.asarray(centre).reshape(3, 1, 1, 1) + _displacements(region.shape, centre) / scale
    inside = ndimage.map_coordinates(region.astype(np.float32), source, order=0,
                                     mode="grid-wrap") > 0.5
    out = frame.copy()
    for c in range(frame.shape[-1]):
        moved = ndimage.map_coordinates(frame[..., c], source, order=1, mode="grid-wrap")
        out[..., c] = np.where(inside, moved, frame[..., c])
    return out


class SedovTaylorRescaling:
    """The last context frame's blast stretched by R ∝ t^(2/5) to each forecast time.

    Frame k of a clip is at time k dt after the explosion (its first frame is the gas just
    before it, as in the synthetic clips and as ForecastScores assumes). Forecast frame k gets
    the last context frame (index L - 1) rescaled by (k / (L - 1))^(2/5)
    (:func:`sedov_taylor_rescale`), with the clip's first frame as the gas before the
    explosion. With L = 1 there is no blast to rescale: the frame is repeated.
    """

    name = "sedov_taylor"

    def __init__(self, threshold=0.1):
        self.threshold = float(threshold)

    def forecast(self, context, n_frames):
        context = np.asarray(context, dtype=np.float32)
        last = context.shape[1] - 1
        out = np.repeat(context[:, -1:], int(n_frames), axis=1)
        if last == 0:
            return out
        for j in range(int(n_frames)):
            scale = ((last + 1 + j) / last) ** SEDOV_TAYLOR_EXPONENT
            for b in range(len(context)):
                out[b, j] = sedov_taylor_rescale(context[b, -1], context[b, 0], scale,
                                                 self.threshold)
        return out


BASELINES = (Persistence(), SedovTaylorRescaling())
