"""Statistics on fields, in Pylians3's conventions where it has one; every case uses them.

* ``fourier`` — FFT layout, |k| grid, mode binning, mass-assignment windows.
* ``spectra`` — auto and cross power spectra, r(k), batched over maps and channels.
* ``bispectra`` — bispectrum B and reduced Q (FFT shell estimator).
* ``assignment`` — NGP / CIC / TSC / PCS particles onto a periodic grid (a numba kernel with
  the ``fast`` extra, TensorFlow's scatter otherwise).
* ``image_metrics`` — SSIM (2D, 3D), PSNR, MAE.
* ``pdf`` — pixel PDFs of log fields and the KS distance.
* ``random_fields`` — Gaussian, lognormal and cross-correlated fields of a given P(k).
* ``checks`` — the input rule of every statistic: real values, finite unless
  ``allow_nonfinite=True``; a ``UserInputError`` naming the argument otherwise.

Arrays in, arrays out; scipy and TensorFlow do the transforms (imported when a statistic is
computed).
"""
from tfastro.fields.assignment import MAS_SCHEMES, mass_assignment
from tfastro.fields.bispectra import Bispectrum, bispectrum, triangle_third_side
from tfastro.fields.checks import check_real_values
from tfastro.fields.fourier import (MAS_ORDER, ModeBins, check_grid, field_modes,
                                    integer_k_squared, integer_wavenumbers, mode_bins, real_ffts,
                                    wavenumbers)
from tfastro.fields.image_metrics import mae, psnr, ssim2d, ssim2d_tensor, ssim3d
from tfastro.fields.pdf import ks_distance, pdf_bin_edges, pdf_mean_std, pixel_pdf, pixel_pdfs
from tfastro.fields.random_fields import correlated_fields, gaussian_random_field, lognormal_field
from tfastro.fields.spectra import (correlation_coefficient, correlation_from_spectra,
                                    cross_correlations, cross_power_spectrum, cross_spectra,
                                    power_spectrum)

__all__ = ["MAS_SCHEMES", "mass_assignment", "check_real_values", "Bispectrum", "bispectrum", "triangle_third_side",
           "MAS_ORDER", "real_ffts", "check_grid", "integer_wavenumbers", "integer_k_squared",
           "wavenumbers", "field_modes", "ModeBins", "mode_bins", "ssim2d", "ssim2d_tensor",
           "ssim3d", "psnr", "mae", "pdf_bin_edges", "pixel_pdf", "pixel_pdfs", "pdf_mean_std",
           "ks_distance", "gaussian_random_field", "lognormal_field", "correlated_fields",
           "power_spectrum", "cross_power_spectrum", "correlation_coefficient", "cross_spectra",
           "cross_correlations", "correlation_from_spectra"]
