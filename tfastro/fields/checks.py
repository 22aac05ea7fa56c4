"""The one input rule of every field statistic: real values, finite unless asked otherwise.

Complex input is refused (its imaginary part would otherwise be dropped without a word); NaN or
inf is refused unless the caller passes ``allow_nonfinite=True``, in which case the values go
into the arithmetic as they are (IEEE rules: a spectrum or score they touch is NaN, a histogram
leaves them out as values outside every bin).
"""
import sys

import numpy as np

from tfastro.core.errors import UserInputError

__all__ = ["all_finite", "check_real_values"]


def check_real_values(values, name, allow_nonfinite=False):
    """Refuse complex or (unless ``allow_nonfinite``) non-finite ``values``; return them.

    Args:
      values: numpy array, array-like or tf.Tensor of any shape.
      name: the argument's name, used in the error message.
      allow_nonfinite: let NaN and inf through.
    Returns:
      ``values`` as a numpy array (no copy of an array) or the tensor itself.
    Raises:
      UserInputError: naming ``name``, for complex, non-numeric or non-finite values.
    """
    tf = _tensorflow_of(values)
    if tf is not None:
        dtype = values.dtype
        if dtype.is_complex or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            raise UserInputError(f"{name}: expected real values, got dtype {dtype.name}")
    else:
        values = np.asarray(values)
        if values.dtype.kind not in "biuf":
            raise UserInputError(f"{name}: expected real values, got dtype {values.dtype}")
    if not (allow_nonfinite or all_finite(values)):
        raise _nonfinite(name)
    return values


def all_finite(values):
    """Whether every value of a real numpy array or tf.Tensor is finite."""
    tf = _tensorflow_of(values)
    if tf is not None:
        return not values.dtype.is_floating or bool(tf.reduce_all(tf.math.is_finite(values)))
    if values.dtype.kind != "f":
        return True
    # A finite sum proves every value finite without a mask of the array's size; a non-finite
    # sum (NaN/inf, or overflow of huge values) is confirmed value by value.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(values.sum()) or np.isfinite(values).all())


def _tensorflow_of(values):
    """The tensorflow module if ``values`` is a tensor (one exists only once TensorFlow is
    imported), else None."""
    tf = sys.modules.get("tensorflow")
    return tf if tf is not None and tf.is_tensor(values) else None


def _nonfinite(name):
    return UserInputError(f"{name}: expected finite values, found NaN or inf (pass "
                          "allow_nonfinite=True to compute with them)")
