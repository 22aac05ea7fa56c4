"""Keras mixed precision for every case: the policy of ``--mixed_precision`` (or the
3D-MIM alias ``--precision bfloat16``), set for one run and restored, and the optimizer
inside a ``LossScaleOptimizer``."""
import contextlib

from tfastro.core.errors import UserInputError

PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")


def policy_name(mixed_precision="none", precision="float32"):
    """The Keras dtype policy of ``--mixed_precision`` (``--precision bfloat16``, the earlier
    flag, is an alias of ``--mixed_precision mixed_bfloat16``)."""
    if mixed_precision not in PRECISIONS:
        raise UserInputError(f"--mixed_precision={mixed_precision!r}: expected one of "
                             f"{', '.join(PRECISIONS)}")
    if precision not in ("float32", "bfloat16"):
        raise UserInputError(f"--precision={precision!r}: expected float32 or bfloat16")
    if precision == "bfloat16":
        if mixed_precision not in ("none", "mixed_bfloat16"):
            raise UserInputError(f"--precision=bfloat16 (an alias of --mixed_precision="
                                 f"mixed_bfloat16) contradicts --mixed_precision={mixed_precision}")
        return "mixed_bfloat16"
    return "float32" if mixed_precision == "none" else mixed_precision


@contextlib.contextmanager
def precision_policy(name):
    """Within the block Keras' global dtype policy is ``name`` (float32, mixed_float16 or
    mixed_bfloat16): layers built there compute in float16 / bfloat16 and keep float32
    weights; models compiled under mixed_float16 get a LossScaleOptimizer. The previous
    policy is restored on exit."""
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def base_optimizer(optimizer):
    """``optimizer`` without its LossScaleOptimizer wrapper (mixed_float16), if it has one."""
    import keras
    return (optimizer.inner_optimizer
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer)
