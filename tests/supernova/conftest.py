"""Small synthetic sn data sets and configurations for task tests."""
import dataclasses

import pytest

from tfastro.supernova.config import MIM3DConfig
from tfastro.supernova.io import save_sn_npz
from tfastro.supernova.synthetic import make_sn_clips

GRID = 8


def small_config(tmp_path, data_path, **overrides):
    """A tiny but complete 3D-MIM configuration writing under ``tmp_path``."""
    cfg = MIM3DConfig(dataset_name="sn", train_data_paths=str(data_path),
                      valid_data_paths=str(data_path),
                      save_dir=str(tmp_path / "ckpt"), gen_frm_dir=str(tmp_path / "res"),
                      img_width=GRID, img_depth=GRID, input_length=2, total_length=6,
                      num_hidden="4,4", filter_size=3, patch_size=2, batch_size=2,
                      max_iterations=2, test_interval=1000, snapshot_interval=1,
                      num_save_samples=1, remat="false")
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(scope="session")
def sn_file(tmp_path_factory):
    """Six synthetic 6-frame clips of 8^3 (turbulent medium)."""
    frames, clips = make_sn_clips(6, 6, GRID, seed=3)
    return save_sn_npz(tmp_path_factory.mktemp("sn") / "sn.npz", frames, clips)
