"""dm2gal: a 3D CNN painting galaxy stellar mass onto dark-matter fields (IllustrisTNG).

Modules (the same names in every case package):

* ``io`` — TNG snapshots and group catalogues (HDF5) streamed into CIC mass grids, field files.
* ``synthetic`` — synthetic TNG-layout files (``python -m tfastro.synthetic dm2gal``).
* ``pipeline`` — candidate centres, buffered regions, cube rotations, weighted windows in
  ``tf.data`` (TensorFlow).
* ``model`` — the ``DM2Gal`` network and stitched inference over a region.
* ``hod`` — the halo-occupation baseline.
* ``config``, ``task`` — ``run.py --model_name dm2gal``.
* ``evaluation`` — target, prediction and HOD cubes compared (P(k), bispectrum, mass).
* ``figures`` — slices, mass histograms, spectra.

``pipeline`` and ``task`` are imported from their modules.
"""
from tfastro.dm2gal.evaluation import DEFAULT_THETAS, compare_cubes
from tfastro.dm2gal.figures import (plot_bispectra, plot_mass_histograms, plot_power_spectra,
                                    plot_slices)
from tfastro.dm2gal.hod import hod_stellar_masses, host_mass_edges
from tfastro.dm2gal.io import (MASS_UNIT, STANDARDISATION, Groups, Subhalos, cic_mass_grid,
                               dark_matter_grid, dark_matter_particle_mass, destandardise,
                               field_statistics, inverse_log_mass, iter_particle_positions,
                               load_field, log_mass, read_groups, read_header, read_subhalos,
                               save_field, snapshot_files, standardise, stellar_mass_grid,
                               subhalo_mass_grid)
from tfastro.dm2gal.model import DM2Gal, dm2gal_kernel_sizes, predict_cube
from tfastro.dm2gal.synthetic import (RHO_CRIT, SNAPSHOT, SyntheticTNG, TNGSyntheticParams,
                                      synthetic_tng, tng_paths, write_synthetic_tng)

__all__ = ["MASS_UNIT", "STANDARDISATION", "Subhalos", "Groups", "snapshot_files", "read_header",
           "iter_particle_positions", "dark_matter_particle_mass", "read_subhalos", "read_groups",
           "cic_mass_grid", "dark_matter_grid", "subhalo_mass_grid", "stellar_mass_grid",
           "log_mass", "inverse_log_mass", "standardise", "destandardise", "field_statistics",
           "save_field", "load_field", "TNGSyntheticParams", "SyntheticTNG", "synthetic_tng",
           "write_synthetic_tng", "tng_paths", "SNAPSHOT", "RHO_CRIT", "DM2Gal",
           "dm2gal_kernel_sizes", "predict_cube", "host_mass_edges", "hod_stellar_masses",
           "DEFAULT_THETAS", "compare_cubes", "plot_power_spectra", "plot_bispectra",
           "plot_slices", "plot_mass_histograms"]
