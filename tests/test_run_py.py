"""run.py and run.sh are drop-ins for the original: same flag names, defaults and sample run."""
import os
import re

from absl import flags

from tfastro.core.flags import define_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ORIGINAL_DEFAULTS = {
    "is_training": True, "dataset_name": "mnist", "input_length": 10, "total_length": 20,
    "img_width": 32, "img_depth": 32, "img_height": 0, "img_channel": 1, "model_name": "mim",
    "pretrained_model": "", "num_hidden": "64,64,64,64", "filter_size": 5, "stride": 1,
    "patch_size": 2, "layer_norm": True, "scheduled_sampling": True,
    "sampling_stop_iter": 50000, "sampling_start_value": 1.0,
    "sampling_changing_rate": 0.00002, "lr": 0.001, "reverse_input": True,
    "reverse_img": False, "batch_size": 8, "max_iterations": 80000, "display_interval": 1,
    "test_interval": 1000, "snapshot_interval": 1000, "num_save_samples": 10, "n_gpu": 0,
    "allow_gpu_growth": False,
}
ORIGINAL_RUN_SH = [
    "--is_training=True", "--dataset_name sn", "--train_data_paths ./data/sn/SampleData.npz",
    "--valid_data_paths ./data/sn/SampleData.npz", "--save_dir checkpoints/Sample",
    "--gen_frm_dir results/Sample", "--model_name mim", "--allow_gpu_growth=True",
    "--img_channel 1", "--img_width 32", "--input_length 1", "--total_length 20",
    "--max_iterations 1", "--display_interval 1", "--test_interval 12",
    "--snapshot_interval 1", "--num_hidden 32,32,32,32", "--batch_size 1", "--patch_size 1",
    "--num_save_samples 12",
]


def test_every_original_flag_has_its_default():
    define_flags()
    for name, default in ORIGINAL_DEFAULTS.items():
        assert flags.FLAGS[name].default == default, name
    for name in ("train_data_paths", "valid_data_paths", "save_dir", "gen_frm_dir"):
        assert name in flags.FLAGS


def test_run_sh_passes_exactly_the_original_flags():
    with open(os.path.join(REPO, "run.sh")) as f:
        text = f.read()
    assert text.startswith("#!/bin/bash\npython -u run.py")
    assert text.rstrip().endswith("|& tee sample.log")
    passed = re.findall(r"(--\w+(?:=\S+| [^\s\\]+))", text)
    assert passed == ORIGINAL_RUN_SH
