"""Settings of a 3D-MIM run: the original run.py's flags, names and defaults, plus tfastro's."""
import dataclasses

from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class MIM3DConfig:
    """Settings of a 3D-MIM run; field names and meanings are those of run.py's flags."""
    is_training: bool = True
    dataset_name: str = "sn"
    train_data_paths: str = ""
    valid_data_paths: str = ""
    save_dir: str = "checkpoints/mim3d"
    gen_frm_dir: str = "results/mim3d"
    input_length: int = 10
    total_length: int = 20
    img_width: int = 32
    img_height: int = 0
    img_depth: int = 32
    img_channel: int = 1
    model_name: str = "mim"
    pretrained_model: str = ""
    num_hidden: str = "64,64,64,64"
    filter_size: int = 5
    stride: int = 1
    patch_size: int = 2
    layer_norm: bool = True
    scheduled_sampling: bool = True
    sampling_stop_iter: int = 50000
    sampling_start_value: float = 1.0
    sampling_changing_rate: float = 0.00002
    lr: float = 0.001
    reverse_input: bool = True
    reverse_img: bool = False
    batch_size: int = 8
    max_iterations: int = 80000
    display_interval: int = 1
    test_interval: int = 1000
    snapshot_interval: int = 1000
    num_save_samples: int = 10
    n_gpu: int = 0
    allow_gpu_growth: bool = False
    precision: str = "float32"
    mixed_precision: str = "none"
    jit_compile: bool = False
    remat: str = "auto"
    peephole: str = "voxel"
    strategy: str = "default"
    fresh_start: bool = False
    keep_checkpoints: int = 5
    seed: int = 0

    @property
    def grid(self):
        """(X, Y, Z) voxels; img_height 0 means img_width."""
        return (self.img_width, self.img_height or self.img_width, self.img_depth)

    @property
    def policy(self):
        """Keras dtype policy of --mixed_precision (or its alias --precision bfloat16)."""
        from tfastro.core.precision import policy_name
        return policy_name(self.mixed_precision, self.precision)

    @property
    def hidden(self):
        """num_hidden as a tuple of ints (UserInputError naming --num_hidden otherwise)."""
        from tfastro.supernova.model import check_num_hidden
        text = self.num_hidden if isinstance(self.num_hidden, str) else ",".join(map(str, self.num_hidden))
        try:
            return check_num_hidden(v.strip() for v in text.split(","))
        except ValueError as err:
            raise UserInputError(f"--num_hidden={text!r}: {err}") from None


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    def need(ok, message):
        if not ok:
            raise UserInputError(message)

    need(cfg.dataset_name == "sn", f"--dataset_name={cfg.dataset_name!r}: tfastro's 3D-MIM "
         "reads 3D voxel clips, dataset 'sn' (.npz with clips, dims, input_raw_data)")
    need(cfg.model_name == "mim", f"--model_name={cfg.model_name!r}: only 'mim' is available")
    cfg.hidden, cfg.policy  # noqa: B018  (validate --num_hidden, --mixed_precision)
    need(cfg.input_length >= 1, f"--input_length={cfg.input_length}: must be at least 1")
    need(cfg.input_length < cfg.total_length, f"--input_length={cfg.input_length} must be "
         f"smaller than --total_length={cfg.total_length}")
    for flag, value in (("img_width", cfg.img_width), ("img_depth", cfg.img_depth),
                        ("img_channel", cfg.img_channel), ("filter_size", cfg.filter_size),
                        ("patch_size", cfg.patch_size), ("batch_size", cfg.batch_size),
                        ("display_interval", cfg.display_interval),
                        ("test_interval", cfg.test_interval),
                        ("snapshot_interval", cfg.snapshot_interval)):
        need(value >= 1, f"--{flag}={value}: must be a positive integer")
    need(cfg.img_height >= 0, f"--img_height={cfg.img_height}: must be >= 0 (0: same as img_width)")
    need(cfg.stride == 1, f"--stride={cfg.stride}: 3D-MIM convolutions use stride 1 only")
    for flag, size in zip(("img_width", "img_height", "img_depth"), cfg.grid):
        need(size % cfg.patch_size == 0, f"--{flag}={size} is not divisible by "
             f"--patch_size={cfg.patch_size}")
    need(cfg.num_save_samples >= 0, f"--num_save_samples={cfg.num_save_samples}: must be >= 0")
