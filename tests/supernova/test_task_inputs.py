"""Bad input to the 3D-MIM task: a clear error naming the file or flag, nothing on disk touched."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.supernova.conftest import small_config
from tfastro.core.errors import UserInputError
from tfastro.supernova.task import run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _snapshot(root):
    """{relative path: (size, mtime)} of every file below ``root``."""
    out = {}
    for folder, _, files in os.walk(root):
        for f in files:
            p = os.path.join(folder, f)
            out[os.path.relpath(p, root)] = (os.path.getsize(p), os.path.getmtime(p))
    return out


def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _arrays(frames=12, grid=8, value=0.5):
    raw = np.full((frames, 1, grid, grid, grid), value, np.float32)
    clips = np.array([[[0, 3], [6, 3]], [[3, 3], [9, 3]]], np.int32)
    return dict(input_raw_data=raw, clips=clips, dims=np.array([[1, grid, grid, grid]]))


def _bad_cases(tmp_path, sn_file):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    nan = _arrays()
    nan["input_raw_data"][3, 0, 1, 1, 1] = np.nan
    no_dims = _arrays()
    del no_dims["dims"]
    return [
        (dict(train_data_paths=str(tmp_path / "absent.npz")), "absent.npz"),
        (dict(train_data_paths=str(garbage)), "garbage.npz"),
        (dict(train_data_paths=_write(tmp_path / "nodims.npz", **no_dims)), "dims"),
        (dict(train_data_paths=_write(tmp_path / "nan.npz", **nan)), "nan.npz"),
        (dict(img_width=16), "--img_width"),
        (dict(img_channel=2), "--img_channel"),
        (dict(img_depth=6, patch_size=4), "--patch_size"),
        (dict(input_length=6), "--input_length"),
        (dict(total_length=7), "total_length"),
        (dict(num_hidden="4,x"), "--num_hidden"),
        (dict(num_hidden="4,0"), "--num_hidden"),
        (dict(num_hidden="4"), "--num_hidden"),
        (dict(num_hidden="4,8"), "--num_hidden"),
        (dict(dataset_name="mnist"), "--dataset_name"),
        (dict(batch_size=7), "--batch_size"),
        (dict(pretrained_model=str(tmp_path / "nothing")), "--pretrained_model"),
    ]


def test_each_bad_input_is_named_and_touches_nothing(tmp_path, sn_file):
    for overrides, named in _bad_cases(tmp_path, sn_file):
        cfg = small_config(tmp_path, sn_file, **overrides)
        before = _snapshot(tmp_path)
        with pytest.raises(UserInputError, match=named.replace("-", r"\-")):
            run(cfg, log=lambda *a: None)
        assert _snapshot(tmp_path) == before, overrides
        assert not os.path.exists(cfg.save_dir) and not os.path.exists(cfg.gen_frm_dir)


def test_checkpoint_of_another_configuration_is_refused(tmp_path, sn_file):
    cfg = small_config(tmp_path, sn_file, max_iterations=1)
    run(cfg, log=lambda *a: None)
    ckpt = os.path.join(cfg.save_dir, "ckpt-1.keras")
    before = _snapshot(tmp_path)
    other = dataclasses.replace(cfg, num_hidden="8,8", save_dir=str(tmp_path / "other"),
                                pretrained_model=cfg.save_dir)
    with pytest.raises(UserInputError, match=r"--pretrained_model.*num_hidden"):
        run(other, log=lambda *a: None)
    grid = dataclasses.replace(cfg, filter_size=5, is_training=False, pretrained_model=ckpt)
    with pytest.raises(UserInputError, match=r"filter_size"):
        run(grid, log=lambda *a: None)
    assert _snapshot(tmp_path) == before


def test_run_py_reports_user_errors_without_traceback(tmp_path):
    missing = tmp_path / "missing.npz"
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "run.py"), "--dataset_name", "sn",
         "--train_data_paths", str(missing), "--valid_data_paths", str(missing),
         "--save_dir", str(tmp_path / "c"), "--gen_frm_dir", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2
    assert "missing.npz" in out.stderr and "Traceback" not in out.stderr
    assert sorted(os.listdir(tmp_path)) == []
