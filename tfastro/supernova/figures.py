"""Pictures of 3-D forecast clips: central cross-sections (PNG) and truth-vs-forecast GIFs.

Shapes: a clip is ``(T, X, Y, Z, C)`` (frames, grid, channels) of fields normalised to [0, 1].
Slices are taken through the middle of the actual grid (index ``n // 2`` along the cut axis,
z by default), so any grid size works. Figures are built on matplotlib's Agg canvas directly,
without pyplot, so no global figure state is created or left behind.
"""
import os

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from tfastro.core.atomic import write_atomically

__all__ = ["central_slice", "save_cross_sections", "save_forecast_gif"]


def central_slice(clip, axis=2, channel=0):
    """The plane through the grid middle of every frame of a (T, X, Y, Z, C) clip.

    Args:
      clip: array (T, X, Y, Z, C).
      axis: spatial axis cut (0 = x, 1 = y, 2 = z), at index ``shape // 2``.
      channel: channel shown.
    Returns:
      array (T, A, B): the two remaining spatial axes in their original order.
    """
    clip = np.asarray(clip)
    if clip.ndim != 5:
        raise ValueError(f"expected a (T, X, Y, Z, C) clip, got shape {clip.shape}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    cube = clip[..., channel]
    return np.take(cube, cube.shape[axis + 1] // 2, axis=axis + 1)


def _to_uint8(x):
    return np.uint8(np.clip(x, 0.0, 1.0) * 255)


def save_cross_sections(clip_true, clip_pred, out_dir, axis=2, channel=0):
    """Writes the central slices of a clip as 8-bit greyscale PNGs, one pixel per voxel.

    Names follow the original 3D-MIM test loop: ``gt<i>.png`` for every frame of the true clip,
    i = 1..T, and ``pd<i>.png`` for the forecast, whose frames are taken to be the last T_pred
    frames of the clip (i = T - T_pred + 1..T). Values are clipped to [0, 1] and scaled by 255.

    Args:
      clip_true: (T, X, Y, Z, C) the whole clip (input and output frames).
      clip_pred: (T_pred, X, Y, Z, C) the forecast, T_pred <= T.
      out_dir: folder, created if missing.
      axis, channel: as in :func:`central_slice`.
    Returns:
      list of the paths written.
    """
    true_slices = central_slice(clip_true, axis, channel)
    pred_slices = central_slice(clip_pred, axis, channel)
    n_true, n_pred = len(true_slices), len(pred_slices)
    if n_pred > n_true or true_slices.shape[1:] != pred_slices.shape[1:]:
        raise ValueError(
            f"forecast {np.shape(clip_pred)} does not fit inside clip {np.shape(clip_true)}")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for prefix, slices, first in (("gt", true_slices, 1), ("pd", pred_slices, n_true - n_pred + 1)):
        for i, plane in enumerate(slices):
            path = os.path.join(out_dir, f"{prefix}{first + i}.png")
            image = Image.fromarray(_to_uint8(plane))
            write_atomically(path, lambda partial, image=image: image.save(partial, format="PNG"))
            paths.append(path)
    return paths


def save_forecast_gif(true_frames, pred_frames, path, fps=4, axis=2, channel=0,
                      vmin=None, vmax=None, cmap="viridis"):
    """Animated GIF of the central slice: truth (left) beside forecast (right), one frame each.

    Args:
      true_frames, pred_frames: (T, X, Y, Z, C) arrays of the same shape.
      path: output ``.gif`` file (its folder is created if missing).
      fps: frames per second.
      axis, channel: as in :func:`central_slice`.
      vmin, vmax: colour limits shared by both panels; default the min and max over both
        slice stacks.
      cmap: matplotlib colour map.
    Returns:
      ``path``.
    """
    truth = central_slice(true_frames, axis, channel)
    pred = central_slice(pred_frames, axis, channel)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {np.shape(true_frames)} and forecast {np.shape(pred_frames)} "
                         "must have the same shape")
    vmin = float(min(truth.min(), pred.min())) if vmin is None else vmin
    vmax = float(max(truth.max(), pred.max())) if vmax is None else vmax
    n_frames = len(truth)

    fig = Figure(figsize=(6.0, 2.8), dpi=80)
    FigureCanvasAgg(fig)
    ax_true, ax_pred = fig.subplots(1, 2)
    images = []
    for ax, stack, label in ((ax_true, truth, "truth"), (ax_pred, pred, "forecast")):
        # Transposed so the first remaining grid axis runs horizontally.
        images.append(ax.imshow(stack[0].T, origin="lower", vmin=vmin, vmax=vmax, cmap=cmap))
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(images[1], ax=[ax_true, ax_pred], shrink=0.8)
    title = fig.suptitle("")

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(partial):
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, partial, dpi=fig.dpi):
            for t in range(n_frames):
                images[0].set_data(truth[t].T)
                images[1].set_data(pred[t].T)
                title.set_text(f"frame {t + 1}/{n_frames}")
                writer.grab_frame()
    return write_atomically(path, write)
