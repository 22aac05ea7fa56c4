"""Figure helpers shared by every case: an Agg Figure without pyplot state, written as a
PNG when a path is given, and the size of one statistics panel."""
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfastro.core.atomic import write_atomically

#: (width, height) in inches of one panel of the statistics plots.
PLOT_PANEL = (4.0, 3.2)


def agg_figure(width, height):
    """A constrained-layout Figure of ``width`` x ``height`` inches on an Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_or_png(fig, path, dpi):
    """The Figure itself, or ``path`` after writing it there as a PNG."""
    if path is None:
        return fig
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return write_atomically(path, lambda partial: fig.savefig(partial, dpi=dpi, format="png"))
