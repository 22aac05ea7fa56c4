"""The one input rule of every field statistic: real values, finite unless asked otherwise.

Complex input is refused (its imaginary part would otherwise be dropped without a word); NaN or
inf is refused unless the caller passes ``allow_nonfinite=True``, in which case the values go
into the arithmetic as they are (IEEE rules: a spectrum or score they touch is NaN, a histogram
leaves them out as values outside every bin).
"""
import sys

import numpy as np

from tfastro.core.errors import UserInputError

__all__ = ["check_real_values"]


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
    tf = sys.modules.get("tensorflow")  # a tensor exists only once TensorFlow is imported
    if tf is not None and tf.is_tensor(values):
        dtype = values.dtype
        if dtype.is_complex or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            raise UserInputError(f"{name}: expected real values, got dtype {dtype.name}")
        if not (allow_nonfinite or dtype.is_integer or dtype.is_bool
                or bool(tf.reduce_all(tf.math.is_finite(values)))):
            raise _nonfinite(name)
        return values
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise UserInputError(f"{name}: expected real values, got dtype {values.dtype}")
    # A finite sum proves every value finite without a mask of the array's size; a non-finite
    # sum (NaN/inf, or overflow of huge values) is confirmed value by value.
    if not allow_nonfinite and values.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            finite_sum = np.isfinite(values.sum())
        if not finite_sum and not np.isfinite(values).all():
            raise _nonfinite(name)
    return values


def _nonfinite(name):
    return UserInputError(f"{name}: expected finite values, found NaN or inf (pass "
                          "allow_nonfinite=True to compute with them)")
