"""Prestellar cores: a Conv3D column network from PPV spectral cubes to 3D density and
line-of-sight velocity.

Modules (the same names in every case package):

* ``io`` — ``prestellar.h5`` and per-core FITS files.
* ``synthetic`` — synthetic Plummer cores and their optically thin PPV observation
  (``python -m tfastro.synthetic prestellar``).
* ``pipeline`` — ``tf.data`` of whole cubes or windows (TensorFlow).
* ``model`` — ``ColumnNet`` (with its normalisation), windowed scanning, MC dropout.
* ``config``, ``task`` — ``run.py --model_name prestellar``.
* ``evaluation`` — per-voxel errors, radial profiles, Plummer fits, calibration.
* ``figures`` — PPV cubes, profiles, slices, uncertainty maps.

``pipeline`` and ``task`` are imported from their modules.
"""
from tfastro.prestellar.evaluation import (TARGET_NAMES, PlummerFit, calibration, density_centroid,
                                           fit_plummer, mean_baseline, plummer_log_profile,
                                           profile_scores, radial_profile, uncertainty_maps,
                                           voxel_errors)
from tfastro.prestellar.figures import plot_ppv, plot_profiles, plot_slices, plot_uncertainty
from tfastro.prestellar.io import (HDF5_NAME, PARAM_FIELDS, read_prestellar, read_prestellar_fits,
                                   write_prestellar)
from tfastro.prestellar.model import (N_TARGETS, ColumnNet, mc_dropout_predict, scan_predict,
                                      training_normalisation)
from tfastro.prestellar.synthetic import (PC_CM, PROFILES, V_RANGE, CoreParams, CoreRanges,
                                          CoreSet, cell_centres, channel_velocities, core_density,
                                          core_velocity, draw_core_params, grid_coordinates,
                                          line_profile, make_core, observe_ppv, prestellar_targets,
                                          structure_field, synthetic_cores, thermal_width)

__all__ = ["PARAM_FIELDS", "HDF5_NAME", "write_prestellar", "read_prestellar",
           "read_prestellar_fits", "cell_centres", "PROFILES", "V_RANGE", "PC_CM", "thermal_width",
           "CoreParams", "CoreRanges", "draw_core_params", "grid_coordinates", "structure_field",
           "core_density", "core_velocity", "line_profile", "observe_ppv", "channel_velocities",
           "make_core", "CoreSet", "synthetic_cores", "prestellar_targets", "ColumnNet",
           "training_normalisation", "scan_predict", "mc_dropout_predict", "N_TARGETS",
           "TARGET_NAMES", "PlummerFit", "voxel_errors", "density_centroid", "radial_profile",
           "plummer_log_profile", "fit_plummer", "mean_baseline", "profile_scores",
           "uncertainty_maps", "calibration", "plot_slices", "plot_ppv", "plot_profiles",
           "plot_uncertainty"]
