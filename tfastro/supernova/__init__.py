"""Supernova shells: 3D-MIM forecasts of supernova-shell expansion as 3D voxel clips.

Modules (the same names in every case package):

* ``io`` — the sn ``.npz`` file of the original 3D-MIM (frames, clips, dims), and the
  normalisation of densities to frames (``max``, the original's, or ``log``).
* ``simulations`` — clips from Athena++ time series
  (``python -m tfastro.supernova.simulations --out clips.npz run/*.athdf``).
* ``synthetic`` — synthetic Sedov-Taylor shells in that layout
  (``python -m tfastro.synthetic supernova --out data/sn/SampleData.npz``).
* ``pipeline`` — ``tf.data`` batches of clips ``(batch, time, X, Y, Z, C)`` (TensorFlow).
* ``particles`` — SPH gas particles: snapshots read, deposited onto cubes, written as clips
  (``python -m tfastro.supernova.particles``).
* ``layers``, ``model``, ``optimizers`` — the MIM cells, the ``MIM3D`` Keras model, ``MIMAdam``.
* ``unet`` — ``UNet3D``, the 3D U-Net forecaster (``--model_name unet``).
* ``baselines`` — persistence and the Sedov-Taylor rescaling, scored beside the networks.
* ``config``, ``task`` — ``run.py --model_name mim`` / ``unet``: training, resuming,
  forecasting.
* ``evaluation`` — explosion centre, shell masks and radii (per direction, periodic),
  per-frame forecast scores, affected particles.
* ``figures`` — cross-sections and forecast GIFs.

The names below import without TensorFlow (Keras on JAX works); ``pipeline`` and ``task``, and
the commands ``simulations`` and ``particles``, are imported from their modules.
"""
from tfastro.supernova.baselines import BASELINES, Persistence, SedovTaylorRescaling
from tfastro.supernova.evaluation import (ForecastScores, affected_particles, explosion_centre,
                                         frame_mae, frame_mse, frame_mse_per_voxel, frame_psnr,
                                         mask_iou, mean_shell_radius, shell_mask, shell_radii,
                                         shell_radius)
from tfastro.supernova.figures import central_slice, save_cross_sections, save_forecast_gif
from tfastro.supernova.io import (REQUIRED_KEYS, Normalisation, SNData, check_sn_config,
                                  default_clips, load_sn_npz, save_sn_npz)
from tfastro.supernova.layers import (MIMN3D, MIMS3D, PEEPHOLES, ChannelGlorotUniform, ConvNorm3D,
                                      MIMBlock3D, SpatioTemporalLSTMCell3D)
from tfastro.supernova.model import (MIM3D, check_num_hidden, frame_loss, reshape_patch,
                                     reshape_patch_back, sampling_eta)
from tfastro.supernova.optimizers import MIMAdam
from tfastro.supernova.synthetic import (XI_GAMMA_5_3, sedov_taylor_radius, KYR_S, M_H_G, MEDIA,
                                         PC_CM, SNParams, blast_density, lognormal_cloud,
                                         make_sn_clips, normalise_density, sn_density_clips)
from tfastro.supernova.unet import ConvBlock3D, UNet3D

__all__ = [
    "REQUIRED_KEYS", "Normalisation", "SNData", "load_sn_npz", "check_sn_config", "default_clips",
    "save_sn_npz", "PC_CM", "KYR_S", "M_H_G", "MEDIA", "SNParams",
    "lognormal_cloud", "blast_density", "sn_density_clips", "normalise_density", "make_sn_clips",
    "PEEPHOLES", "SpatioTemporalLSTMCell3D", "MIMS3D", "MIMN3D", "MIMBlock3D",
    "ChannelGlorotUniform", "ConvNorm3D", "sampling_eta", "frame_loss", "check_num_hidden", "MIM3D",
    "reshape_patch", "reshape_patch_back", "MIMAdam", "ConvBlock3D", "UNet3D", "BASELINES",
    "Persistence", "SedovTaylorRescaling", "XI_GAMMA_5_3", "sedov_taylor_radius", "shell_mask",
    "shell_radius", "shell_radii", "mean_shell_radius", "explosion_centre", "affected_particles",
    "mask_iou", "frame_mse", "frame_mse_per_voxel", "frame_mae", "frame_psnr", "ForecastScores",
    "central_slice", "save_cross_sections", "save_forecast_gif"]
