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

from tfastro.supernova.evaluation import (explosion_centre, mean_shell_radius, periodic_offsets,
                                         shell_mask, shell_radii)

#: R ∝ t^(2/5): the Sedov-Taylor blast radius against time.
SEDOV_TAYLOR_EXPONENT = 0.4


class Persistence:
    """Every forecast frame is the last context frame."""

    name = "persistence"

    def forecast(self, context, n_frames):
        context = np.asarray(context, dtype=np.float32)
        return np.repeat(context[:, -1:], int(n_frames), axis=1)


def measured_radius(frame, initial, threshold=0.1):
    """Mean shell radius (voxels) of ``frame`` (X, Y, Z): the sector mean of
    :func:`tfastro.supernova.evaluation.shell_radii` about the explosion centre found from the
    change since ``initial`` (periodic); NaN without a shell."""
    centre = explosion_centre(np.stack([initial, frame]), threshold, first_frames=1)
    return mean_shell_radius(shell_radii(frame, initial, centre, threshold))


def sedov_taylor_rescale(frame, initial, scale, threshold=0.1):
    """``frame`` (X, Y, Z, C) with its blast stretched by ``scale`` about its centre.

    The blast region (:func:`tfastro.supernova.evaluation.shell_mask` of the densities summed
    over channels, about its periodic centre) and the gas within it are remapped radially: the
    voxel at offset d from the explosion centre takes the (trilinearly interpolated, periodic)
    value at d / scale where that point lies in the region; elsewhere the gas is the ambient
    gas of ``frame``. Returns float32 (X, Y, Z, C).
    """
    frame = np.asarray(frame, dtype=np.float32)
    density, before = frame.sum(axis=-1), np.asarray(initial).sum(axis=-1)
    region = shell_mask(density, before, threshold)
    if not region.any():
        return frame.copy()
    centre = explosion_centre(np.stack([before, density]), threshold, first_frames=1)
    source = np.reshape(centre, (3, 1, 1, 1)) + periodic_offsets(region.shape, centre) / scale
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
