"""Statistics on fields (numpy/scipy on arrays): shell geometry and forecast scores."""
from tfastro.analysis.forecast_metrics import (ForecastScores, frame_mae, frame_mse,
                                               frame_psnr, ssim3d)
from tfastro.analysis.shells import (XI_GAMMA_5_3, mask_iou, sedov_taylor_radius,
                                     shell_mask, shell_radius)

__all__ = [
    "ForecastScores", "frame_mae", "frame_mse", "frame_psnr", "ssim3d",
    "XI_GAMMA_5_3", "mask_iou", "sedov_taylor_radius", "shell_mask", "shell_radius",
]
