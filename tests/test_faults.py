"""Fault injection: a tiny training run of each case is killed at a chosen checkpoint write
(after writing its temporary file, before renaming it: what a SIGKILL there leaves), then run
again; the result must equal the uninterrupted run's (weights and optimizer state). The other
write points, the other cases (3D-MIM compiles for minutes on a loaded machine) and the SIGKILL
of a run.py process are behind the slow marker; tests/core/test_loops.py kills both loops of
tiny models at each write."""
import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.core.test_loops import Killed, kill_at_write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _state(model):
    return [np.asarray(v) for v in model.weights + model.optimizer.variables]


def _assert_same(resumed, reference):
    for a, b in zip(_state(reference), _state(resumed), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def _supernova(root):
    from tests.supernova.conftest import small_config
    from tfastro.supernova.io import save_sn_npz
    from tfastro.supernova.synthetic import make_sn_clips
    from tfastro.supernova.task import run
    data = save_sn_npz(root / "sn.npz", *make_sn_clips(6, 6, 8, seed=3))
    # 3 iterations, snapshots at 2 and (the last iteration) 3
    return run, lambda out: small_config(out, data, max_iterations=3, snapshot_interval=2)


def _multifield(root):
    from tests.multifield.test_task import small_config
    from tfastro.multifield.synthetic import write_synthetic_cmd
    from tfastro.multifield.task import run
    write_synthetic_cmd(root / "cmd", resolution=32, num_simulations=10, seed=1)
    return run, lambda out: small_config(out, root / "cmd", max_iterations=3, snapshot_interval=2)


def _turbulence(root):
    from tfastro.turbulence.config import TurbulenceUNetConfig
    from tfastro.turbulence.synthetic import write_synthetic_turbulence
    from tfastro.turbulence.task import run
    write_synthetic_turbulence(root / "turbulence", size=16, snapshots=1, seed=1)
    return (lambda cfg, log: run(cfg, log) and None), lambda out: TurbulenceUNetConfig(
        data_dir=str(root / "turbulence"), turb_classes="mhd,cr_diffusion", tile_size=8,
        epochs=3, patience=3, batch_size=8, saliency_images=1, save_dir=str(out / "ckpt"),
        gen_frm_dir=str(out / "res"))


def _prestellar(root):
    from tfastro.prestellar.config import PrestellarConfig
    from tfastro.prestellar.io import write_prestellar
    from tfastro.prestellar.synthetic import synthetic_cores
    from tfastro.prestellar.task import run
    write_prestellar(root / "cores", synthetic_cores(10, n=8, n_channels=8, seed=4),
                     fits_files=False)
    return run, lambda out: PrestellarConfig(
        data_dir=str(root / "cores"), epochs=3, patience=3, batch_size=4, column_width=4,
        column_depth=1, mc_samples=2, save_dir=str(out / "ckpt"), gen_frm_dir=str(out / "res"))


def _dm2gal(root):
    from tests.dm2gal.test_task import GRID, small_config
    from tfastro.dm2gal.synthetic import TNGSyntheticParams, write_synthetic_tng
    from tfastro.dm2gal.task import run
    write_synthetic_tng(root / "tng", TNGSyntheticParams(grid=GRID, particles_per_side=64,
                                                         seed=2))
    # a checkpoint every iteration, validations at 2, 4 and 5: write 3 resumes from ckpt-2
    # (written after its validation), write 4 from ckpt-3 (inside an epoch)
    return run, lambda out: small_config(out, root / "tng", field_dir=str(root / "fields"),
                                         max_iterations=5, snapshot_interval=1,
                                         keep_checkpoints=9, weighted_sampling=True)


CASES = {"supernova": _supernova, "multifield": _multifield, "turbulence": _turbulence,
         "prestellar": _prestellar, "dm2gal": _dm2gal}


def _model_of(result):
    """The trained model a case's ``run`` returns (epoch cases: (model, metrics))."""
    return result[0] if isinstance(result, tuple) else result


@pytest.mark.parametrize("case, write", [
    ("prestellar", 2),
    *[pytest.param(case, write, marks=pytest.mark.slow) for case, write in [
        ("supernova", 1), ("supernova", 2), ("multifield", 1), ("multifield", 2), ("turbulence", 1),
        ("turbulence", 3), ("turbulence", 4), ("prestellar", 1), ("prestellar", 4), ("dm2gal", 3),
        ("dm2gal", 4)]]])
def test_run_killed_at_a_write_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, case,
                                                                write):
    """Iteration cases write ckpt-2, ckpt-3 (dm2gal ckpt-1 .. ckpt-5); epoch cases a
    checkpoint per epoch, then best.keras."""
    run, config = CASES[case](tmp_path)
    train = _train(case, run)
    reference = train(config(tmp_path / "whole"))
    cfg = config(tmp_path / "killed")
    with monkeypatch.context() as patch:
        writes = kill_at_write(patch, write)
        with pytest.raises(Killed):
            train(cfg)
    assert len(writes) == write
    lines = []
    resumed = train(cfg, lines.append)
    assert any(line.startswith("removed ") and ".partial." in line for line in lines)
    _assert_same(resumed, reference)
    assert sorted(os.listdir(cfg.save_dir)) == sorted(os.listdir(config(tmp_path / "whole")
                                                                 .save_dir))


def _train(case, run):
    """``(cfg, log) -> model``: the case's training (epoch cases: without the evaluation)."""
    if case in ("turbulence", "prestellar"):
        from importlib import import_module
        task = import_module(f"tfastro.{case}.task")

        def train(cfg, log=lambda *a: None):
            with pytest.MonkeyPatch.context() as patch:  # evaluation is not what is tested
                patch.setattr(task, "evaluate", lambda *args: None)
                return task.train(cfg, log)[0]
        return train
    return lambda cfg, log=lambda *a: None: _model_of(run(cfg, log=log))


def test_diverging_run_stops_in_one_line_and_reports_nothing(tmp_path):
    """ColumnNet at --lr=1e6: the loss overflows in the first epoch; no checkpoint and no
    evaluation are written."""
    from tfastro.core.loops import TrainingDiverged
    run, config = _prestellar(tmp_path)
    cfg = dataclasses.replace(config(tmp_path), lr=1e6)
    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch 1, iteration \d+: "
                                               r"loss (inf|nan); stopped before writing a "
                                               r"checkpoint, no checkpoint was written"):
        run(cfg, log=lambda *a: None)
    assert not os.path.exists(cfg.save_dir) and not os.path.exists(cfg.gen_frm_dir)


def test_every_file_of_a_run_is_written_atomically(tmp_path, monkeypatch):
    """A prestellar run (training, checkpoints, evaluation arrays, figures, reports): every
    file it leaves was renamed onto its name from a ``.partial`` file (what a kill cannot leave
    half written), and no ``.partial`` file stays."""
    from tfastro.core.atomic import PARTIAL
    run, config = _prestellar(tmp_path)
    cfg = config(tmp_path)
    renamed = {}
    replace = os.replace

    def recording_replace(source, destination):
        renamed[os.path.abspath(destination)] = os.fspath(source)
        replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    run(cfg, log=lambda *a: None)
    written = [os.path.join(folder, name) for top in (cfg.save_dir, cfg.gen_frm_dir)
               for folder, _, names in os.walk(top) for name in names]
    assert {os.path.splitext(path)[1] for path in written} >= {".keras", ".npy", ".png",
                                                                ".json"}
    for path in written:
        assert PARTIAL.search(renamed.get(os.path.abspath(path), "")), path
        assert not PARTIAL.search(path)


@pytest.mark.slow
def test_sigkill_of_run_py_then_rerun_equals_the_uninterrupted_run(tmp_path):
    """run.py killed (SIGKILL) as soon as its first checkpoint exists, its lock left behind,
    then run again: a stale lock taken over, the same final weights as an uninterrupted run."""
    import keras
    run, config = _supernova(tmp_path)
    cfg = config(tmp_path / "whole")
    reference = run(dataclasses.replace(cfg, max_iterations=6, snapshot_interval=1),
                    log=lambda *a: None)
    killed = config(tmp_path / "killed")
    command = [sys.executable, os.path.join(REPO, "run.py"), "--dataset_name", "sn",
               "--train_data_paths", cfg.train_data_paths, "--valid_data_paths",
               cfg.valid_data_paths, "--save_dir", killed.save_dir, "--gen_frm_dir",
               killed.gen_frm_dir, "--img_width", "8", "--img_depth", "8", "--input_length",
               "2", "--total_length", "6", "--num_hidden", "4,4", "--filter_size", "3",
               "--patch_size", "2", "--batch_size", "2", "--max_iterations", "6",
               "--test_interval", "1000", "--snapshot_interval", "1", "--remat", "false"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = os.path.join(killed.save_dir, "ckpt-1.keras")
    while not os.path.exists(first) and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert os.path.exists(os.path.join(killed.save_dir, "tfastro.lock"))
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "taking over" in rerun.stdout
    model = keras.saving.load_model(os.path.join(killed.save_dir, "ckpt-6.keras"))
    for a, b in zip(reference.weights, model.weights, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
