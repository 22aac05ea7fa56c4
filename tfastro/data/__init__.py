"""Data: readers/writers of the real file formats, synthetic generators, tf.data pipelines.

* :mod:`tfastro.data.npz` — the 3D-MIM sn ``.npz`` (frames ``(N, C, X, Y, Z)`` float32 in
  [0, 1], clips ``(2, n_clips, 2)``, dims ``(1, 4)``).
* :mod:`tfastro.data.synthetic` — synthetic supernova-shell frames in that format (also a
  command line: ``python -m tfastro.data.synthetic sn --out PATH``).
* :mod:`tfastro.data.random_fields` — Gaussian, lognormal and cross-correlated random fields
  of a given P(k) (periodic, seeded), 2D and 3D.
* :mod:`tfastro.data.pipeline` — ``tf.data`` batches ``(batch, time, X, Y, Z, C)``.
* :mod:`tfastro.data.cmd` — the CAMELS multifield 2D maps (``Maps_{field}_{suite}_{set}_z=0.00.npy``,
  ``params_{set}_{suite}.txt``): memory-mapped reader, [-1, 1] scaling, split by simulation,
  augmentation, streaming ``tf.data``.
* :mod:`tfastro.data.cmd_synthetic` — synthetic maps in that layout with known P(k) and r(k)
  (``python -m tfastro.data.synthetic cmd --out DIR``).
* :mod:`tfastro.data.tng` — IllustrisTNG snapshots and group catalogues (HDF5) streamed into CIC
  mass grids (whole box or a block), log10(1 + M), standardisation, field files;
  :mod:`tfastro.data.tng_synthetic` writes synthetic ones in that layout
  (``python -m tfastro.data.synthetic tng --out DIR``).
* :mod:`tfastro.data.turbulence` — turbulent-gas boxes: Athena++ HDF5 -> FITS, the image
  pipeline (log10, min-max, phases only, shifts, tiles, histogram equalisation, projections),
  the buffered slice split, class folders, ``tf.data`` with flips;
  :mod:`tfastro.data.turbulence_synthetic` writes five synthetic classes
  (``python -m tfastro.data.synthetic turbulence --out DIR``).
* :mod:`tfastro.data.prestellar` — synthetic prestellar cores (Plummer density with structure,
  rotation and infall), their optically thin PPV observation, FITS / HDF5 files and
  ``tf.data`` of whole cubes or windows (``python -m tfastro.data.synthetic prestellar --out DIR``).
* :mod:`tfastro.data.dm2gal_samples` — dm2gal candidate centres, buffered test/validation/train
  regions, the 24 cube rotations, mass-bin weighted sampling, streamed windows in ``tf.data``.

The synthetic, random-field and pipeline names are imported on first use, so reading files
does not import TensorFlow.
"""
import importlib

from tfastro.data.npz import (SNData, check_sn_config, default_clips, load_sn_npz,
                              save_sn_npz)

_LAZY = {
    "sn_dataset": "tfastro.data.pipeline",
    "SNParams": "tfastro.data.synthetic",
    "lognormal_cloud": "tfastro.data.synthetic",
    "blast_density": "tfastro.data.synthetic",
    "sn_density_clips": "tfastro.data.synthetic",
    "normalise_density": "tfastro.data.synthetic",
    "make_sn_clips": "tfastro.data.synthetic",
    "gaussian_random_field": "tfastro.data.random_fields",
    "lognormal_field": "tfastro.data.random_fields",
    "correlated_fields": "tfastro.data.random_fields",
    **dict.fromkeys(["open_cmd", "CMDMaps", "CMD_FIELDS", "LOG10_RANGES", "PARAM_NAMES",
                     "PARAM_RANGES", "MAPS_PER_SIMULATION", "BOX_SIZE", "normalise_maps",
                     "denormalise_maps", "normalise_params", "denormalise_params",
                     "split_simulations", "map_indices", "augment_maps", "cmd_dataset"],
                    "tfastro.data.cmd"),
    **dict.fromkeys(["write_synthetic_cmd", "synthetic_cmd_maps", "synthetic_maps_at",
                     "true_log_spectrum", "TRUE_CROSS_CORRELATION"], "tfastro.data.cmd_synthetic"),
    **dict.fromkeys(["candidate_centres", "DM2GalRegions", "split_regions", "centre_allowed",
                     "split_centres", "CUBE_ROTATIONS", "rotate_cube", "rotate_cube_tf",
                     "mass_bin_weights", "weighted_sample_indices", "weighted_index_dataset",
                     "window_dataset"], "tfastro.data.dm2gal_samples"),
    **dict.fromkeys(["STANDARDISATION", "MASS_UNIT", "Subhalos", "Groups", "snapshot_files",
                     "read_header", "iter_particle_positions", "dark_matter_particle_mass",
                     "read_subhalos", "read_groups", "cic_mass_grid", "dark_matter_grid",
                     "subhalo_mass_grid", "stellar_mass_grid", "log_mass", "inverse_log_mass",
                     "standardise", "destandardise", "field_statistics", "save_field",
                     "load_field"], "tfastro.data.tng"),
    **dict.fromkeys(["TNGSyntheticParams", "SyntheticTNG", "synthetic_tng", "write_synthetic_tng",
                     "tng_paths"], "tfastro.data.tng_synthetic"),
    **dict.fromkeys(["TURBULENCE_CLASSES", "CLASS_LABELS", "athena_to_fits", "read_athdf",
                     "read_fits_cube", "fits_units", "buffered_split", "assert_buffered",
                     "class_files", "classification_images", "mapping_images",
                     "turbulence_dataset"], "tfastro.data.turbulence"),
    **dict.fromkeys(["write_synthetic_turbulence", "SYNTHETIC_CLASSES"],
                    "tfastro.data.turbulence_synthetic"),
    **dict.fromkeys(["CoreParams", "CoreRanges", "CoreSet", "draw_core_params", "core_density",
                     "core_velocity", "line_profile", "observe_ppv", "make_core",
                     "synthetic_cores", "prestellar_targets", "write_prestellar",
                     "read_prestellar", "core_dataset", "ppv_window_dataset", "thermal_width"],
                    "tfastro.data.prestellar"),
}

__all__ = ["SNData", "check_sn_config", "default_clips", "load_sn_npz", "save_sn_npz",
           *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
