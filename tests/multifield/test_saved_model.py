"""A saved MultifieldGAN alone gives maps in physical units at physical parameters: the .keras
file of a GAN built as the task builds it reproduces the task's generated_at maps and the fixed
log10 ranges written out by hand; the task refuses a checkpoint of other fields; checkpoints
saved before generators recorded their names still load."""
import dataclasses
import json
import zipfile

import keras
import numpy as np
import pytest

from tfastro.core.checkpoints import save_checkpoint
from tfastro.core.errors import UserInputError
from tfastro.multifield.config import MultifieldConfig
from tfastro.multifield.task import build_gan, generate_at, restore

PARAMS = np.array([[0.3, 0.8], [0.45, 0.95]])  # (Omega_m, sigma_8)


def _config(root, **overrides):
    cfg = MultifieldConfig(resolution=32, latent_dim=16, gan_width=0.125, num_generated_maps=3,
                           save_dir=str(root / "ckpt"), gen_frm_dir=str(root / "res"))
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A GAN of the default fields and parameters built and checkpointed as the task does, and
    the task's maps at PARAMS (--generate_params): {"model": its .keras path, "generated_at",
    "seed"}."""
    root = tmp_path_factory.mktemp("multifield")
    generate = ";".join(",".join(map(str, row)) for row in PARAMS)
    cfg = _config(root, generate_params=generate)
    keras.utils.set_random_seed(0)
    gan = build_gan(cfg, 3)
    path = save_checkpoint(gan, cfg.save_dir, 0)
    generate_at(gan, cfg, cfg.field_names, str(root), log=lambda *a: None)
    task = [np.load(root / f"generated_at_{k}.npy") for k in range(len(PARAMS))]
    return {"model": path, "generated_at": task, "seed": cfg.seed}


def test_loaded_gan_gives_physical_maps_at_physical_parameters(saved):
    gan = keras.saving.load_model(saved["model"])
    assert gan.generator.fields == ("Mgas", "HI", "B")
    assert gan.generator.param_names == ("Omega_m", "sigma_8")
    for k, (row, task) in enumerate(zip(PARAMS, saved["generated_at"])):
        rows = np.repeat(row[None], len(task), axis=0)
        maps = gan.generate_physical(rows, seed=saved["seed"] + k)
        np.testing.assert_allclose(maps, task, rtol=1e-5)
        # by hand: theta onto [-1, 1] over Omega_m in [0.1, 0.5], sigma_8 in [0.6, 1.0]; the
        # channels back from [-1, 1] to log10 ranges (7, 15), (0, 14), (-16, -3)
        theta = 2 * (rows - [0.1, 0.6]) / 0.4 - 1
        x = gan.generate(theta.astype("float32"), seed=saved["seed"] + k)
        lo, hi = np.array([7.0, 0.0, -16.0]), np.array([15.0, 14.0, -3.0])
        np.testing.assert_allclose(maps, 10.0 ** (lo + (x + 1) * (hi - lo) / 2), rtol=1e-5)
        log_maps = np.log10(maps)
        assert np.all((log_maps > lo - 1e-4) & (log_maps < hi + 1e-4))


def _without_names(path, out):
    """A copy of the .keras file ``path`` whose generators record no names, as checkpoints
    were saved before they did."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                for key in ("fields", "param_names"):
                    del config["config"]["generator"]["config"][key]
                content = json.dumps(config).encode()
            target.writestr(item, content)
    return str(out)


def test_checkpoint_saved_before_the_names_loads(saved, tmp_path):
    old = _without_names(saved["model"], tmp_path / "old.keras")
    gan = keras.saving.load_model(old)
    assert gan.generator.fields is None and gan.ema_generator.param_names is None
    theta = np.zeros((2, 2), "float32")
    np.testing.assert_array_equal(gan.generate(theta, seed=0),
                                  keras.saving.load_model(saved["model"]).generate(theta, seed=0))
    with pytest.raises(ValueError, match="records no field and parameter names"):
        gan.generate_physical(PARAMS, seed=0)
    gan = build_gan(_config(tmp_path), 3)  # the task restores it into the flags' GAN
    restore(gan, old)
    assert gan.generator.fields == ("Mgas", "HI", "B")


def test_task_refuses_a_checkpoint_of_other_fields(saved, tmp_path):
    with pytest.raises(UserInputError, match=r"generator fields: checkpoint \['Mgas', 'HI', "
                                             r"'B'\], flags \['HI', 'Mgas', 'B'\]"):
        restore(build_gan(_config(tmp_path, fields="HI,Mgas,B"), 3), saved["model"])


def test_bad_names_are_refused():
    from tfastro.multifield.model import Generator
    with pytest.raises(ValueError, match=r"fields=\('Mgas', 'HI'\): expected 3 names"):
        Generator(32, 3, 16, 2, 0.125, fields=("Mgas", "HI"))
    with pytest.raises(ValueError, match="expected distinct names"):
        Generator(32, 1, 16, 2, 0.125, param_names=("Omega_m", "h"))
