"""run.py and run.sh are drop-ins for the original: same flag names, defaults and sample run.
Every other --model_name gets its own case's flags and defaults, and a flag the chosen model
does not read is refused."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest
from absl import flags

from tfastro.core.config import SHARED, settings
from tfastro.core.distribute import STRATEGIES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_PY = os.path.join(REPO, "run.py")

# the spec's "Flags of run.py", and the data paths of the original's run.py
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
    "train_data_paths": "./data/SampleData.npz", "valid_data_paths": "./data/SampleData.npz",
}
ORIGINAL_WITHOUT_DEFAULT = ("save_dir", "gen_frm_dir")  # the spec names no default
TFASTRO_ADDITIONS = {
    "precision": "float32", "mixed_precision": "none", "jit_compile": False, "remat": "auto",
    "peephole": "voxel", "strategy": "default", "fresh_start": False, "keep_checkpoints": 5,
    "seed": 0, "normalisation": "max",
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
# defaults of the other models, from their specs (optimizer settings) and the names they read
CASE_DEFAULTS = {
    "multifield": {"model_name": "multifield", "dataset_name": "cmd", "lr": 2e-4},
    "dm2gal": {"model_name": "dm2gal", "dataset_name": "tng", "lr": 1e-5, "batch_size": 32,
               "window": 65},
    "turbulence_cnn": {"model_name": "turbulence_cnn", "dataset_name": "turbulence",
                       "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64},
    "turbulence_unet": {"model_name": "turbulence_unet", "dataset_name": "turbulence",
                        "lr": 1e-2, "weight_decay": 1e-2, "batch_size": 32},
    "prestellar": {"model_name": "prestellar", "dataset_name": "prestellar"},
    "unet": {"model_name": "unet", "dataset_name": "sn", "input_length": 10, "total_length": 20,
             "img_width": 32, "batch_size": 8, "horizon": 0, "rollout": False},
}
# TensorFlow's own start-up lines on stderr (written whatever TF_CPP_MIN_LOG_LEVEL says)
TF_STARTUP = re.compile(r"WARNING: All log messages before absl::InitializeLog|"
                        r"[IWEF]\d{4} \S+\s+\d+ \S+:\d+\]|To enable the following instructions")


@pytest.fixture(scope="module")
def run_py():
    spec = importlib.util.spec_from_file_location("tfastro_run_py", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_flags(run_py, name, argv=()):
    """absl flags of ``python run.py --model_name name *argv``, parsed into fresh FlagValues."""
    _, config = run_py.model_config(name)
    values = flags.FlagValues()
    run_py.define_flags(config, values)
    run_py.parse(["run.py", "--model_name", name, *argv], name, values)
    return values, config


def refusal(run_py, capsys, name, *argv):
    """The one stderr line of run.py refusing ``argv`` for ``name`` (exit status 2)."""
    with pytest.raises(SystemExit) as exit_:
        model_flags(run_py, name, argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def run_cli(*argv, cwd):
    out = subprocess.run([sys.executable, RUN_PY, *argv], capture_output=True, text=True,
                         cwd=cwd, timeout=300)
    return out, [line for line in out.stderr.splitlines() if line and not TF_STARTUP.match(line)]


def helpfull_defaults(text):
    """{flag: default as printed} of run.py's own section of ``--helpfull``."""
    own = text.split("\nflags:\n", 1)[1].split("\nabsl.", 1)[0]
    return dict(re.findall(r"--(?:\[no\])?(\w+): .*?\(default:\s+'([^']*)'\)", own, re.S))


# the gas particles a 3D-MIM forecast flags as affected (with --is_training=False)
TFASTRO_ADDITIONS.update(particle_files="", particle_frame=-1, particle_cube_size=0.0,
                         particle_centre="")


def test_every_original_flag_has_its_default(run_py):
    values, _ = model_flags(run_py, "mim")
    assert set(values) == (set(ORIGINAL_DEFAULTS) | set(ORIGINAL_WITHOUT_DEFAULT)
                           | set(TFASTRO_ADDITIONS))
    for name, default in {**ORIGINAL_DEFAULTS, **TFASTRO_ADDITIONS}.items():
        assert values[name].default == default, name
        assert type(values[name].default) is type(default), name


def test_run_sh_passes_exactly_the_original_flags():
    with open(os.path.join(REPO, "run.sh")) as f:
        text = f.read()
    assert text.startswith("#!/bin/bash\npython -u run.py")
    assert text.rstrip().endswith("|& tee sample.log")
    passed = re.findall(r"(--\w+(?:=\S+| [^\s\\]+))", text)
    assert passed == ORIGINAL_RUN_SH


def expected_defaults(name):
    return {**ORIGINAL_DEFAULTS, **TFASTRO_ADDITIONS} if name == "mim" else CASE_DEFAULTS[name]


@pytest.mark.parametrize("name", ["mim", *CASE_DEFAULTS])
def test_each_model_gets_its_own_flags_and_defaults(run_py, name):
    """The flags are exactly the config's settings, with its help and defaults; the values
    the specs fix are the defaults; the config of a run receives every flag's value."""
    values, config = model_flags(run_py, name)
    declared = {s.name: s for s in settings(config)}
    assert set(values) == set(declared)
    for setting in declared.values():
        assert setting.help and values[setting.name].help.endswith(setting.help)
        if setting.choices:
            assert values[setting.name].parser.enum_values == list(setting.choices)
        assert values[setting.name].default == setting.default, setting.name
    for flag, default in expected_defaults(name).items():
        assert values[flag].default == default, flag
    assert run_py.make_config(config, values) == config()
    values, _ = model_flags(run_py, name, ["--lr=0.5", "--seed", "7", "--nois_training"])
    cfg = run_py.make_config(config, values)
    assert (cfg.lr, cfg.seed, cfg.is_training, cfg.model_name) == (0.5, 7, False, name)


def test_shared_settings_have_one_help_text_and_the_machinerys_choices():
    assert SHARED["strategy"][1] == STRATEGIES
    assert SHARED["mixed_precision"][1] == ("none", "mixed_float16", "mixed_bfloat16")


@pytest.mark.parametrize("name, flag", [
    ("mim", "--tile_size=64"), ("mim", "--epochs=3"), ("turbulence_cnn", "--max_iterations=3"),
    ("turbulence_cnn", "--ssim_alpha=0.1"), ("turbulence_unet", "--flattened_power"),
    ("turbulence_unet", "--test_interval=10"), ("prestellar", "--display_interval=5"),
    ("dm2gal", "--allow_gpu_growth"), ("multifield", "--window=17"), ("mim", "--no_such_flag=1"),
    ("unet", "--num_hidden=8,8"), ("mim", "--horizon=2"),
])
def test_a_flag_the_model_does_not_read_is_refused(run_py, capsys, name, flag):
    line = refusal(run_py, capsys, name, flag)
    bare = flag.split("=")[0]
    assert line.startswith(f"run.py: error: {bare} is not a setting of --model_name {name}")


def test_stray_arguments_and_bad_values_are_one_line_errors(run_py, capsys):
    line = refusal(run_py, capsys, "mim", "--is_training", "False")
    assert "unexpected argument 'False'" in line
    assert "--batch_size=abc" in refusal(run_py, capsys, "dm2gal", "--batch_size=abc")
    assert "hinge" in refusal(run_py, capsys, "multifield", "--gan_loss=lsgan")


def test_model_name_is_read_in_both_spellings(run_py):
    assert run_py.chosen_model(["run.py", "--lr", "1"]) == "mim"
    assert run_py.chosen_model(["run.py", "--model_name", "dm2gal", "--lr", "1"]) == "dm2gal"
    assert run_py.chosen_model(["run.py", "--model_name=prestellar"]) == "prestellar"
    assert run_py.chosen_model(["run.py", "--model_name=dm2gal", "--model_name",
                                "multifield"]) == "multifield"


@pytest.mark.parametrize("old, new", [("multifield_gan", "multifield"), ("turb_cnn",
                                      "turbulence_cnn"), ("turb_unet", "turbulence_unet"),
                                      ("column", "prestellar")])
def test_an_old_model_name_is_refused_naming_the_new_one(tmp_path, old, new):
    out, lines = run_cli(f"--model_name={old}", cwd=tmp_path)
    assert out.returncode == 2
    assert lines == [f"run.py: error: --model_name={old!r} is now --model_name {new}"]


@pytest.mark.parametrize("name", ["mim", "turbulence_unet"])
def test_helpfull_shows_the_models_defaults(tmp_path, name):
    out, _ = run_cli("--model_name", name, "--helpfull", cwd=tmp_path)
    shown = helpfull_defaults(out.stdout)
    for flag, default in expected_defaults(name).items():
        assert shown[flag] == (str(default).lower() if isinstance(default, bool)
                               else str(default)), flag
    if name == "turbulence_unet":
        assert {"turb_target", "ssim_alpha", "tile_size"} <= set(shown)
        assert not {"flattened_power", "blur_sigmas", "max_iterations"} & set(shown)
    assert sorted(os.listdir(tmp_path)) == []


def test_a_flag_of_another_model_exits_2_in_one_line(tmp_path):
    out, lines = run_cli("--tile_size", "64", "--save_dir", str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 2
    assert lines == ["run.py: error: --tile_size is not a setting of --model_name mim (python "
                     "run.py --model_name mim --helpfull lists them)"]
    assert sorted(os.listdir(tmp_path)) == []


def test_a_tiny_3d_mim_run_through_run_py(tmp_path):
    """run.py's flags reach the task: one iteration on 8^3 clips writes its checkpoint and
    forecast scores."""
    from tfastro.supernova.io import save_sn_npz
    from tfastro.supernova.synthetic import make_sn_clips
    data = str(save_sn_npz(tmp_path / "sn.npz", *make_sn_clips(4, 6, 8, seed=3)))
    out, _ = run_cli("--model_name=mim", "--dataset_name", "sn", "--train_data_paths", data,
                     "--valid_data_paths", data, "--save_dir", "c", "--gen_frm_dir", "r",
                     "--img_width", "8", "--img_depth", "8", "--input_length", "2",
                     "--total_length", "6", "--num_hidden", "4,4", "--filter_size", "3",
                     "--batch_size", "2", "--max_iterations", "1", "--snapshot_interval", "1",
                     "--test_interval", "1", "--num_save_samples", "1", "--remat", "false",
                     "--noreverse_input", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert os.listdir(tmp_path / "c") == ["ckpt-1.keras"]
    assert os.path.isfile(tmp_path / "r" / "1" / "metrics.json")
