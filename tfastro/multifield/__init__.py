"""Multifield emulator: a conditional GAN of CAMELS maps (gas, HI, magnetic field).

Modules (the same names in every case package):

* ``io`` — the CAMELS Multifield Dataset maps and parameters, [-1, 1] scaling, splits.
* ``synthetic`` — synthetic maps in that layout (``python -m tfastro.synthetic multifield``).
* ``pipeline`` — ``tf.data`` of augmented maps and parameters (TensorFlow).
* ``layers``, ``model`` — FastGAN blocks, ``Generator``, ``Discriminator``, ``MultifieldGAN``.
* ``regressor`` — the CNN regressor of (Omega_m, sigma_8) that checks the conditioning.
* ``config``, ``task`` — ``run.py --model_name multifield``.
* ``evaluation`` — generated against real maps: P(k), PDFs, r(k), conditioning scores.
* ``figures`` — map grids and the statistics plots.

``pipeline`` and ``task`` are imported from their modules.
"""
from tfastro.multifield.evaluation import (amplitude_ordering, checked_maps,
                                           cross_correlation_comparison, emulator_report,
                                           pdf_comparison, regression_scores, spectra_comparison)
from tfastro.multifield.figures import (FIELD_CMAPS, plot_amplitude_vs_sigma8, plot_conditioning,
                                        plot_cross_correlations, plot_pdfs, plot_spectra,
                                        real_vs_generated_grid, sample_grid)
from tfastro.multifield.io import (BOX_SIZE, CMD_FIELDS, LOG10_RANGES, MAGNETIC_SUITE,
                                   MAPS_PER_SIMULATION, PARAM_NAMES, PARAM_RANGES, CMDMaps,
                                   ParamRange, check_fields, denormalise_maps, denormalise_params,
                                   map_indices, maps_path, normalise_maps, normalise_params,
                                   open_cmd, params_path, split_simulations)
from tfastro.multifield.layers import (GLU, NORMS, ConditionProjection, DownBlock, SimpleDecoder,
                                       SkipLayerExcitation, UpBlock, adaptive_average_pool)
from tfastro.multifield.model import (FEATURE_WIDTHS, LOSSES, RESOLUTIONS, Discriminator,
                                      Generator, MultifieldGAN, average_pool, check_resolution,
                                      default_optimizer, discriminator_excitations, feature_widths,
                                      generator_excitations, gradient_penalty, reconstruction_loss,
                                      reconstruction_targets, take_quadrant)
from tfastro.multifield.regressor import ParameterRegressor
from tfastro.multifield.synthetic import (AMPLITUDE, DEFAULT_SIMULATIONS, LOG10_MEAN, LOG10_SCALE,
                                          PIVOT_K, TRUE_CROSS_CORRELATION, cutoff_wavenumber,
                                          gaussian_spectrum, latin_hypercube_params,
                                          spectral_index, synthetic_cmd_maps, synthetic_maps_at,
                                          true_log_spectrum, write_synthetic_cmd)

__all__ = ["CMD_FIELDS", "LOG10_RANGES", "PARAM_NAMES", "PARAM_RANGES", "ParamRange",
           "MAPS_PER_SIMULATION", "BOX_SIZE", "MAGNETIC_SUITE", "check_fields", "maps_path",
           "params_path", "open_cmd", "CMDMaps", "normalise_maps", "denormalise_maps",
           "normalise_params", "denormalise_params", "split_simulations", "map_indices",
           "LOG10_MEAN", "LOG10_SCALE", "TRUE_CROSS_CORRELATION", "AMPLITUDE", "PIVOT_K",
           "DEFAULT_SIMULATIONS", "spectral_index", "cutoff_wavenumber", "gaussian_spectrum",
           "true_log_spectrum", "latin_hypercube_params", "synthetic_cmd_maps",
           "synthetic_maps_at", "write_synthetic_cmd", "NORMS", "GLU", "adaptive_average_pool",
           "SkipLayerExcitation", "UpBlock", "DownBlock", "SimpleDecoder", "ConditionProjection",
           "RESOLUTIONS", "FEATURE_WIDTHS", "LOSSES", "check_resolution", "feature_widths",
           "generator_excitations", "discriminator_excitations", "average_pool", "Generator",
           "Discriminator", "take_quadrant", "reconstruction_targets", "reconstruction_loss",
           "gradient_penalty", "default_optimizer", "MultifieldGAN", "ParameterRegressor",
           "checked_maps", "spectra_comparison", "pdf_comparison", "cross_correlation_comparison",
           "emulator_report", "regression_scores", "amplitude_ordering", "FIELD_CMAPS",
           "sample_grid", "real_vs_generated_grid", "plot_spectra", "plot_pdfs",
           "plot_cross_correlations", "plot_conditioning", "plot_amplitude_vs_sigma8"]
