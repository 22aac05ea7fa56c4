"""Supernova shells, the scores of 3D-MIM forecasts and the gas particles they flag.

Shells (Hirashima et al. 2023): a supernova *affects* the gas where its density changes by more
than ``threshold`` (10 per cent) from the density before the explosion, up in the swept-up shell
and down in the rarefied interior; :func:`shell_mask` marks those voxels. The explosion centre is
given or found from the first frames (:func:`explosion_centre`, periodic); distances are periodic
(nearest image); the shell radius is measured in six sectors around the axes (+x, -x, +y, -y, +z,
-z; :func:`shell_radii`) and their mean is the mean radius (:func:`mean_shell_radius`).

Scores for 3-D spatio-temporal forecasts (3D-MIM supernova-shell runs).

Shapes and units
----------------
* Frame arrays are ``(B, X, Y, Z, C)``: a batch of B cubes with C channels. Values are the
  normalised fields of the data file, in [0, 1] (dimensionless). Every frame metric returns
  one number per sample, an array of shape ``(B,)``.
* Forecast arrays given to :class:`ForecastScores` are ``(B, T_out, X, Y, Z, C)``; the clip's
  first (pre-explosion) frame is ``(B, X, Y, Z, C)``.
* Centres, shell radii and their errors are in voxel units, voxel i at coordinate i.

Conventions (those of the original 3D-MIM test loop, where it had one)
----------------------------------------------------------------------
* ``frame_mse`` (``mse_sum_per_frame`` in metrics.json, also under its old key ``mse``): SUM
  of squared errors over all voxels and channels of a sample, with the prediction clipped to
  [0, 1] first. ``frame_mse_per_voxel`` (``mse_per_voxel``) is the same divided by the number
  of voxels and channels.
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
from scipy import ndimage

from tfastro.core.errors import UserInputError
from tfastro.fields.image_metrics import mae, psnr, ssim3d

#: The six sectors of :func:`shell_radii`, in order.
SECTORS = ("+x", "-x", "+y", "-y", "+z", "-z")


def shell_mask(frame, initial, threshold=0.1):
    """Boolean mask of voxels whose density differs from ``initial`` by more than
    ``threshold`` times ``initial``: the swept-up shell and the rarefied interior.

    Args:
      frame, initial: arrays of the same shape (e.g. (X, Y, Z) or (B, X, Y, Z, C)),
        densities after and before the explosion.
    """
    frame = np.asarray(frame)
    initial = np.asarray(initial)
    return (frame > (1.0 + threshold) * initial) | (frame < (1.0 - threshold) * initial)


def swept_shell_mask(frame, initial, threshold=0.1):
    """Boolean mask of the swept-up shell: voxels whose density exceeds ``initial`` by more
    than ``threshold`` times ``initial`` (the rising part of :func:`shell_mask`)."""
    return np.asarray(frame) > (1.0 + threshold) * np.asarray(initial)


def periodic_offsets(shape, centre, periodic=True):
    """Displacement of every voxel from ``centre``: float64 ``(3, X, Y, Z)`` in voxels.

    Args:
      shape: (X, Y, Z); centre: (3,) in voxel units, voxel i at coordinate i.
      periodic: take the nearest periodic image (components in [-N/2, N/2)).
    """
    d = np.indices(shape, dtype=np.float64)
    d -= np.reshape(np.asarray(centre, np.float64), (3, 1, 1, 1))
    if periodic:
        n = np.reshape(np.asarray(shape, np.float64), (3, 1, 1, 1))
        d -= n * np.floor(d / n + 0.5)
    return d


def explosion_centre(frames, threshold=0.1, first_frames=3):
    """Explosion centre from the first frames after it, on a periodic grid.

    Each axis' coordinate is the circular mean (angle 2 pi i / N of voxel i) of the voxels
    weighted by their density change ``|frame - frames[0]|`` where it exceeds ``threshold``,
    summed over frames 1 .. ``first_frames``; a shell straddling the box edge is found whole.

    Args:
      frames: ``(T, X, Y, Z)`` densities, frame 0 before the explosion, T >= 2.
    Returns:
      float64 ``(3,)`` in voxel units, in [0, N); NaN where no voxel changed.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 4 or len(frames) < 2:
        raise UserInputError(f"explosion_centre: frames must be (T, X, Y, Z) with T >= 2, "
                             f"got shape {frames.shape}")
    change = np.abs(frames[1:first_frames + 1] - frames[0])
    weight = np.where(shell_mask(frames[1:first_frames + 1], frames[0], threshold),
                      change, 0.0).sum(axis=0)
    centre = np.full(3, np.nan)
    if not weight.any():
        return centre
    for axis, n in enumerate(weight.shape):
        profile = weight.sum(axis=tuple(a for a in range(3) if a != axis))
        angle = 2.0 * np.pi * np.arange(n) / n
        mean = np.arctan2((profile * np.sin(angle)).sum(), (profile * np.cos(angle)).sum())
        centre[axis] = (mean * n / (2.0 * np.pi)) % n % n  # -0.0 % n rounds to n
    return centre


def _sector_shares(d):
    """Share (6, X, Y, Z) of every voxel in each sector of :data:`SECTORS`: the axis of its
    largest offset component, by sign; ties are split equally."""
    a = np.abs(d)
    ties = a == a.max(axis=0)
    ties = ties / ties.sum(axis=0)
    plus = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
    return np.stack([ties[k] * side for k in range(3) for side in (plus[k], 1.0 - plus[k])])


def shell_radii(frame, initial, centre=None, threshold=0.1, periodic=True, voxel_size=1.0):
    """Shell radius in each of the six sectors around the axes (:data:`SECTORS`).

    A sector's radius is the mean distance from ``centre`` of the shell's excess density
    ``frame - initial`` over the voxels where it rose by more than ``threshold``: the radius of
    the swept-up shell, just behind the shock. For a self-similar blast it is a fixed fraction
    of the shock radius, so it grows as the shock does (R ∝ t^(2/5) in the Sedov-Taylor phase).

    Args:
      frame, initial: ``(X, Y, Z)`` densities after and before the explosion.
      centre: (3,) explosion centre in voxels (default: the grid centre).
      periodic: distances to the nearest periodic image.
      voxel_size: length of one voxel, the unit of the result.
    Returns:
      float64 ``(6,)``; NaN for a sector without shell voxels.
    """
    frame = np.asarray(frame, dtype=np.float64)
    initial = np.asarray(initial, dtype=np.float64)
    if frame.ndim != 3 or frame.shape != initial.shape:
        raise UserInputError(f"shell_radii: frame and initial must be (X, Y, Z) of one shape, "
                             f"got {frame.shape} and {initial.shape}")
    if centre is None:
        centre = (np.asarray(frame.shape) - 1) / 2.0
    if not np.isfinite(centre).all():
        return np.full(6, np.nan)
    d = periodic_offsets(frame.shape, centre, periodic)
    excess = np.where(swept_shell_mask(frame, initial, threshold), frame - initial, 0.0)
    weight = _sector_shares(d) * excess
    total = weight.sum(axis=(1, 2, 3))
    moment = (weight * np.sqrt((d**2).sum(axis=0))).sum(axis=(1, 2, 3))
    return np.divide(moment, total, out=np.full(6, np.nan), where=total > 0) * voxel_size


def mean_shell_radius(radii):
    """Mean of the sector radii of :func:`shell_radii` (equal solid angles); NaN if any is."""
    return float(np.mean(radii))


def shell_radius(mask, center=None, voxel_size=1.0, periodic=False):
    """Mean distance of the masked voxels from ``center`` (default: the grid centre).

    Args:
      mask: boolean array (X, Y, Z).
      center: (3,) position in voxel units, voxel i sitting at coordinate i.
      voxel_size: length of one voxel, the unit of the result.
      periodic: distances to the nearest periodic image.
    Returns:
      the mean radius in units of ``voxel_size``; NaN for an empty mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"shell_radius: mask must be 3-D (X, Y, Z), got shape {mask.shape}")
    if center is None:
        center = (np.asarray(mask.shape) - 1) / 2.0
    if not mask.any():
        return float("nan")
    r = np.sqrt((periodic_offsets(mask.shape, center, periodic) ** 2).sum(axis=0))
    return float(r[mask].mean() * voxel_size)


def mask_iou(mask_a, mask_b):
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    a = np.asarray(mask_a, dtype=bool)
    b = np.asarray(mask_b, dtype=bool)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


__all__ = ["SECTORS", "shell_mask", "swept_shell_mask", "periodic_offsets", "explosion_centre",
           "shell_radii", "mean_shell_radius", "shell_radius", "mask_iou", "frame_mse",
           "frame_mse_per_voxel", "frame_mae", "frame_psnr", "ForecastScores",
           "affected_particles"]


_METRICS = ("mse_sum_per_frame", "mse_per_voxel", "mae", "psnr", "ssim", "shell_iou",
            "shell_radius_true", "shell_radius_pred", "shell_radius_error",
            "sector_radius_error")
_RADII = ("shell_radius_true", "shell_radius_pred", "shell_radius_error", "sector_radius_error")
#: Keys of metrics.json written before the metrics were renamed, and the metric they hold.
OLD_NAMES = {"mse": "mse_sum_per_frame"}


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


def frame_mse_per_voxel(pred, true):
    """Per-sample mean of squared errors over voxels and channels, prediction clipped to
    [0, 1]: :func:`frame_mse` over the voxel count; shape (B,)."""
    pred, true = _pair(pred, true)
    return frame_mse(pred, true) / np.prod(pred.shape[1:])


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

    Each output frame t gets, averaged over all samples seen: ``mse_sum_per_frame`` (the
    original's per-frame sum of squares, also under its old key ``mse``), ``mse_per_voxel``,
    ``mae``, ``psnr``, ``ssim`` (see the module docstring; all but ``mae`` use the prediction
    clipped to [0, 1]), ``shell_iou`` (intersection over union of the predicted and true shell
    masks), ``shell_radius_true`` and ``shell_radius_pred`` (mean shell radius in voxels,
    :func:`shell_radii` around the explosion centre), ``shell_radius_error`` (|r_pred - r_true|
    of the mean radii) and ``sector_radius_error`` (|r_pred - r_true| averaged over the six
    sectors: the error in the shape). A shell mask is where the density differs from the clip's
    first frame by more than ``threshold`` of it; the density is the sum over channels, or
    channel ``density_channel`` when given. The explosion centre of a sample is given to
    :meth:`update` or found from its first frame and true frames (:func:`explosion_centre`).

    Samples are skipped, and counted, only where a mean is undefined: PSNR of identical frames
    (``+inf``) and the radii when either shell is empty (radius NaN).
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
        """Adds per-sample values; PSNR and the radii leave out non-finite ones (see class)."""
        values = np.asarray(values, dtype=np.float64)
        if name == "psnr" or name in _RADII:
            values = values[np.isfinite(values)]
        self._sum[name][t] += values.sum()
        self._count[name][t] += values.size

    def update(self, true, pred, initial, centre=None):
        """Scores one batch.

        Args:
          true, pred: (B, T_out, X, Y, Z, C) ground truth and forecast of the output frames.
          initial: (B, X, Y, Z, C), the clip's first frame (density before the explosion).
          centre: (B, 3) explosion centres in voxels, or None to find them from ``initial``
            and the first true frames.
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
        if centre is None:
            centre = [explosion_centre(np.concatenate([d0[None], d]), self.threshold)
                      for d0, d in zip(dens_initial, self._density(true))]
        for t in range(self.output_length):
            y, p, pc = true[:, t], pred[:, t], pred_clipped[:, t]
            self._add("mse_sum_per_frame", t, frame_mse(pc, y))
            self._add("mse_per_voxel", t, frame_mse_per_voxel(pc, y))
            self._add("mae", t, frame_mae(p, y))
            self._add("psnr", t, frame_psnr(pc, y))
            self._add("ssim", t, ssim3d(pc, y))
            mask_true = shell_mask(self._density(y), dens_initial, self.threshold)
            mask_pred = shell_mask(self._density(pc), dens_initial, self.threshold)
            self._add("shell_iou", t, [mask_iou(a, b) for a, b in zip(mask_pred, mask_true)])
            self._add_radii(t, self._density(y), self._density(pc), dens_initial, centre)
        self.clips += true.shape[0]

    def _add_radii(self, t, true, pred, initial, centres):
        """Adds the shell radii of output frame ``t`` of every sample (densities (B, X, Y, Z))."""
        radii = {k: [] for k in _RADII}
        for y, p, d0, c in zip(true, pred, initial, centres):
            r_true, r_pred = (shell_radii(f, d0, c, self.threshold) for f in (y, p))
            radii["shell_radius_true"].append(mean_shell_radius(r_true))
            radii["shell_radius_pred"].append(mean_shell_radius(r_pred))
            radii["shell_radius_error"].append(abs(mean_shell_radius(r_pred)
                                                   - mean_shell_radius(r_true)))
            radii["sector_radius_error"].append(np.mean(np.abs(r_pred - r_true)))
        for name, values in radii.items():
            self._add(name, t, values)

    def result(self):
        """JSON-serialisable summary.

        Returns a dict with ``clips`` (samples scored), ``output_length``, ``threshold``,
        ``per_frame`` (metric -> list of per-frame means), ``mean`` (metric -> mean over every
        scored (sample, frame) pair), ``psnr_infinite`` (per frame, identical frames left out of
        the PSNR means) and ``radius_skipped`` (per frame, samples with an empty shell in the
        truth or the forecast). A mean over nothing is ``None``. ``per_frame`` and ``mean`` also
        hold the old keys of :data:`OLD_NAMES`, for readers of earlier metrics.json files.
        """
        def ratio(total, count):
            return float(total / count) if count else None

        per_frame = {k: [ratio(s, c) for s, c in zip(self._sum[k], self._count[k])]
                     for k in _METRICS}
        mean = {k: ratio(self._sum[k].sum(), self._count[k].sum()) for k in _METRICS}
        for old, new in OLD_NAMES.items():
            per_frame[old], mean[old] = per_frame[new], mean[new]
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
        columns = ("mse_sum_per_frame", "mse_per_voxel", "mae", "psnr", "ssim", "shell_iou",
                   "shell_radius_error")
        header = (f"{'frame':>5} {'mse_sum':>11} {'mse_vox':>9} {'mae':>9} {'psnr':>8} "
                  f"{'ssim':>7} {'iou':>7} {'dr':>7}")
        widths = (11, 9, 9, 8, 7, 7, 7)
        formats = (".4g", ".3e", ".5f", ".3f", ".4f", ".4f", ".3f")

        def row(label, values):
            cells = [f"{'-':>{w}}" if v is None else f"{v:>{w}{f}}"
                     for v, w, f in zip(values, widths, formats)]
            return f"{label:>5} " + " ".join(cells)

        lines = [f"{res['clips']} clips scored; mse_sum over the voxels of a frame, mse_vox per "
                 "voxel; dr = error of the mean shell radius in voxels", header]
        for t in range(self.output_length):
            lines.append(row(str(t + 1), [res["per_frame"][k][t] for k in columns]))
        lines.append(row("mean", [res["mean"][k] for k in columns]))
        return "\n".join(lines)


def _at_particles(cube, particles, size, centre):
    """Trilinear value of ``cube`` (X, Y, Z) at each particle; NaN outside the cube."""
    from tfastro.supernova.particles import covers_box, cube_coordinates
    whole_box = covers_box(size, particles.box_size)
    n = cube.shape[0]
    x = cube_coordinates(particles.positions, particles.box_size, centre, size, n)
    values = ndimage.map_coordinates(cube, x.T, order=1,
                                     mode="grid-wrap" if whole_box else "nearest")
    inside = whole_box | ((x >= -0.5) & (x < n - 0.5)).all(axis=1)
    return np.where(inside, values, np.nan)


def _particle_densities(snapshot, cells, size, centre):
    """Each particle's density: its ``Density``, else the SPH deposit at its position."""
    if snapshot.densities is not None:
        return snapshot.densities
    from tfastro.supernova.particles import deposit_density
    cube = deposit_density(snapshot, cells, size=size, centre=centre)
    return _at_particles(cube, snapshot, size, centre)


def _match(particles, later):
    """Index into ``later`` of each particle (ParticleIDs, else the order); -1 if absent."""
    if particles.ids is None or later.ids is None:
        if len(later.masses) != len(particles.masses):
            raise UserInputError(f"{later.path}: {len(later.masses)} particles and no "
                                 f"ParticleIDs; {particles.path} holds {len(particles.masses)}")
        return np.arange(len(particles.masses))
    order = np.argsort(later.ids, kind="stable")
    pos = np.minimum(np.searchsorted(later.ids, particles.ids, sorter=order), len(order) - 1)
    index = order[pos]
    return np.where(later.ids[index] == particles.ids, index, -1)


def affected_particles(forecast, particles, *, before, size=None, centre=None, threshold=0.1,
                       later=None):
    """Flag the gas particles lying where the forecast density differs from ``before`` by more
    than ``threshold`` of it (the shell and its interior), and score the flags.

    The relative change ``forecast / before - 1`` of every voxel is interpolated trilinearly
    (between voxel centres) to each particle; particles outside the cube are not flagged. A
    particle is truly affected when its own density in ``later`` differs from its density in
    ``particles`` by more than ``threshold`` (``Density`` of the snapshots, else the SPH deposit
    at its position); particles are followed by ParticleIDs (else by their order).

    Args:
      forecast: ``(X, Y, Z)`` forecast density (any scale shared with ``before``).
      particles: :class:`tfastro.supernova.particles.GasParticles` of the snapshot the
        forecast starts from, at the time of ``before``.
      before: ``(X, Y, Z)`` density of that snapshot on the same cube.
      size, centre: the cube's side and centre in the particles' length unit, as given to
        :func:`tfastro.supernova.particles.deposit_density` (default: the whole box).
      later: the true later snapshot, or None (no recall or precision).
    Returns:
      ``(flags, scores)``: bool ``(N,)`` and a dict with ``particles``, ``flagged``,
      ``flagged_fraction`` (of all particles: the cost of integrating them apart), and with
      ``later``: ``affected`` (truly affected particles followed into ``later``), ``recall``
      (fraction of them flagged), ``precision`` (fraction of the flagged ones truly affected),
      ``unmatched`` (particles absent from ``later``, left out of both). None where undefined.
    """
    forecast = np.asarray(forecast, dtype=np.float64)
    before = np.asarray(before, dtype=np.float64)
    if forecast.ndim != 3 or forecast.shape != before.shape or len(set(forecast.shape)) != 1:
        raise UserInputError(f"affected_particles: forecast and before must be cubes of one "
                             f"shape (N, N, N), got {forecast.shape} and {before.shape}")
    box = particles.box_size
    size = box if size is None else float(size)
    centre = np.full(3, box / 2.0) if centre is None else np.asarray(centre, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(before > 0, forecast / before - 1.0, np.where(forecast > 0, np.inf, 0))
    change = np.nan_to_num(change, posinf=np.finfo(np.float64).max)
    flags = np.abs(_at_particles(change, particles, size, centre)) > threshold
    scores = {"particles": int(flags.size), "flagged": int(flags.sum()),
              "flagged_fraction": float(flags.mean()) if flags.size else None}
    if later is None:
        return flags, scores
    index = _match(particles, later)
    found = index >= 0
    cells = forecast.shape[0]
    rho0 = _particle_densities(particles, cells, size, centre)[found]
    rho1 = _particle_densities(later, cells, size, centre)[index[found]]
    known = np.isfinite(rho0) & np.isfinite(rho1)
    truth = known & (np.abs(rho1 - rho0) > threshold * rho0)
    hit = flags[found]
    tp = int((truth & hit).sum())
    scores.update(affected=int(truth.sum()), unmatched=int((~found).sum()),
                  recall=float(tp / truth.sum()) if truth.any() else None,
                  precision=float(tp / (hit & known).sum()) if (hit & known).any() else None)
    return flags, scores
