"""Matplotlib pictures of fields and forecasts (Agg canvas, no pyplot state)."""
from tfastro.viz.cubes import central_slice, save_cross_sections, save_forecast_gif
from tfastro.viz.dm2gal import plot_bispectra, plot_mass_histograms, plot_power_spectra, plot_slices
from tfastro.viz.maps import (FIELD_CMAPS, PLOT_PANEL, plot_amplitude_vs_sigma8, plot_conditioning,
                              plot_cross_correlations, plot_pdfs, plot_spectra,
                              real_vs_generated_grid, sample_grid)
from tfastro.viz.prestellar import plot_ppv, plot_profiles, plot_uncertainty
from tfastro.viz.prestellar import plot_slices as plot_core_slices
from tfastro.viz.turbulence import (CONFUSION_SIZE, plot_blur_sweep, plot_blurred_spectra,
                                    plot_confusion_matrix, plot_mapping, plot_occlusion,
                                    plot_saliency)

__all__ = ["central_slice", "save_cross_sections", "save_forecast_gif", "FIELD_CMAPS", "PLOT_PANEL",
           "plot_amplitude_vs_sigma8", "plot_conditioning", "plot_cross_correlations", "plot_pdfs",
           "plot_spectra", "real_vs_generated_grid", "sample_grid", "plot_bispectra",
           "plot_mass_histograms", "plot_power_spectra", "plot_slices", "CONFUSION_SIZE",
           "plot_blur_sweep", "plot_blurred_spectra", "plot_confusion_matrix", "plot_mapping",
           "plot_occlusion", "plot_saliency", "plot_ppv", "plot_profiles", "plot_uncertainty",
           "plot_core_slices"]
