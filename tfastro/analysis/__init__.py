"""Statistics on fields, in Pylians3's conventions where it has one.

* :mod:`~tfastro.analysis.fourier` — FFT layout, |k| grid, mode binning, mass-assignment windows.
* :mod:`~tfastro.analysis.spectra` — auto and cross power spectra, r(k), batched over maps/channels.
* :mod:`~tfastro.analysis.bispectrum` — bispectrum B and reduced Q (FFT shell estimator).
* :mod:`~tfastro.analysis.mass_assignment` — NGP/CIC/TSC particles -> periodic grid.
* :mod:`~tfastro.analysis.image_metrics` — SSIM (2D/3D), PSNR, MAE.
* :mod:`~tfastro.analysis.field_pdf` — pixel PDFs of log fields and the KS distance.
* :mod:`~tfastro.analysis.emulator` — generated against real multifield maps: P(k), PDFs, r(k),
  conditioning scores.
* :mod:`~tfastro.analysis.hod`, :mod:`~tfastro.analysis.galaxy_statistics` — the HOD baseline
  of dm2gal and target / prediction / HOD cube statistics (P(k), bispectrum, mass).
* :mod:`~tfastro.analysis.classification`, :mod:`~tfastro.analysis.saliency` — classifier
  scores (per-class precision, recall, F1, confusion matrix) and what a classifier looks at
  (saliency, occlusion, blur sweep and the blurred images' spectra).
* :mod:`~tfastro.analysis.prestellar` — prestellar cores: per-voxel errors, radial profiles and
  Plummer fits, MC-dropout calibration.
* :mod:`~tfastro.analysis.shells`, :mod:`~tfastro.analysis.forecast_metrics` — supernova
  shells and 3D-MIM forecast scores.

Names backed by TensorFlow are imported on first use, so ``tfastro.analysis.shells`` alone
does not import it.
"""
import importlib

from tfastro.analysis.shells import (XI_GAMMA_5_3, mask_iou, sedov_taylor_radius, shell_mask,
                                     shell_radius)

_LAZY = {
    **dict.fromkeys(["MAS_ORDER", "field_modes", "mode_bins", "wavenumbers"],
                    "tfastro.analysis.fourier"),
    **dict.fromkeys(["power_spectrum", "cross_power_spectrum", "correlation_coefficient",
                     "cross_spectra", "cross_correlations", "correlation_from_spectra"],
                    "tfastro.analysis.spectra"),
    **dict.fromkeys(["Bispectrum", "bispectrum", "triangle_third_side"],
                    "tfastro.analysis.bispectrum"),
    "mass_assignment": "tfastro.analysis.mass_assignment",
    **dict.fromkeys(["ssim2d", "ssim2d_tensor", "ssim3d", "psnr", "mae"],
                    "tfastro.analysis.image_metrics"),
    **dict.fromkeys(["classification_report", "confusion_matrix"],
                    "tfastro.analysis.classification"),
    **dict.fromkeys(["raw_saliency", "saliency_maps", "saliency_region", "occlusion_maps",
                     "blur_images", "blur_sweep", "blur_summary", "blurred_spectra",
                     "gaussian_transfer", "class_logits", "SALIENCY_SIGMA", "SALIENCY_LEVEL",
                     "OCCLUSION_PATCH", "BLUR_SIGMAS"], "tfastro.analysis.saliency"),
    **dict.fromkeys(["TARGET_NAMES", "PlummerFit", "cell_centres", "voxel_errors",
                     "density_centroid", "radial_profile", "plummer_log_profile", "fit_plummer",
                     "mean_baseline", "profile_scores", "uncertainty_maps", "calibration"],
                    "tfastro.analysis.prestellar"),
    **dict.fromkeys(["pdf_bin_edges", "pixel_pdf", "pixel_pdfs", "pdf_mean_std", "ks_distance"],
                    "tfastro.analysis.field_pdf"),
    **dict.fromkeys(["spectra_comparison", "pdf_comparison", "cross_correlation_comparison",
                     "emulator_report", "regression_scores", "amplitude_ordering"],
                    "tfastro.analysis.emulator"),
    **dict.fromkeys(["hod_stellar_masses", "host_mass_edges"], "tfastro.analysis.hod"),
    **dict.fromkeys(["compare_cubes", "DEFAULT_THETAS"], "tfastro.analysis.galaxy_statistics"),
    **dict.fromkeys(["ForecastScores", "frame_mae", "frame_mse", "frame_psnr"],
                    "tfastro.analysis.forecast_metrics"),
}

__all__ = ["XI_GAMMA_5_3", "mask_iou", "sedov_taylor_radius", "shell_mask", "shell_radius",
           *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
