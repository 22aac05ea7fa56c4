"""Where and in what precision a task trains: ``--strategy``, ``--n_gpu``, ``--mixed_precision``.

- :func:`get_strategy`: a tf.distribute strategy by name (``default``: one device;
  ``mirrored``: the local GPUs; ``multi_worker_mirrored``: several processes or hosts, each
  told the cluster and its own place in it by the ``TF_CONFIG`` environment variable).
- ``--batch_size`` is the batch of one replica: a step consumes :func:`global_batch` samples
  (per-replica batch x replicas), and :func:`shard_by_data` makes every worker read the same
  stream and keep its share of each global batch.
- :func:`precision_policy`: the Keras dtype policy of a run, set while its models are built
  and restored afterwards.
"""
import os

import keras
import tensorflow as tf

from tfastro.core.errors import UserInputError

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """tf.distribute's MultiWorkerMirroredStrategy whose ``reduce`` takes what Keras 3's
    ``fit`` hands it (keras-team/keras#20585): nested structures, as ``Strategy.reduce`` is
    documented to accept, and scalars with ``axis=0`` (per-replica losses), reduced over the
    replicas only. A tensor with ``axis=None`` is the sample data batch Keras builds its
    metrics from before evaluating: this worker's own is returned, as the workers' batches
    differ in size when the data end in a partial batch."""

    def reduce(self, reduce_op, value, axis):
        def one(v):
            local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            rank = tf.convert_to_tensor(local).shape.rank
            if rank and axis is None:
                return local  # a sample data batch (see the class docstring)
            return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, v,
                                                                   axis if rank else None)
        return tf.nest.map_structure(one, value)


def use_gpus(n_gpu=0):
    """Let TensorFlow use the first ``n_gpu`` GPUs only (0: all visible ones, the original's
    meaning too: it counted CUDA_VISIBLE_DEVICES). 0 or 1 on a machine without GPUs runs on
    the CPU. Must run before TensorFlow first touches a GPU (UserInputError otherwise)."""
    gpus = tf.config.list_physical_devices("GPU")
    if n_gpu < 0 or n_gpu > max(len(gpus), 1):
        raise UserInputError(f"--n_gpu={n_gpu}: expected 0 (all) to {max(len(gpus), 1)}; "
                             f"{len(gpus)} GPU(s) visible")
    if 0 < n_gpu < len(gpus) and tf.config.get_visible_devices("GPU") != gpus[:n_gpu]:
        try:
            tf.config.set_visible_devices(gpus[:n_gpu], "GPU")
        except RuntimeError:
            raise UserInputError(f"--n_gpu={n_gpu}: TensorFlow already uses all {len(gpus)} "
                                 "GPUs in this process; restart it (or set "
                                 "CUDA_VISIBLE_DEVICES)") from None


def get_strategy(name="default", n_gpu=0):
    """The tf.distribute strategy ``name`` (one of STRATEGIES) on the first ``n_gpu`` GPUs.
    TensorFlow-only: a strategy other than ``default`` distributes TensorFlow variables, and
    is refused when Keras runs on another backend."""
    if name not in STRATEGIES:
        raise UserInputError(f"--strategy={name!r}: expected one of {', '.join(STRATEGIES)}")
    if name != "default" and keras.backend.backend() != "tensorflow":
        raise UserInputError(f"--strategy={name}: tf.distribute needs Keras on TensorFlow "
                             f"(KERAS_BACKEND=tensorflow), this process runs it on "
                             f"{keras.backend.backend()}")
    use_gpus(n_gpu)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            raise UserInputError("--strategy=multi_worker_mirrored: set TF_CONFIG (the cluster's "
                                 "worker addresses and this worker's index) in every worker")
        return MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def global_batch(batch_size, strategy):
    """Samples a step consumes: ``batch_size`` per replica times the replicas in sync."""
    return batch_size * strategy.num_replicas_in_sync


def even_batch(num_samples, batch_size, replicas, what):
    """Per-replica batch for reading ``num_samples`` samples once, in order, on ``replicas``
    replicas: ``batch_size``, or the largest smaller one whose last (partial) global batch
    still gives every replica a sample. tf.distribute splits a partial batch across the
    replicas as evenly as it can, and a replica left with none fails; with one replica
    nothing changes. UserInputError naming ``what`` with fewer samples than replicas."""
    if num_samples < replicas:
        raise UserInputError(f"{what}: {num_samples} sample(s) for {replicas} replicas; every "
                             "replica needs at least one")
    for batch in range(batch_size, 0, -1):
        if not 0 < num_samples % (batch * replicas) < replicas:
            return batch
    return -(-num_samples // replicas)  # one global batch holding every sample


def even_global_batch(num_samples, batch_size, strategy, what):
    """Samples a step of ``strategy`` takes from a set read once: :func:`even_batch` per
    replica times the replicas in sync."""
    replicas = strategy.num_replicas_in_sync
    return replicas * even_batch(num_samples, batch_size, replicas, what)


def shard_by_data(dataset):
    """``dataset`` with DATA auto-sharding: every worker runs the whole input pipeline (same
    seed, same order) and keeps its own part of each global batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def worker_dir(path, strategy):
    """Where this process writes ``path``'s files: ``path`` itself for the chief (or a single
    process), ``path/<task type><index>`` for the other workers of a multi-worker run, so that
    workers do not write over each other (each resumes from its own copy)."""
    if strategy.extended.should_checkpoint:
        return path
    resolver = strategy.cluster_resolver
    return os.path.join(path, f"{resolver.task_type}{resolver.task_id}")


def allow_gpu_memory_growth():
    """Let TensorFlow allocate GPU memory as needed (call before any GPU is used)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
