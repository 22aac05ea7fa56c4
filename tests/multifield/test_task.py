"""Multifield emulator end to end: outputs, exact resumption, generation at given parameters,
bad input through run.py."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfastro.core.checkpoints import save_checkpoint
from tfastro.core.errors import UserInputError
from tfastro.core.precision import base_optimizer
from tfastro.multifield.config import MultifieldConfig
from tfastro.multifield.synthetic import write_synthetic_cmd
from tfastro.multifield.task import build_gan, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESOLUTION = 32
TRAINING_STEPS, TRAINING_SEED = 600, 0


def _quiet(*args):
    pass


@pytest.fixture(scope="module")
def cmd_dir(tmp_path_factory):
    """Ten synthetic simulations (150 maps) of 32^2 in the CAMELS layout."""
    out = tmp_path_factory.mktemp("cmd")
    write_synthetic_cmd(out, resolution=RESOLUTION, num_simulations=10, seed=1)
    return out


def small_config(tmp_path, data_dir, **overrides):
    cfg = MultifieldConfig(data_dir=str(data_dir), resolution=RESOLUTION, latent_dim=16,
                           gan_width=0.125, batch_size=4, max_iterations=2, test_interval=1000,
                           snapshot_interval=1, eval_maps=30, regressor_steps=5,
                           num_generated_maps=3, save_dir=str(tmp_path / "ckpt"),
                           gen_frm_dir=str(tmp_path / "res"))
    return dataclasses.replace(cfg, **overrides)


def _state(gan):
    return [np.asarray(v) for v in gan.weights + gan.d_optimizer.variables
            + gan.g_optimizer.variables]


def test_resumed_run_equals_uninterrupted_run_and_takes_a_new_lr(tmp_path, cmd_dir):
    """Exact resumption; --lr sets both optimizers' rate (default 2e-4, the paper's), also on
    a resumed run."""
    def rates(gan):
        return [float(base_optimizer(o).learning_rate.numpy())
                for o in (gan.d_optimizer, gan.g_optimizer)]

    assert rates(build_gan(small_config(tmp_path, cmd_dir), 3)) == [pytest.approx(2e-4)] * 2
    reference = run(small_config(tmp_path / "a", cmd_dir, max_iterations=3, lr=1e-3), log=_quiet)
    split = small_config(tmp_path / "b", cmd_dir, max_iterations=2, lr=1e-3)
    assert rates(run(split, log=_quiet)) == [pytest.approx(1e-3)] * 2
    assert sorted(os.listdir(split.save_dir)) == ["ckpt-1.keras", "ckpt-2.keras"]
    lines = []
    resumed = run(dataclasses.replace(split, max_iterations=3), log=lines.append)
    assert any("resuming from" in line and "ckpt-2.keras" in line for line in lines)
    assert int(resumed.iteration.numpy()) == 3
    assert int(resumed.d_optimizer.iterations.numpy()) == 3 * split.n_critic
    for a, b in zip(_state(reference), _state(resumed)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    lines = []
    resumed = run(dataclasses.replace(split, lr=5e-5, max_iterations=4), log=lines.append)
    assert sum("--lr=5e-05 applied" in line for line in lines) == 2  # both optimizers
    assert int(resumed.iteration.numpy()) == 4 and rates(resumed) == [pytest.approx(5e-5)] * 2


def test_evaluation_outputs(tmp_path, cmd_dir):
    cfg = small_config(tmp_path, cmd_dir, max_iterations=1, test_interval=1)
    lines = []
    run(cfg, log=lines.append)
    out = os.path.join(cfg.gen_frm_dir, "1")
    with open(os.path.join(out, "evaluation.json")) as f:
        report = json.load(f)
    assert report["iteration"] == 1 and report["maps"] == 15  # the one test simulation
    stats = report["statistics"]
    assert set(stats["spectra"]["channels"]) == {"Mgas", "HI", "B"}
    assert set(stats["cross_correlations"]["pairs"]) == {"Mgas-HI", "Mgas-B", "HI-B"}
    assert set(report["sigma8_ordering"]["sigma8"]) == {0.6, 0.7, 0.8, 0.9, 1.0}
    real, generated = np.load(os.path.join(out, "real.npy")), np.load(os.path.join(out, "generated.npy"))
    assert real.shape == generated.shape == (15, RESOLUTION, RESOLUTION, 3)
    # physical units: Mgas around 10^10.4 (Msun/h)/(Mpc/h)^2, B around 10^-12.5 Gauss
    assert 9 < np.median(np.log10(real[..., 0])) < 12 and -14 < np.median(np.log10(real[..., 2])) < -11
    assert np.all(generated > 0)
    theta = np.load(os.path.join(out, "theta.npy"))
    assert theta.shape == (15, 2) and np.all(theta == theta[0])  # one simulation's parameters
    for png in ("samples.png", "power_spectra.png", "pdfs.png", "cross_correlations.png",
                "amplitude_vs_sigma8.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000, png
    assert any("P(k) R2(log)" in line for line in lines)


def test_generation_at_given_parameters_with_conditioning_check(tmp_path, cmd_dir):
    cfg = small_config(tmp_path, cmd_dir, max_iterations=1)
    run(cfg, log=_quiet)
    test = dataclasses.replace(cfg, is_training=False, generate_params="0.3,0.8;0.45,0.95")
    report = run(test, log=_quiet)
    out = os.path.join(cfg.gen_frm_dir, "1")
    with open(os.path.join(out, "generated_at.json")) as f:
        listing = json.load(f)
    assert [entry["params"] for entry in listing] == [{"Omega_m": 0.3, "sigma_8": 0.8},
                                                     {"Omega_m": 0.45, "sigma_8": 0.95}]
    for k in range(2):
        maps = np.load(os.path.join(out, f"generated_at_{k}.npy"))
        assert maps.shape == (3, RESOLUTION, RESOLUTION, 3) and np.all(maps > 0)
    assert set(report["conditioning"]) == {"generated", "real"}
    assert set(report["conditioning"]["real"]) == {"Omega_m", "sigma_8"}
    assert os.path.exists(os.path.join(out, "conditioning.png"))


@pytest.mark.parametrize("overrides, flag", [
    (dict(data_dir="/nonexistent/cmd"), "--data_dir"),
    (dict(resolution=64), "--resolution=64"),
    (dict(fields="Mgas,XX"), "--fields"),
    (dict(condition_params="Omega_m,h"), "--condition_params"),
    (dict(generate_params="0.3;0.4,0.8"), "--generate_params"),
    (dict(dataset_name="sn"), "--dataset_name"),
    (dict(batch_size=0), "--batch_size"),
])
def test_bad_input_names_the_flag(tmp_path, cmd_dir, overrides, flag):
    with pytest.raises(UserInputError, match=flag.replace("(", r"\(")):
        run(small_config(tmp_path, overrides.pop("data_dir", cmd_dir), **overrides), log=_quiet)
    assert not os.path.exists(tmp_path / "ckpt")


def test_checkpoint_of_another_configuration_is_refused(tmp_path, cmd_dir):
    cfg = small_config(tmp_path, cmd_dir, max_iterations=1)
    save_checkpoint(build_gan(cfg, 3), cfg.save_dir, 1)
    with pytest.raises(UserInputError, match="another configuration.*latent_dim"):
        run(dataclasses.replace(cfg, latent_dim=8, max_iterations=2), log=_quiet)
    assert sorted(os.listdir(cfg.save_dir)) == ["ckpt-1.keras"]


def test_run_py_reports_user_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "run.py"), "--model_name", "multifield",
         "--dataset_name", "cmd", "--data_dir", str(tmp_path / "missing"),
         "--save_dir", str(tmp_path / "ckpt")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "--data_dir" in result.stderr and "Traceback" not in result.stderr
    unknown = subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "--model_name", "gan"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert unknown.returncode == 2 and "--model_name='gan'" in unknown.stderr


def _mean_abs_log_ratio(report):
    """Mean over channels and k bins (up to k_max) of |ln(P_generated / P_real)|."""
    spectra = report["statistics"]["spectra"]
    scored = np.array(spectra["k"]) <= spectra["k_max"]
    return float(np.mean([np.abs(np.log(np.array(c["ratio"])[scored]))
                          for c in spectra["channels"].values()]))


def test_training_learns_the_spectra_and_their_dependence_on_sigma8(tmp_path):
    """A short run on synthetic 32^2 maps: generated P(k) much closer to the real maps' at the
    same parameters than at initialisation, and the P(k) amplitude of generated maps rising
    with sigma_8 as in the data (P proportional to sigma_8^2: x2.8 from 0.6 to 1.0)."""
    from tfastro.multifield.task import build_gan, evaluate, evaluation_indices, open_maps
    data_dir = tmp_path / "cmd"
    write_synthetic_cmd(data_dir, resolution=RESOLUTION, num_simulations=30, seed=1)
    cfg = small_config(tmp_path, data_dir, gan_loss="hinge", n_critic=2, latent_dim=32, batch_size=16,
                       max_iterations=TRAINING_STEPS, snapshot_interval=TRAINING_STEPS,
                       test_interval=TRAINING_STEPS, eval_maps=45, seed=TRAINING_SEED)
    cmd, split = open_maps(cfg)
    os.makedirs(tmp_path / "init")
    initial = evaluate(build_gan(cfg, 3), cmd, evaluation_indices(cmd, split["test"], cfg.eval_maps),
                       cfg, str(tmp_path / "init"), log=_quiet)
    lines = []
    run(cfg, log=lines.append)
    with open(os.path.join(cfg.gen_frm_dir, str(TRAINING_STEPS), "evaluation.json")) as f:
        trained = json.load(f)
    assert all(np.isfinite(float(v)) for line in lines if " itr: " in line
               for v in line.split()[5::2])
    before, after = _mean_abs_log_ratio(initial), _mean_abs_log_ratio(trained)
    assert after < before / 3, (before, after)
    ordering = trained["sigma8_ordering"]
    assert ordering["sigma8"] == [0.6, 0.7, 0.8, 0.9, 1.0]
    for field, channel in ordering["channels"].items():
        assert channel["amplitude"][-1] > channel["amplitude"][0], (field, channel)
    assert np.mean([c["spearman"] for c in ordering["channels"].values()]) > 0.5, ordering
