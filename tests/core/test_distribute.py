"""--mixed_precision, --strategy and --jit_compile for every --model_name: dtypes and loss
scaling of each model's train step, a whole run resumed under mixed precision, and two
MultiWorkerMirroredStrategy workers on loopback stepping exactly like one process."""
import dataclasses
import functools
import json
import os
import runpy
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfastro.core.distribute import even_batch, get_strategy, global_batch
from tfastro.core.errors import UserInputError
from tfastro.core.precision import base_optimizer, policy_name, precision_policy
from tfastro.dm2gal import task as dm2gal
from tfastro.dm2gal.config import DM2GalConfig
from tfastro.multifield import task as multifield
from tfastro.multifield.config import MultifieldConfig
from tfastro.prestellar import task as prestellar
from tfastro.prestellar.config import PrestellarConfig
from tfastro.supernova import task as mim3d
from tfastro.supernova.config import MIM3DConfig
from tfastro.turbulence import task as turbulence
from tfastro.turbulence.config import TurbulenceCNNConfig, TurbulenceUNetConfig
from tfastro.dm2gal.io import STANDARDISATION
from tfastro.prestellar.synthetic import synthetic_cores

POLICIES = ("mixed_float16", "mixed_bfloat16")


def _inputs(rng, *shape):
    return rng.uniform(size=shape).astype("float32")


def tiny_model(name, policy, rng):
    """(compiled model of run.py --model_name ``name`` with ``--mixed_precision policy``, one
    training batch, the optimizer that applies its update)."""
    if name == "mim":
        cfg = MIM3DConfig(img_width=8, img_depth=8, input_length=2, total_length=4,
                          num_hidden="4,4", filter_size=3, reverse_input=False,
                          remat="false", mixed_precision=policy)
        model = mim3d.build_model(cfg)
        return model, _inputs(rng, 2, 4, 8, 8, 8, 1), model.optimizer
    if name == "multifield":
        cfg = MultifieldConfig(resolution=32, latent_dim=8, gan_width=1 / 16,
                               n_critic=1, mixed_precision=policy)
        gan = multifield.build_gan(cfg, 3)
        return gan, (2 * _inputs(rng, 2, 32, 32, 3) - 1, _inputs(rng, 2, 2)), gan.g_optimizer
    if name == "dm2gal":
        model = dm2gal.build_model(DM2GalConfig(window=15, dm2gal_ch=2,
                                                mixed_precision=policy), STANDARDISATION)
        return model, (_inputs(rng, 4, 15, 15, 15, 2), _inputs(rng, 4, 1)), model.optimizer
    if name.startswith("turbulence"):
        config = TurbulenceCNNConfig if name == "turbulence_cnn" else TurbulenceUNetConfig
        model = turbulence.build_model(config(tile_size=64, mixed_precision=policy))
        target = rng.integers(0, 5, 4) if name == "turbulence_cnn" else _inputs(rng, 4, 64, 64, 1)
        return model, (_inputs(rng, 4, 64, 64, 1), target), model.optimizer
    cores = synthetic_cores(1, n=8, n_channels=8, seed=0)
    model = prestellar.build_model(PrestellarConfig(column_width=4, mixed_precision=policy),
                                   cores, [0])
    return model, (_inputs(rng, 2, 8, 8, 8, 1), _inputs(rng, 2, 8, 8, 8, 2)), model.optimizer


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", ["mim", "multifield", "dm2gal", "turbulence_cnn",
                                  "turbulence_unet", "prestellar"])
def test_train_step_in_mixed_precision(name, policy, rng):
    """Layers compute in float16 / bfloat16, every variable stays float32, the losses (and the
    outputs of the models trained by Keras' own loss) are float32 and finite. Under
    mixed_float16 a LossScaleOptimizer applies the update (Keras wraps compiled optimizers,
    the GAN wraps both of its own): it starts at loss scale 2^15 and halves it after each step
    whose float16 gradients overflowed, skipping that step, until one is applied. The global
    policy is float32 again after building."""
    model, batch, optimizer = tiny_model(name, policy, rng)
    assert keras.config.dtype_policy().name == "float32"
    compute = policy.split("_")[1]
    assert compute in {layer.compute_dtype for layer in model._flatten_layers() if layer.weights}
    before = [np.asarray(v) for v in model.trainable_weights]
    for step in range(1, 17):  # eager train steps until one updates the weights
        logs = model.train_step(batch)
        assert logs and all(v.dtype == "float32" and np.isfinite(float(v))
                            for v in logs.values()), logs
        if any(np.any(np.asarray(v) != b) for v, b in zip(model.trainable_weights, before)):
            break
    assert int(optimizer.iterations.numpy()) == 1, step  # one applied update
    assert {v.dtype for v in model.weights} <= {"float32", "int64"}
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    if scaled:
        assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** (16 - step)
    else:
        assert step == 1
    if name not in ("mim", "multifield"):  # these compute their losses in float32 themselves
        assert model(batch[0]).dtype == "float32"


def test_mim_precision_bfloat16_is_an_alias():
    cfg = MIM3DConfig(dataset_name="sn", precision="bfloat16")
    assert cfg.policy == policy_name("mixed_bfloat16") == "mixed_bfloat16"
    assert policy_name() == "float32"
    with pytest.raises(UserInputError, match="--mixed_precision=mixed_float16"):
        mim3d.validate_config(dataclasses.replace(cfg, mixed_precision="mixed_float16"))
    with pytest.raises(UserInputError, match="--mixed_precision='half'"):
        policy_name("half")


def test_policy_is_restored_after_the_block_and_on_errors():
    with pytest.raises(RuntimeError):
        with precision_policy("mixed_bfloat16"):
            assert keras.layers.Dense(2).compute_dtype == "bfloat16"
            raise RuntimeError
    assert keras.config.dtype_policy().name == "float32"


def test_strategy_flags_are_checked(monkeypatch):
    with pytest.raises(UserInputError, match="--strategy='horovod'"):
        get_strategy("horovod")
    with pytest.raises(UserInputError, match="--n_gpu=9"):
        get_strategy("default", n_gpu=9)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserInputError, match="TF_CONFIG"):
        get_strategy("multi_worker_mirrored")
    strategy = get_strategy("mirrored", n_gpu=1)  # no GPU: the CPU, one replica
    assert global_batch(8, strategy) == 8 * strategy.num_replicas_in_sync
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(UserInputError, match="--strategy=mirrored: tf.distribute needs Keras on "
                                             "TensorFlow .* runs it on jax"):
        get_strategy("mirrored")
    assert get_strategy("default") is tf.distribute.get_strategy()


@pytest.mark.parametrize("task, config", [
    (mim3d, functools.partial(MIM3DConfig, dataset_name="sn")), (multifield, MultifieldConfig),
    (dm2gal, DM2GalConfig), (turbulence, TurbulenceCNNConfig),
    (turbulence, TurbulenceUNetConfig), (prestellar, PrestellarConfig)])
def test_evaluation_runs_apply_n_gpu(task, config):
    """--is_training=False runs use the first --n_gpu GPUs too: an impossible count is named
    before any data or checkpoint is read."""
    with pytest.raises(UserInputError, match="--n_gpu=9"):
        task.test(config(n_gpu=9))


def test_even_batch_leaves_no_replica_without_samples():
    """The last, partial global batch is split across the replicas; none may be left empty."""
    assert even_batch(16, 4, 1, "cores") == even_batch(17, 4, 1, "cores") == 4
    assert even_batch(16, 8, 2, "cores") == 8  # whole global batches of 16
    assert even_batch(3, 4, 2, "cores") == 4  # one batch of 3: replicas get 2 and 1
    assert even_batch(17, 8, 2, "cores") == 7  # 16 + 1 would starve a replica: 14 + 3
    assert even_batch(7, 1, 4, "cores") == 2  # batch 1: 4 + 3; batch 2 per replica: one of 7
    for n, b, r in ((17, 8, 2), (7, 1, 4), (9, 3, 3), (101, 16, 4)):
        last = n % (r * even_batch(n, b, r, "cores"))
        assert last == 0 or last >= r
    with pytest.raises(UserInputError, match="validation tiles: 1 sample"):
        even_batch(1, 8, 2, "validation tiles")


def test_prestellar_run_resumes_in_mixed_float16_under_mirrored(tmp_path):
    """A whole run (mirrored strategy, mixed_float16) writes a checkpoint whose loss-scaled
    optimizer, step count and float16 layers come back when the run resumes."""
    from tfastro.prestellar.io import write_prestellar
    from tfastro.prestellar.synthetic import synthetic_cores
    write_prestellar(tmp_path / "cores", synthetic_cores(10, n=8, n_channels=8, seed=4),
                     fits_files=False)
    cfg = PrestellarConfig(data_dir=str(tmp_path / "cores"), epochs=1, column_width=4,
                           batch_size=4, mc_samples=2, mixed_precision="mixed_float16",
                           strategy="mirrored", save_dir=str(tmp_path / "ckpt"),
                           gen_frm_dir=str(tmp_path / "res"))
    first = prestellar.run(cfg, log=lambda *a: None)
    lines = []
    model, metrics = prestellar.train(dataclasses.replace(cfg, epochs=2), log=lines.append)
    assert any("resuming" in line for line in lines)
    assert (first["iteration"], metrics["iteration"]) == (2, 4)  # 8 training cores, batch 4
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert int(model.optimizer.step_counter.numpy()) == 4
    assert base_optimizer(model.optimizer) is model.optimizer.inner_optimizer
    assert {layer.compute_dtype for layer in model.layers if layer.weights} == {"float16",
                                                                                "float32"}
    assert np.isfinite(metrics["network"]["log_density"]["rmse"])
    assert keras.config.dtype_policy().name == "float32"


# --- two workers on loopback ------------------------------------------------------------------

WORKER = """
import json, os, sys
import numpy as np
import keras
from tfastro.core.distribute import get_strategy, global_batch, shard_by_data, worker_dir
from tfastro.dm2gal.model import DM2Gal

def train(strategy, per_replica_batch):
    import tensorflow as tf
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(16, 15, 15, 15, 2)).astype("float32")
    targets = rng.normal(size=(16, 1)).astype("float32")
    batch = global_batch(per_replica_batch, strategy)
    data = shard_by_data(tf.data.Dataset.from_tensor_slices((windows, targets)).batch(batch))
    # 3 validation samples: one partial batch, split 2 + 1 between two workers
    validation = shard_by_data(tf.data.Dataset.from_tensor_slices(
        (windows[:3] + 1, targets[:3])).batch(batch))
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = DM2Gal(ch=2, window=15, hidden=8, batch_norm=False, l2=1e-2)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.build(windows.shape)
    initial = model.get_weights()
    history = model.fit(data, epochs=2, verbose=0, validation_data=validation).history
    return initial, model.get_weights(), history["loss"], history["val_loss"]

if __name__ == "__main__":
    strategy = get_strategy("multi_worker_mirrored")
    _, weights, losses, validation_losses = train(strategy, 4)
    np.savez(sys.argv[1], *weights)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": losses,
                      "validation_losses": validation_losses,
                      "dir": worker_dir("out", strategy)}))
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_end_equal_to_one_process_with_the_same_global_batch(tmp_path):
    """Two worker processes (MultiWorkerMirroredStrategy, TF_CONFIG on 127.0.0.1) train
    DM2Gal for 4 SGD steps with per-replica batch 4 on a fixed data set, each keeping its share
    of every global batch of 8 (DATA sharding); both end with the weights of one process
    stepping through the same global batches of 8, up to float reduction order. A validation
    set of 3 samples (one partial batch, 2 + 1 samples on the two workers) gives the
    validation loss of one process."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
        workers.append(subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"w{index}.npz")], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    single = runpy.run_path(str(script), run_name="reference")["train"](get_strategy(), 8)
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["dir"] for r in results] == ["out", os.path.join("out", "worker1")]
    initial, final, losses, validation_losses = single
    for result in results:
        np.testing.assert_allclose(result["losses"], losses, rtol=1e-5)
        np.testing.assert_allclose(result["validation_losses"], validation_losses, rtol=1e-5)
    w0, w1 = (np.load(tmp_path / f"w{i}.npz") for i in range(2))
    assert len(w0.files) == len(final) == 22  # 9 convolutions, 2 dense layers: kernel, bias
    for i, reference in enumerate(final):
        np.testing.assert_array_equal(w0[f"arr_{i}"], w1[f"arr_{i}"])
        np.testing.assert_allclose(w0[f"arr_{i}"], reference, rtol=1e-5, atol=1e-6)
    assert max(np.abs(a - b).max() for a, b in zip(initial, final)) > 1e-3  # it trained
