"""tf.distribute strategies by name (``--strategy``)."""
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def get_strategy(name="default"):
    """``default`` (one device), ``mirrored`` (all local GPUs) or ``multi_worker_mirrored``
    (several hosts, configured through the TF_CONFIG environment variable)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def allow_gpu_memory_growth():
    """Let TensorFlow allocate GPU memory as needed (call before any GPU is used)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
