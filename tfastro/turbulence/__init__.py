"""Cosmic-ray transport from turbulent gas: a CNN classifier and a U-net on density images.

Modules (the same names in every case package):

* ``io`` — Athena++ outputs to FITS cubes, class folders.
* ``synthetic`` — five synthetic classes of FITS cubes (``python -m tfastro.synthetic turbulence``).
* ``pipeline`` — slices, buffered splits, tiles, histogram equalisation, ``tf.data``
  (TensorFlow).
* ``model`` — ``turbulence_classifier``, ``turbulence_unet``, their losses, and
  ``apply_to_cube`` (a trained model on a raw cube, with the preprocessing it records).
* ``config``, ``task`` — ``run.py --model_name turbulence_cnn|turbulence_unet``.
* ``evaluation`` — classification scores, saliency, occlusion, blur sweep.
* ``figures`` — confusion matrix, saliency, blur sweep, mapping.

``pipeline`` and ``task`` are imported from their modules.
"""
from tfastro.turbulence.evaluation import (BLUR_SIGMAS, OCCLUSION_PATCH, SALIENCY_LEVEL,
                                           SALIENCY_SIGMA, blur_images, blur_summary, blur_sweep,
                                           blurred_spectra, class_logits, classification_report,
                                           confusion_matrix, gaussian_transfer, occlusion_maps,
                                           raw_saliency, saliency_maps, saliency_region)
from tfastro.turbulence.figures import (CONFUSION_SIZE, plot_blur_sweep, plot_blurred_spectra,
                                        plot_confusion_matrix, plot_mapping, plot_occlusion,
                                        plot_saliency)
from tfastro.turbulence.io import (CLASS_LABELS, CODE_UNITS, FIELDS, TURBULENCE_CLASSES,
                                   athdf_variables, athena_fields, athena_to_fits, class_files,
                                   fits_units, read_athdf, read_fits_cube, resample_cube,
                                   write_fits_cubes)
from tfastro.turbulence.model import (CLASSIFIER_BATCH_SIZE, DEFAULT_SSIM_ALPHA, SSIM_ALPHAS,
                                      UNET_BATCH_SIZE, SSIMMSELoss, TilePreprocessing, adamw,
                                      apply_to_cube, compile_classifier, compile_unet,
                                      early_stopping, ssim_mse_loss, turbulence_classifier,
                                      turbulence_unet)
from tfastro.turbulence.synthetic import (E_B0, E_C0, NOISE, RHO0, SIGMA_LN_RHO, SYNTHETIC_CLASSES,
                                          SYNTHETIC_UNITS, SyntheticClass, class_gaussian_field,
                                          planted_spectrum, snapshot_path, synthetic_snapshot,
                                          write_synthetic_turbulence)

__all__ = ["TURBULENCE_CLASSES", "CLASS_LABELS", "FIELDS", "CODE_UNITS", "athdf_variables",
           "read_athdf", "athena_fields", "resample_cube", "athena_to_fits", "write_fits_cubes",
           "read_fits_cube", "fits_units", "class_files", "SyntheticClass", "SYNTHETIC_CLASSES",
           "SIGMA_LN_RHO", "RHO0", "E_B0", "E_C0", "NOISE", "SYNTHETIC_UNITS", "planted_spectrum",
           "class_gaussian_field", "synthetic_snapshot", "snapshot_path",
           "write_synthetic_turbulence", "turbulence_classifier", "turbulence_unet",
           "TilePreprocessing", "apply_to_cube", "SSIMMSELoss",
           "ssim_mse_loss", "adamw", "compile_classifier", "compile_unet", "early_stopping",
           "SSIM_ALPHAS", "DEFAULT_SSIM_ALPHA", "CLASSIFIER_BATCH_SIZE", "UNET_BATCH_SIZE",
           "confusion_matrix", "classification_report", "SALIENCY_SIGMA", "SALIENCY_LEVEL",
           "OCCLUSION_PATCH", "BLUR_SIGMAS", "class_logits", "raw_saliency", "saliency_maps",
           "saliency_region", "occlusion_maps", "blur_images", "blur_sweep", "blur_summary",
           "gaussian_transfer", "blurred_spectra", "CONFUSION_SIZE", "plot_confusion_matrix",
           "plot_saliency", "plot_occlusion", "plot_blur_sweep", "plot_blurred_spectra",
           "plot_mapping"]
