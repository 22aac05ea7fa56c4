"""Matplotlib pictures of fields and forecasts (Agg canvas, no pyplot state)."""
from tfastro.viz.cubes import central_slice, save_cross_sections, save_forecast_gif

__all__ = ["central_slice", "save_cross_sections", "save_forecast_gif"]
