"""Pictures of the turbulence classifier's scores and of what it looks at.

Inputs are the outputs of :mod:`tfastro.turbulence.evaluation` and
:mod:`tfastro.turbulence.evaluation`. Images are ``(N, H, W, C)`` tiles (channel ``channel``
shown in grey, colour limits [0, 1] as the equalised tiles) and maps ``(N, H, W)``, drawn as
arrays print: pixel [0, 0] at the top left. Class names default to "class 0", "class 1", ...
(pass ``tfastro.turbulence.io.CLASS_LABELS`` for the turbulence classes). As in
:mod:`tfastro.core.figures`: an Agg Figure without pyplot state; with ``path`` a PNG is written
there (folders created) at ``dpi`` and the path returned, without it the Figure is returned.
Sizes in inches: the confusion matrix ``CONFUSION_SIZE``; image grids ``panel_size`` per
image and row (two rows); the blur sweep ``PLOT_PANEL``; the spectra ``PLOT_PANEL[0]`` wide and
``1.5 PLOT_PANEL[1]`` high.
"""
import numpy as np
from matplotlib.ticker import NullFormatter

from tfastro.core.figures import PLOT_PANEL, agg_figure, figure_or_png
from tfastro.turbulence.evaluation import SALIENCY_LEVEL, gaussian_transfer

__all__ = ["CONFUSION_SIZE", "plot_confusion_matrix", "plot_saliency", "plot_occlusion",
           "plot_blur_sweep", "plot_blurred_spectra", "plot_mapping"]


#: (width, height) in inches of the confusion-matrix figure.
CONFUSION_SIZE = (5.5, 4.5)


#: Lower limit of the spectra plot, relative to the highest power: float32 FFT round-off of
#: strongly blurred images lies below.
_POWER_FLOOR = 1e-10


def _names(class_names, n_classes):
    if class_names is None:
        return [f"class {c}" for c in range(n_classes)]
    if len(class_names) != n_classes:
        raise ValueError(f"class_names: expected {n_classes} names, got {len(class_names)}")
    return list(class_names)


def plot_confusion_matrix(matrix, class_names=None, path=None, title=None, dpi=100):
    """Confusion matrix (rows: true class, columns: predicted class), each cell annotated.

    Args:
      matrix: ``(K, K)`` matrix, e.g. ``confusion_matrix(..., normalise="row")`` (colour scale
        [0, 1]; counts use [0, max], annotated as integers).
      class_names: K names (tick labels).
      path, dpi: PNG file and resolution, or path None to return the Figure.
      title: figure title (optional).
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix: expected a square (K, K) matrix, got shape {matrix.shape}")
    names = _names(class_names, len(matrix))
    counts = np.issubdtype(matrix.dtype, np.integer)
    vmax = max(matrix.max(), 1) if counts else 1.0
    fig = agg_figure(*CONFUSION_SIZE)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, f"{value:d}" if counts else f"{value:.2f}", ha="center",
                va="center", fontsize="small",
                color="white" if value > 0.5 * vmax else "black")
    ticks = np.arange(len(matrix))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(image, ax=ax, label="count" if counts else "fraction of the true class")
    return figure_or_png(fig, path, dpi)


def _checked_pairs(images, maps, titles, channel):
    """Image channel ``(N, H, W)`` and maps ``(N, H, W)`` of matching shapes."""
    images, maps = np.asarray(images), np.asarray(maps, dtype=np.float64)
    if images.ndim != 4 or len(images) == 0 or maps.shape != images.shape[:3]:
        raise ValueError(f"maps: expected (N, H, W) maps of N > 0 (N, H, W, C) images, got "
                         f"{maps.shape} and {images.shape}")
    if not 0 <= channel < images.shape[-1]:
        raise ValueError(f"channel={channel}: images have {images.shape[-1]} channels")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles: expected {len(images)} titles, got {len(titles)}")
    return images[..., channel], maps


def _image_grid(images, titles, panel_size):
    """Figure with 2 rows x N columns of axes; row 0 shows the images in grey."""
    fig = agg_figure(panel_size * len(images), panel_size * 2)
    axes = fig.subplots(2, len(images), squeeze=False)
    for n, image in enumerate(images):
        axes[0, n].imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        if titles is not None:
            axes[0, n].set_title(titles[n], fontsize="small")
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    return fig, axes


def plot_saliency(images, saliency, titles=None, level=SALIENCY_LEVEL, path=None, channel=0,
                  panel_size=2.0, dpi=100):
    """Images (top row) and, below each, the image with its saliency map overlaid and the
    contour at ``level`` of the map's maximum.

    Args:
      images: ``(N, H, W, C)`` tiles in [0, 1].
      saliency: ``(N, H, W)`` maps from :func:`tfastro.turbulence.evaluation.saliency_maps`.
      titles: N titles (e.g. true and explained class), optional.
      level: contour level as a fraction of each map's maximum.
      path, dpi: as in :func:`plot_confusion_matrix`.
      channel: the image channel shown.
      panel_size: inches per image: the figure is ``N panel_size`` wide, ``2 panel_size`` high.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    images, saliency = _checked_pairs(images, saliency, titles, channel)
    fig, axes = _image_grid(images, titles, panel_size)
    for n, (image, heat) in enumerate(zip(images, saliency)):
        ax = axes[1, n]
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        overlay = ax.imshow(heat, cmap="inferno", vmin=0.0, vmax=1.0, alpha=0.6,
                            interpolation="nearest")
        if heat.max() > 0:
            ax.contour(heat, levels=[level * heat.max()], colors="cyan", linewidths=1.0)
    fig.colorbar(overlay, ax=axes[1, :], location="bottom", shrink=0.8,
                 label=f"saliency (contour at {level:g} of the maximum)")
    return figure_or_png(fig, path, dpi)


def plot_occlusion(images, occlusion, titles=None, path=None, channel=0, score="P(class)",
                   panel_size=2.0, dpi=100):
    """Images (top row) and their occlusion maps (bottom row, red where occluding lowers the
    class score), on a colour scale symmetric about 0 shared by all maps.

    Args:
      images: ``(N, H, W, C)`` tiles in [0, 1].
      occlusion: ``(N, H, W)`` maps from :func:`tfastro.turbulence.evaluation.occlusion_maps`.
      titles, path, channel, panel_size, dpi: as in :func:`plot_saliency`.
      score: name of the score in the colour-bar label.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    images, occlusion = _checked_pairs(images, occlusion, titles, channel)
    limit = max(np.abs(occlusion).max(), 1e-12)
    fig, axes = _image_grid(images, titles, panel_size)
    for ax, drop in zip(axes[1], occlusion):
        picture = ax.imshow(drop, cmap="RdBu_r", vmin=-limit, vmax=limit,
                            interpolation="nearest")
    fig.colorbar(picture, ax=axes[1, :], location="bottom", shrink=0.8,
                 label=f"drop in {score} when occluded")
    return figure_or_png(fig, path, dpi)


def plot_blur_sweep(summary, class_index=2, class_names=None, path=None, dpi=100):
    """Mean probability of one class against the blur width, one line per true class.

    Args:
      summary: the dict of :func:`tfastro.turbulence.evaluation.blur_summary`.
      class_index: the class whose probability is plotted (default 2, the fiducial CR
        diffusion class of the turbulence data).
      class_names: names of the classes (legend and axis label).
      path, dpi: as in :func:`plot_confusion_matrix`; the figure is ``PLOT_PANEL``.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    sigmas = np.asarray(summary["sigmas"], dtype=np.float64)
    means = summary["mean_probability"]
    n_classes = len(summary["support"])
    if not 0 <= class_index < n_classes:
        raise ValueError(f"class_index={class_index}: expected a class in [0, {n_classes})")
    names = _names(class_names, n_classes)
    fig = agg_figure(*PLOT_PANEL)
    ax = fig.subplots()
    for true_class, name in enumerate(names):
        if means[0][true_class] is None:
            continue  # no images of this class
        curve = [means[s][true_class][class_index] for s in range(len(sigmas))]
        ax.plot(sigmas, curve, marker="o", label=f"true {name}")
    ax.set(xlabel=r"Gaussian blur $\sigma$ [px]", ylabel=f"mean P({names[class_index]})",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize="x-small")
    return figure_or_png(fig, path, dpi)


def plot_blurred_spectra(k, spectra, sigmas, path=None, dpi=100):
    """Mean power spectra of the blurred images (top) and their ratio to the first (unblurred)
    one, with the Gaussian power transfer exp(-k^2 (sigma^2 - sigma_0^2)) dashed (bottom).

    Args:
      k: ``(nbins,)`` wavenumbers in rad/px; spectra: ``(len(sigmas), nbins)`` in px^2, as
        returned by :func:`tfastro.turbulence.evaluation.blurred_spectra`, ``spectra[0]`` the
        reference for the ratios (normally sigma = 0).
      sigmas: blur widths in px.
      path, dpi: as in :func:`plot_confusion_matrix`.
    The power axis stops 10 decades below the highest power (float32 round-off beneath).
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    k, spectra = np.asarray(k, dtype=np.float64), np.asarray(spectra, dtype=np.float64)
    if spectra.shape != (len(sigmas), len(k)):
        raise ValueError(f"spectra: expected shape ({len(sigmas)}, {len(k)}), got "
                         f"{spectra.shape}")
    fig = agg_figure(PLOT_PANEL[0], PLOT_PANEL[1] * 1.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    colours = [f"C{i}" for i in range(len(sigmas))]
    for sigma, power, colour in zip(sigmas, spectra, colours):
        top.plot(k, power, color=colour, label=rf"$\sigma$ = {sigma:g} px")
        bottom.plot(k, power / spectra[0], color=colour)
        extra_blur = np.sqrt(max(sigma**2 - sigmas[0] ** 2, 0.0))  # Gaussians compose
        bottom.plot(k, gaussian_transfer(k, extra_blur) ** 2, color=colour, linestyle="--",
                    linewidth=0.8)
    top.set(xscale="log", yscale="log", ylabel=r"$P(k)$ [px$^2$]",
            ylim=(_POWER_FLOOR * spectra.max(), 2.0 * spectra.max()))
    top.legend(fontsize="x-small")
    bottom.set(yscale="log", ylim=(1e-6, 2.0), xlabel=r"$k$ [rad px$^{-1}$]",
               ylabel="ratio to first")
    bottom.xaxis.set_minor_formatter(NullFormatter())  # a narrow k range labels minor ticks
    return figure_or_png(fig, path, dpi)


def plot_mapping(inputs, targets, predicted, input_name="input", target_name="target", path=None,
                 panel_size=2.0, dpi=100):
    """U-net tiles: input field (top row), true target (middle), predicted target (bottom).

    Args:
      inputs, targets, predicted: ``(N, H, W, 1)`` tiles in [0, 1] (scaled log fields).
      input_name, target_name: the fields' names (row labels).
      path, dpi: as in :func:`plot_confusion_matrix`.
      panel_size: inches per tile.
    Returns:
      ``path``, or the Figure when ``path`` is None.
    """
    rows = [np.asarray(a)[..., 0] for a in (inputs, targets, predicted)]
    if not (rows[0].ndim == 3 and len(rows[0]) > 0 and
            rows[0].shape == rows[1].shape == rows[2].shape):
        raise ValueError("inputs, targets, predicted: expected (N, H, W, 1) tiles of one shape, "
                         f"got {[np.shape(a) for a in (inputs, targets, predicted)]}")
    fig = agg_figure(panel_size * len(rows[0]), panel_size * 3)
    axes = fig.subplots(3, len(rows[0]), squeeze=False)
    labels = (input_name, f"{target_name} (true)", f"{target_name} (U-net)")
    for r, (tiles, label) in enumerate(zip(rows, labels)):
        for n, tile in enumerate(tiles):
            axes[r, n].imshow(tile, cmap="viridis" if r else "gray", vmin=0.0, vmax=1.0,
                              interpolation="nearest")
            axes[r, n].set(xticks=[], yticks=[])
        axes[r, 0].set_ylabel(label, fontsize="small")
    return figure_or_png(fig, path, dpi)
