"""Shared checks of the figure tests: PNG size and content, image axes."""
from matplotlib import image as mpimg


def read_png(path, width_in, height_in, dpi):
    """The PNG at ``path``, after checking it is (height, width) inches at ``dpi`` pixels per
    inch and not blank."""
    picture = mpimg.imread(path)
    assert picture.shape[:2] == (round(height_in * dpi), round(width_in * dpi))
    assert picture[..., :3].std() > 0.01  # something drawn
    return picture


def image_axes(fig):
    """The axes of ``fig`` that show an image."""
    return [ax for ax in fig.axes if ax.images]
