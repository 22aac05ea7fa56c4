"""Supernova shells and the scores of 3D-MIM forecasts.

Supernova-shell geometry: the Sedov-Taylor law and shell masks/radii on density cubes.

Convention (Hirashima et al. 2023): the *shell* is where the density rose by more
than ``threshold`` (10 per cent) above the density before the explosion.

Scores for 3-D spatio-temporal forecasts (3D-MIM supernova-shell runs).

Shapes and units
----------------
* Frame arrays are ``(B, X, Y, Z, C)``: a batch of B cubes with C channels. Values are the
  normalised fields of the data file, in [0, 1] (dimensionless). Every frame metric returns
  one number per sample, an array of shape ``(B,)``.
* Forecast arrays given to :class:`ForecastScores` are ``(B, T_out, X, Y, Z, C)``; the clip's
  first (pre-explosion) frame is ``(B, X, Y, Z, C)``.
* Shell radii and their errors are in voxel units (distance from the grid centre).

Conventions (those of the original 3D-MIM test loop, where it had one)
----------------------------------------------------------------------
* ``frame_mse``: SUM of squared errors over all voxels and channels of a sample, with the
  prediction clipped to [0, 1] first.
* ``frame_mae``: MEAN absolute error over voxels and channels, prediction NOT clipped; this is
  ``tfastro.fields.image_metrics.mae``.
* ``frame_psnr``: both frames clipped to [0, 1] and cast as ``np.uint8(x * 255)`` (truncation,
  as the original did), then ``image_metrics.psnr`` with data_range 255, i.e.
  ``20 log10(255) - 10 log10(MSE)`` with the MSE a mean over voxels and channels. Identical
  uint8 frames have MSE 0 and get ``+inf`` (no warning).
* SSIM (the original imported it but never computed it): ``image_metrics.ssim3d`` with
  data_range 1 on the clipped prediction, i.e. Wang et al. (2004) SSIM with an 11-voxel
  Gaussian window of sigma 1.5 voxels, K1 = 0.01, K2 = 0.03, valid positions only; cubes
  smaller than 11 voxels a side use the largest odd window that fits (7^3 for 8^3 cubes).
"""
import numpy as np

from tfastro.fields.image_metrics import mae, psnr, ssim3d

def shell_mask(frame, initial, threshold=0.1):
    """Boolean mask of voxels whose density exceeds ``initial`` by more than ``threshold``.

    Args:
      frame, initial: arrays of the same shape (e.g. (X, Y, Z) or (B, X, Y, Z, C)),
        densities after and before the explosion.
    """
    frame = np.asarray(frame)
    initial = np.asarray(initial)
    return frame > (1.0 + threshold) * initial


def shell_radius(mask, center=None, voxel_size=1.0):
    """Mean distance of the masked voxels from ``center`` (default: the grid centre).

    Args:
      mask: boolean array (X, Y, Z).
      center: (3,) position in voxel units, voxel i sitting at coordinate i.
      voxel_size: length of one voxel, the unit of the result.
    Returns:
      the mean radius in units of ``voxel_size``; NaN for an empty mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"shell_radius: mask must be 3-D (X, Y, Z), got shape {mask.shape}")
    if center is None:
        center = (np.asarray(mask.shape) - 1) / 2.0
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return float("nan")
    r = np.linalg.norm(idx - np.asarray(center, dtype=np.float64), axis=1)
    return float(r.mean() * voxel_size)


def mask_iou(mask_a, mask_b):
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    a = np.asarray(mask_a, dtype=bool)
    b = np.asarray(mask_b, dtype=bool)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


__all__ = ["shell_mask", "shell_radius", "mask_iou", "frame_mse", "frame_mae", "frame_psnr", "ForecastScores"]


_METRICS = ("mse", "mae", "psnr", "ssim", "shell_iou", "shell_radius_error")


def _pair(pred, true):
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred shape {pred.shape} differs from true shape {true.shape}")
    if pred.ndim < 2:
        raise ValueError(f"expected (B, X, Y, Z, C) arrays, got shape {pred.shape}")
    return pred, true


def _per_sample_axes(x):
    return tuple(range(1, x.ndim))


def frame_mse(pred, true):
    """Per-sample sum of squared errors, prediction clipped to [0, 1]; shape (B,)."""
    pred, true = _pair(pred, true)
    return np.square(true - np.clip(pred, 0.0, 1.0)).sum(axis=_per_sample_axes(pred))


#: Per-sample mean absolute error, prediction not clipped; shape (B,).
frame_mae = mae


def frame_psnr(pred, true):
    """Per-sample PSNR in dB of the uint8-scaled frames; shape (B,), ``+inf`` where identical."""
    pred, true = _pair(pred, true)
    pred8 = np.uint8(np.clip(pred, 0.0, 1.0) * 255)
    true8 = np.uint8(np.clip(true, 0.0, 1.0) * 255)
    return psnr(pred8, true8, data_range=255.0)


class ForecastScores:
    """Accumulates per-output-frame scores over every sample of every batch.

    Each output frame t gets, averaged over all samples seen: ``mse``, ``mae``, ``psnr``, ``ssim``
    (see the module docstring; all but ``mae`` use the prediction clipped to [0, 1]), ``shell_iou``
    (intersection over union of the predicted and true shell masks) and ``shell_radius_error``
    (|r_pred - r_true| in voxels, r the mean distance of the shell voxels from the grid centre).
    A shell mask is where the density exceeds ``(1 + threshold)`` times the clip's first frame;
    the density is the sum over channels, or channel ``density_channel`` when given.

    Samples are skipped, and counted, only where a mean is undefined: PSNR of identical frames
    (``+inf``) and the radius error when either mask is empty (radius NaN).
    """

    def __init__(self, output_length, threshold=0.1, density_channel=None):
        self.output_length = int(output_length)
        self.threshold = float(threshold)
        self.density_channel = density_channel
        self.clips = 0
        self._sum = {k: np.zeros(self.output_length) for k in _METRICS}
        self._count = {k: np.zeros(self.output_length, dtype=np.int64) for k in _METRICS}

    def _density(self, x):
        if self.density_channel is None:
            return x.sum(axis=-1)
        return x[..., self.density_channel]

    def _add(self, name, t, values):
        """Adds per-sample values; PSNR and radius error leave out non-finite ones (see class)."""
        values = np.asarray(values, dtype=np.float64)
        if name in ("psnr", "shell_radius_error"):
            values = values[np.isfinite(values)]
        self._sum[name][t] += values.sum()
        self._count[name][t] += values.size

    def update(self, true, pred, initial):
        """Scores one batch.

        Args:
          true, pred: (B, T_out, X, Y, Z, C) ground truth and forecast of the output frames.
          initial: (B, X, Y, Z, C), the clip's first frame (density before the explosion).
        """
        true = np.asarray(true, dtype=np.float64)
        pred = np.asarray(pred, dtype=np.float64)
        initial = np.asarray(initial, dtype=np.float64)
        if true.shape != pred.shape or true.ndim != 6:
            raise ValueError(
                f"true and pred must share a (B, T_out, X, Y, Z, C) shape, got {true.shape} "
                f"and {pred.shape}")
        if true.shape[1] != self.output_length:
            raise ValueError(
                f"expected {self.output_length} output frames, got {true.shape[1]}")
        if initial.shape != true.shape[:1] + true.shape[2:]:
            raise ValueError(
                f"initial must have shape (B, X, Y, Z, C) = {true.shape[:1] + true.shape[2:]}, "
                f"got {initial.shape}")
        pred_clipped = np.clip(pred, 0.0, 1.0)
        dens_initial = self._density(initial)
        for t in range(self.output_length):
            y, p, pc = true[:, t], pred[:, t], pred_clipped[:, t]
            self._add("mse", t, frame_mse(pc, y))
            self._add("mae", t, frame_mae(p, y))
            self._add("psnr", t, frame_psnr(pc, y))
            self._add("ssim", t, ssim3d(pc, y))
            mask_true = shell_mask(self._density(y), dens_initial, self.threshold)
            mask_pred = shell_mask(self._density(pc), dens_initial, self.threshold)
            self._add("shell_iou", t, [mask_iou(a, b) for a, b in zip(mask_pred, mask_true)])
            self._add("shell_radius_error", t,
                      [abs(shell_radius(a) - shell_radius(b)) for a, b in zip(mask_pred, mask_true)])
        self.clips += true.shape[0]

    def result(self):
        """JSON-serialisable summary.

        Returns a dict with ``clips`` (samples scored), ``output_length``, ``threshold``,
        ``per_frame`` (metric -> list of per-frame means), ``mean`` (metric -> mean over every
        scored (sample, frame) pair), ``psnr_infinite`` (per frame, identical frames left out of
        the PSNR means) and ``radius_skipped`` (per frame, samples with an empty shell mask).
        A mean over nothing is ``None``.
        """
        def ratio(total, count):
            return float(total / count) if count else None

        per_frame = {k: [ratio(s, c) for s, c in zip(self._sum[k], self._count[k])]
                     for k in _METRICS}
        mean = {k: ratio(self._sum[k].sum(), self._count[k].sum()) for k in _METRICS}
        return {
            "clips": self.clips,
            "output_length": self.output_length,
            "threshold": self.threshold,
            "per_frame": per_frame,
            "mean": mean,
            "psnr_infinite": [int(self.clips - c) for c in self._count["psnr"]],
            "radius_skipped": [int(self.clips - c) for c in self._count["shell_radius_error"]],
        }

    def format_table(self):
        """Human-readable table: one row per output frame and a final row of overall means."""
        res = self.result()
        header = f"{'frame':>5} {'mse':>11} {'mae':>9} {'psnr':>8} {'ssim':>7} {'iou':>7} {'dr':>7}"
        widths = (11, 9, 8, 7, 7, 7)
        formats = (".4g", ".5f", ".3f", ".4f", ".4f", ".3f")

        def row(label, values):
            cells = [f"{'-':>{w}}" if v is None else f"{v:>{w}{f}}"
                     for v, w, f in zip(values, widths, formats)]
            return f"{label:>5} " + " ".join(cells)

        lines = [f"{res['clips']} clips scored; dr = shell radius error in voxels", header]
        for t in range(self.output_length):
            lines.append(row(str(t + 1), [res["per_frame"][k][t] for k in _METRICS]))
        lines.append(row("mean", [res["mean"][k] for k in _METRICS]))
        return "\n".join(lines)
