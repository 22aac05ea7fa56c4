"""Keras models built from tfastro.layers."""
from tfastro.models.column import ColumnNet, mc_dropout_predict, scan_predict
from tfastro.models.dm2gal import DM2Gal, dm2gal_kernel_sizes, predict_cube
from tfastro.models.mim import MIM3D, check_num_hidden, frame_loss, sampling_eta
from tfastro.models.multifield_gan import (Discriminator, Generator, MultifieldGAN,
                                           gradient_penalty)
from tfastro.models.optimizers import MIMAdam
from tfastro.models.param_regressor import ParameterRegressor
from tfastro.models.patching import reshape_patch, reshape_patch_back
from tfastro.models.turbulence import (SSIMMSELoss, adamw, compile_classifier, compile_unet,
                                       early_stopping, ssim_mse_loss, turbulence_classifier,
                                       turbulence_unet)

__all__ = ["MIM3D", "MIMAdam", "check_num_hidden", "frame_loss", "reshape_patch",
           "reshape_patch_back", "sampling_eta", "Discriminator", "Generator", "MultifieldGAN",
           "gradient_penalty", "ParameterRegressor", "DM2Gal", "dm2gal_kernel_sizes", "predict_cube",
           "turbulence_classifier", "turbulence_unet", "SSIMMSELoss", "ssim_mse_loss", "adamw",
           "compile_classifier", "compile_unet", "early_stopping", "ColumnNet", "scan_predict",
           "mc_dropout_predict"]
