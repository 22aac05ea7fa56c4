"""Bad input over every --model_name: each one refused with a one-line UserInputError naming
the flag or the file and what was expected, before anything is written or trained; a few
rows through run.py (exit status 2, one line on stderr)."""
import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from tests.test_run_py import run_cli
from tfastro.core.errors import UserInputError
from tfastro.dm2gal.config import DM2GalConfig
from tfastro.multifield.config import MultifieldConfig
from tfastro.prestellar.config import PrestellarConfig
from tfastro.supernova.config import MIM3DConfig
from tfastro.turbulence.config import TurbulenceCNNConfig, TurbulenceUNetConfig

# --model_name -> (config class, the settings a run needs besides the bad one, task module)
MODELS = {
    "mim": (MIM3DConfig, dict(dataset_name="sn"), "supernova"),
    "multifield": (MultifieldConfig, {}, "multifield"),
    "dm2gal": (DM2GalConfig, {}, "dm2gal"),
    "turbulence_cnn": (TurbulenceCNNConfig, {}, "turbulence"),
    "turbulence_unet": (TurbulenceUNetConfig, {}, "turbulence"),
    "prestellar": (PrestellarConfig, {}, "prestellar"),
}


def _snapshot(root):
    """{relative path: (size, mtime)} of every file and folder below ``root``."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = (os.path.getsize(path), os.path.getmtime(path))
    return out


def make_config(name, tmp_path, **overrides):
    """The config of ``name`` writing under ``tmp_path`` (ckpt/, res/, fields/)."""
    config, needed, _ = MODELS[name]
    paths = dict(save_dir=str(tmp_path / "ckpt"), gen_frm_dir=str(tmp_path / "res"))
    if name == "dm2gal":
        paths["field_dir"] = str(tmp_path / "fields")
    return config(**{**paths, **needed, **overrides})


def refused(name, cfg, tmp_path):
    """The one-line message of the UserInputError ``--model_name name`` raises for ``cfg``,
    after checking that nothing under ``tmp_path`` was written."""
    import importlib
    task = importlib.import_module(f"tfastro.{MODELS[name][2]}.task")
    before = _snapshot(tmp_path)
    with pytest.raises(UserInputError) as err:
        task.run(cfg, log=lambda *a: None)
    assert _snapshot(tmp_path) == before
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    return message


# (model, bad setting, what the message says); every model also gets the rows of EVERY_MODEL
FLAG_ROWS = [
    ("mim", dict(lr=-1.0), "--lr=-1.0: expected > 0"),
    ("mim", dict(max_iterations=-5), "--max_iterations=-5: expected >= 1"),
    ("mim", dict(max_iterations=0), "--max_iterations=0: expected >= 1"),
    ("mim", dict(num_hidden="4,x"), "--num_hidden='4,x': item 'x' is not an integer"),
    ("mim", dict(num_hidden="4,-4"), "--num_hidden='4,-4'"),
    ("mim", dict(sampling_start_value=1.5), "--sampling_start_value=1.5: expected a "
                                            "probability in [0, 1]"),
    ("mim", dict(sampling_changing_rate=-1e-5), "--sampling_changing_rate=-1e-05"),
    ("mim", dict(sampling_stop_iter=-1), "--sampling_stop_iter=-1"),
    ("mim", dict(display_interval=0), "--display_interval=0: expected >= 1"),
    ("multifield", dict(lr=-5.0), "--lr=-5.0: expected > 0"),
    ("multifield", dict(max_iterations=0), "--max_iterations=0"),
    ("multifield", dict(snapshot_interval=0), "--snapshot_interval=0"),
    ("multifield", dict(eval_maps=0), "--eval_maps=0"),
    ("dm2gal", dict(lr=0.0), "--lr=0.0: expected > 0"),
    ("dm2gal", dict(max_iterations=0), "--max_iterations=0: expected >= 1"),
    ("dm2gal", dict(stellar_threshold=-1.0), "--stellar_threshold=-1: expected >= 0"),
    ("dm2gal", dict(weight_decay=-0.1), "--weight_decay=-0.1: expected >= 0"),
    ("dm2gal", dict(window=4097), "--window=4097"),
    ("dm2gal", dict(test_region="64,3000"), "--test_region='64,3000'"),
    ("dm2gal", dict(test_region="900,100"), "--test_region='900,100'"),
    ("dm2gal", dict(validation_region="500,1000"), "overlap"),
    ("dm2gal", dict(test_interval=0), "--test_interval=0"),
    ("turbulence_cnn", dict(lr=-1e-3), "--lr=-0.001: expected > 0"),
    ("turbulence_cnn", dict(epochs=0), "--epochs=0: expected >= 1"),
    ("turbulence_cnn", dict(occlusion_patch=256), "--occlusion_patch=256: expected 0 (none) "
                                                  ".. --tile_size=128"),
    ("turbulence_cnn", dict(projection=0), "--projection=0"),
    ("turbulence_unet", dict(lr=0.0), "--lr=0.0"),
    ("turbulence_unet", dict(patience=0), "--patience=0"),
    ("turbulence_unet", dict(batch_size=0), "--batch_size=0: expected >= 1"),
    ("turbulence_unet", dict(ssim_alpha=-1.0), "--ssim_alpha=-1.0"),
    ("prestellar", dict(lr=-1e-3), "--lr=-0.001: expected > 0"),
    ("prestellar", dict(batch_size=0), "--batch_size=0"),
    ("prestellar", dict(column_dropout=1.5), "--column_dropout=1.5"),
]
EVERY_MODEL = [(dict(keep_checkpoints=0), "--keep_checkpoints=0: expected >= 1"),
               (dict(seed=-1), "--seed=-1: expected >= 0"),
               (dict(n_gpu=-1), "--n_gpu=-1: expected >= 0")]
FLAG_ROWS += [(name, bad, says) for name in MODELS for bad, says in EVERY_MODEL]


@pytest.mark.parametrize("name, bad, says", FLAG_ROWS,
                         ids=[f"{n}-{','.join(b)}={list(b.values())[0]}" for n, b, _ in FLAG_ROWS])
def test_an_out_of_range_setting_is_refused_before_anything_is_written(tmp_path, name, bad,
                                                                        says):
    assert says in refused(name, make_config(name, tmp_path, **bad), tmp_path)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("flag", ["save_dir", "gen_frm_dir"])
def test_an_output_folder_naming_a_file_is_refused_at_start(tmp_path, name, flag):
    path = tmp_path / "a_file"
    path.write_text("kept")
    message = refused(name, make_config(name, tmp_path, **{flag: str(path)}), tmp_path)
    assert message == f"--{flag}={str(path)!r} is a file; expected a folder (made when absent)"
    assert path.read_text() == "kept"


def test_dm2gal_field_dir_naming_a_file_is_refused(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("kept")
    assert "--field_dir=" in refused("dm2gal", make_config("dm2gal", tmp_path,
                                                           field_dir=str(path)), tmp_path)


def test_mim_train_data_paths_naming_a_folder_says_so(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    message = refused("mim", make_config("mim", tmp_path, train_data_paths=str(folder)),
                      tmp_path)
    assert message.startswith(f"--train_data_paths: {folder}: a folder; expected an .npz file")


# --------------------------------------------------------------------------- data files

def test_a_truncated_field_in_field_dir_is_named(tmp_path):
    """What a kill while writing a field left before fields were written atomically."""
    fields = tmp_path / "fields"
    fields.mkdir()
    np.save(fields / "dark_matter.npy", np.zeros((16, 16, 16), np.float32))
    whole = (fields / "dark_matter.npy").read_bytes()
    (fields / "dark_matter.npy").write_bytes(whole[: len(whole) // 2])
    message = refused("dm2gal", make_config("dm2gal", tmp_path, grid_size=16, window=5,
                                            test_region="0,4", validation_region="6,10"),
                      tmp_path)
    assert message.startswith(f"{fields / 'dark_matter.npy'}: not a readable npy field")


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_an_interrupted_field_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch,
                                                                       suffix):
    from tfastro.dm2gal import io as tng

    def killed(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(tng.np, "save", killed)
    monkeypatch.setattr(tng.h5py, "File", killed)
    path = tmp_path / f"stellar{suffix}"
    with pytest.raises(KeyboardInterrupt):
        tng.save_field(path, np.ones((4, 4, 4)))
    assert not path.exists()
    monkeypatch.undo()
    tng.save_field(path, np.ones((4, 4, 4)))
    np.testing.assert_array_equal(tng.load_field(path, mmap=False), np.ones((4, 4, 4)))
    assert sorted(os.listdir(tmp_path)) == [f"stellar{suffix}"]


@pytest.fixture(scope="module")
def cores_dir(tmp_path_factory):
    from tfastro.prestellar.io import write_prestellar
    from tfastro.prestellar.synthetic import synthetic_cores
    out = tmp_path_factory.mktemp("prestellar")
    write_prestellar(out, synthetic_cores(4, n=8, n_channels=8, seed=0))
    return out


@pytest.mark.parametrize("dataset, value, says", [
    ("ppv", np.nan, "dataset 'ppv' holds 1 non-finite value(s)"),
    ("ppv", np.inf, "dataset 'ppv' holds 1 non-finite value(s)"),
    ("log_density", np.nan, "dataset 'log_density' holds 1 non-finite value(s)"),
    ("ppv", "text", "dataset 'ppv' holds |S4 values; expected numbers"),
])
def test_prestellar_non_numeric_or_non_finite_arrays_are_named(tmp_path, cores_dir, dataset,
                                                                value, says):
    data = tmp_path / "data"
    data.mkdir()
    (data / "prestellar.h5").write_bytes((cores_dir / "prestellar.h5").read_bytes())
    with h5py.File(data / "prestellar.h5", "r+") as handle:
        if isinstance(value, str):
            del handle[dataset]
            handle[dataset] = np.full((4, 8, 8, 8), value.encode())
        else:
            handle[dataset][1, 2, 3, 4] = value
    message = refused("prestellar", make_config("prestellar", tmp_path, data_dir=str(data)),
                      tmp_path)
    assert message.startswith(f"--data_dir={str(data)!r}: {data / 'prestellar.h5'}: {says}")


def test_a_non_finite_prestellar_fits_cube_is_named(tmp_path, cores_dir):
    from astropy.io import fits

    from tfastro.prestellar.io import read_prestellar
    path = tmp_path / "core.fits"
    with fits.open(cores_dir / "fits" / "core_0001.fits") as hdus:
        hdus["V_LOS"].data[1, 2, 3] = np.nan
        hdus.writeto(path)
    with pytest.raises(UserInputError) as err:
        read_prestellar(path)
    assert str(err.value) == (f"{path}: extension V_LOS holds 1 non-finite value(s) (NaN or "
                              "inf as float32); expected finite numbers")


@pytest.fixture(scope="module")
def turbulence_dir(tmp_path_factory):
    """Two classes of one 32^3 synthetic snapshot each."""
    from tfastro.turbulence.synthetic import write_synthetic_turbulence
    out = tmp_path_factory.mktemp("turbulence")
    write_synthetic_turbulence(out, size=32, snapshots=1, seed=0)
    return out


@pytest.mark.parametrize("name", ["turbulence_cnn", "turbulence_unet"])
@pytest.mark.parametrize("is_training", [True, False])
def test_a_projection_longer_than_a_part_is_refused_before_training(tmp_path, turbulence_dir,
                                                                    name, is_training):
    cfg = make_config(name, tmp_path, data_dir=str(turbulence_dir), projection=100,
                      tile_size=64, turb_classes="mhd,cr_diffusion", is_training=is_training)
    if not is_training:  # an evaluation refuses it before reading its checkpoint
        cfg = dataclasses.replace(cfg, pretrained_model=str(tmp_path / "absent.keras"))
    message = refused(name, cfg, tmp_path)
    assert message.startswith("--projection=100: ")
    assert "mhd" in message and "expected 1 .. 5 slices" in message


# --------------------------------------------------------------------------- multifield

@pytest.fixture(scope="module")
def cmd_dir(tmp_path_factory):
    """Ten synthetic simulations of 32^2 maps: 8 training (120 maps), 1 test simulation."""
    from tfastro.multifield.synthetic import write_synthetic_cmd
    out = tmp_path_factory.mktemp("cmd")
    write_synthetic_cmd(out, resolution=32, num_simulations=10, seed=1)
    return out


def gan_config(tmp_path, cmd_dir, **overrides):
    settings = dict(data_dir=str(cmd_dir), resolution=32, latent_dim=8, gan_width=0.0625,
                    batch_size=4, max_iterations=1, test_interval=1000, snapshot_interval=1,
                    eval_maps=6, regressor_steps=2)
    return make_config("multifield", tmp_path, **{**settings, **overrides})


def test_a_gan_batch_larger_than_its_training_maps_is_refused(tmp_path, cmd_dir):
    message = refused("multifield", gan_config(tmp_path, cmd_dir, batch_size=121), tmp_path)
    assert message == (f"--batch_size=121 x 1 replica(s): the training simulations of "
                       f"--data_dir={str(cmd_dir)!r} hold only 120 maps")


@pytest.fixture(scope="module")
def gan_checkpoint(tmp_path_factory, cmd_dir):
    """The config of a run whose save_dir holds an untrained GAN's checkpoint, ckpt-0.keras."""
    from tfastro.core.checkpoints import save_checkpoint
    from tfastro.multifield.task import build_gan
    cfg = gan_config(tmp_path_factory.mktemp("gan"), cmd_dir, is_training=False)
    save_checkpoint(build_gan(cfg, 3), cfg.save_dir, 0)
    return cfg


def test_evaluation_maps_of_one_parameter_vector_report_r2_as_not_defined(tmp_path,
                                                                          gan_checkpoint,
                                                                          recwarn):
    """--eval_maps 6 <= 15 maps of one test simulation: the regressor's R^2 over them divides
    by zero variance. It is null in evaluation.json and "not defined" in the log, with the
    reason; its RMSE is still scored. The regressor's fit passes no shuffle=True to a dataset
    that shuffles itself (Keras warns of it)."""
    from tfastro.multifield.task import run
    lines = []
    report = run(dataclasses.replace(gan_checkpoint, gen_frm_dir=str(tmp_path / "res")),
                 log=lines.append)
    with open(tmp_path / "res" / "0" / "evaluation.json") as f:
        stored = json.load(f)
    assert stored["conditioning"] == report["conditioning"]
    theta = np.load(tmp_path / "res" / "0" / "theta.npy")
    assert len(theta) == 6 and np.all(theta == theta[0])
    for where in ("generated", "real"):
        for name in ("Omega_m", "sigma_8"):
            score = stored["conditioning"][where][name]
            assert score["r2"] is None and "all equal" in score["r2_undefined"]
            assert score["rmse"] >= 0
    log = "\n".join(lines)
    assert "Omega_m R2 not defined (the 6 true Omega_m values are all equal" in log
    assert not [w for w in recwarn if "shuffle=True" in str(w.message)]


def test_a_file_at_the_results_folder_of_an_iteration_is_named(tmp_path, gan_checkpoint):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "0").write_text("kept")
    cfg = dataclasses.replace(gan_checkpoint, gen_frm_dir=str(tmp_path / "res"))
    message = refused("multifield", cfg, tmp_path)
    assert message == (f"--gen_frm_dir: {str(tmp_path / 'res' / '0')!r} is a file; expected "
                       "the results folder of iteration 0 (move the file away)")
    assert (tmp_path / "res" / "0").read_text() == "kept"


# --------------------------------------------------------------------------- through run.py

@pytest.mark.parametrize("argv, says", [
    (["--model_name", "multifield", "--lr", "-5"], "--lr=-5.0: expected > 0"),
    (["--model_name=mim", "--dataset_name=sn", "--max_iterations=-5"],
     "--max_iterations=-5: expected >= 1"),
    (["--model_name", "dm2gal", "stray"], "unexpected argument 'stray'"),
])
def test_run_py_refuses_in_one_line_and_writes_nothing(tmp_path, argv, says):
    out, lines = run_cli(*argv, "--save_dir", "ckpt", "--gen_frm_dir", "res", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("run.py: error: ") and says in lines[0], lines
    assert os.listdir(tmp_path) == []
