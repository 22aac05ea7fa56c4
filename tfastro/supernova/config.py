"""Settings of a supernova run: 3D-MIM's (the original run.py's flags, names and defaults,
plus tfastro's) and the 3D U-Net's."""
import dataclasses

from tfastro.core.config import RunSettings, check_settings, need, need_positive, setting, shared
from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class MIM3DConfig(RunSettings):
    """Settings of a 3D-MIM run (run.py --model_name mim): the original run.py's flags with
    their names and defaults, then tfastro's."""
    is_training: bool = shared(True)
    dataset_name: str = setting("mnist", "Dataset kind; tfastro reads 'sn' (3D voxel clips).")
    train_data_paths: str = setting("./data/SampleData.npz", "Training .npz file(s), "
                                    "comma-separated (concatenated).")
    valid_data_paths: str = setting("./data/SampleData.npz", "Validation/test .npz file(s), "
                                    "comma-separated (concatenated).")
    save_dir: str = shared("checkpoints/mnist_predrnn_pp")
    gen_frm_dir: str = setting("results/mnist_predrnn_pp", "Directory of forecasts and scores, "
                               "one sub-directory per iteration.")
    input_length: int = setting(10, "Context frames given to the model.")
    total_length: int = setting(20, "Frames per clip (context + forecast).")
    img_width: int = setting(32, "Grid size along x.")
    img_height: int = setting(0, "Grid size along y (0: same as img_width).")
    img_depth: int = setting(32, "Grid size along z.")
    img_channel: int = setting(1, "Channels per voxel.")
    model_name: str = shared("mim")
    num_hidden: str = setting("64,64,64,64", "Hidden channels per layer, comma-separated.")
    filter_size: int = setting(5, "Convolution kernel size.")
    stride: int = setting(1, "Convolution stride (only 1, as in the original).")
    patch_size: int = setting(2, "Fold patch_size^3 voxel blocks into channels.")
    layer_norm: bool = setting(True, "Tensor layer norm after every gate convolution.")
    scheduled_sampling: bool = setting(True, "Feed back true frames with probability eta.")
    sampling_stop_iter: int = setting(50000, "Iteration from which eta is 0.")
    sampling_start_value: float = setting(1.0, "Initial eta.")
    sampling_changing_rate: float = setting(0.00002, "Decrease of eta per iteration.")
    lr: float = setting(0.001, "Learning rate of Adam (beta_1 0.95, beta_2 0.9995, with a "
                        "moving average of the weights).")
    reverse_input: bool = setting(True, "Also train on time-reversed clips.")
    reverse_img: bool = setting(False, "Also train on clips flipped along z.")
    batch_size: int = shared(8)
    max_iterations: int = shared(80000)
    display_interval: int = shared(1)
    test_interval: int = setting(1000, "Forecast and score the validation data every N "
                                 "iterations.")
    snapshot_interval: int = shared(1000)
    num_save_samples: int = setting(10, "Clips whose forecasts are saved (npy, png, gif).")
    allow_gpu_growth: bool = shared(False)
    # tfastro's additions
    precision: str = shared("float32")
    remat: str = setting("auto", "Recompute activations in the backward pass; auto: when they "
                         "would take more than a quarter of the memory.", ("auto", "true", "false"))
    peephole: str = setting("voxel", "Peephole weights per voxel (original) or per channel (any "
                            "grid size).", ("voxel", "channel"))
    seed: int = setting(0, "Seed of the initial weights, shuffling and scheduled sampling.")
    normalisation: str = setting(
        "max", "How the data's frames map the density to [0, 1]: max (density / the file's "
        "largest, the original's) or log (log10 density between the bounds the .npz states); "
        "must match the data and the checkpoint; forecasts are also written as densities "
        "(pd_density.npy) when the .npz states its normalisation.", ("max", "log"))
    particle_files: str = setting("", "With --is_training=False: two SPH snapshots (HDF5, "
                                  "PartType0), comma-separated: the gas at the first frame of the "
                                  "first validation clip and the true later snapshot; the gas "
                                  "particles the forecast flags as affected (density change > "
                                  "10 %) and their recall, precision and flagged fraction are "
                                  "written to particles.json.")
    particle_frame: int = setting(-1, "Frame of the clip (0 = its first) the later snapshot of "
                                  "--particle_files shows; -1: the last.")
    particle_cube_size: float = setting(0.0, "Side of the cube the clip was deposited on, in the "
                                        "snapshots' length unit; 0: the whole box.")
    particle_centre: str = setting("", "Centre x,y,z of that cube in the snapshots' length unit; "
                                   "empty: the box centre.")

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
    def particle_frame_index(self):
        """--particle_frame as an index into the clip (-1: the last frame)."""
        return self.particle_frame + (self.total_length if self.particle_frame < 0 else 0)

    @property
    def particle_cube_centre(self):
        """--particle_centre as (x, y, z) floats, or None (UserInputError naming the flag)."""
        if not self.particle_centre:
            return None
        try:
            centre = tuple(float(v) for v in self.particle_centre.split(","))
        except ValueError:
            centre = ()
        need(len(centre) == 3, f"--particle_centre={self.particle_centre!r}: expected three "
             "comma-separated numbers x,y,z")
        return centre

    @property
    def hidden(self):
        """num_hidden as a tuple of ints (UserInputError naming --num_hidden otherwise)."""
        from tfastro.supernova.model import check_num_hidden
        text = (self.num_hidden if isinstance(self.num_hidden, str)
                else ",".join(map(str, self.num_hidden)))
        items = [v.strip() for v in text.split(",")]
        for item in items:
            try:
                int(item)
            except ValueError:
                raise UserInputError(f"--num_hidden={text!r}: item {item!r} is not an integer "
                                     "(expected comma-separated channel counts)") from None
        try:
            return check_num_hidden([int(v) for v in items])
        except ValueError as err:
            raise UserInputError(f"--num_hidden={text!r}: {err}") from None


def _as_in_mim(name, default=dataclasses.MISSING):
    """A field declared as MIM3DConfig's ``name`` (help text, allowed values), with its default
    or ``default``."""
    field = MIM3DConfig.__dataclass_fields__[name]
    return dataclasses.field(default=field.default if default is dataclasses.MISSING else default,
                             metadata=field.metadata)


@dataclasses.dataclass
class UNet3DConfig(RunSettings):
    """Settings of a 3D U-Net run (run.py --model_name unet): 3D-MIM's flags where they mean
    the same, then the U-Net's own."""
    model_name: str = shared("unet")
    is_training: bool = _as_in_mim("is_training")
    dataset_name: str = _as_in_mim("dataset_name", "sn")
    train_data_paths: str = _as_in_mim("train_data_paths")
    valid_data_paths: str = _as_in_mim("valid_data_paths")
    save_dir: str = _as_in_mim("save_dir", "checkpoints/sn_unet")
    gen_frm_dir: str = _as_in_mim("gen_frm_dir", "results/sn_unet")
    input_length: int = _as_in_mim("input_length")
    total_length: int = _as_in_mim("total_length")
    img_width: int = _as_in_mim("img_width")
    img_height: int = _as_in_mim("img_height")
    img_depth: int = _as_in_mim("img_depth")
    img_channel: int = _as_in_mim("img_channel")
    filter_size: int = _as_in_mim("filter_size", 3)
    lr: float = setting(0.003, "Learning rate of Adam.")
    batch_size: int = _as_in_mim("batch_size")
    max_iterations: int = _as_in_mim("max_iterations", 5000)
    display_interval: int = _as_in_mim("display_interval", 100)
    test_interval: int = _as_in_mim("test_interval")
    snapshot_interval: int = _as_in_mim("snapshot_interval")
    num_save_samples: int = _as_in_mim("num_save_samples")
    allow_gpu_growth: bool = _as_in_mim("allow_gpu_growth")
    normalisation: str = _as_in_mim("normalisation")
    horizon: int = setting(0, "Frames forecast in one shot after the last context frame (0: "
                           "all total_length - input_length of them); the forecast continues "
                           "from the last frames forecast.")
    rollout: bool = setting(False, "Forecast the next frame only and roll it out frame by "
                            "frame (horizon 1).")
    filters: str = setting("16,32,64", "Channels per U-Net level, comma-separated (each "
                           "further level halves the grid).")
    padding: str = setting("periodic", "Convolution padding: periodic (the box wraps around) "
                           "or zeros.", ("periodic", "zeros"))
    log_input: bool = setting(True, "The U-Net reads log10 of the fields (floored at 1e-4 of "
                              "the maximum); it still forecasts the fields themselves.")

    @property
    def grid(self):
        """(X, Y, Z) voxels; img_height 0 means img_width."""
        return (self.img_width, self.img_height or self.img_width, self.img_depth)

    @property
    def policy(self):
        """Keras dtype policy of --mixed_precision."""
        from tfastro.core.precision import policy_name
        return policy_name(self.mixed_precision)

    @property
    def levels(self):
        """filters as a tuple of ints (UserInputError naming --filters otherwise)."""
        try:
            levels = tuple(int(v) for v in self.filters.split(","))
        except ValueError:
            levels = ()
        need(levels and min(levels) >= 1, f"--filters={self.filters!r}: expected positive "
             "integers, comma-separated")
        return levels

    @property
    def frames_per_call(self):
        """Frames the U-Net forecasts in one call: 1 with --rollout, else --horizon (0: every
        output frame of a clip)."""
        if self.rollout:
            return 1
        return self.horizon or self.total_length - self.input_length


def _validate_unet(cfg):
    need(cfg.dataset_name == "sn", f"--dataset_name={cfg.dataset_name!r}: the U-Net reads "
         "3D voxel clips, dataset 'sn' (.npz with clips, dims, input_raw_data)")
    cfg.policy  # noqa: B018  (validate --mixed_precision)
    need(cfg.input_length >= 1, f"--input_length={cfg.input_length}: must be at least 1")
    need(cfg.input_length < cfg.total_length, f"--input_length={cfg.input_length} must be "
         f"smaller than --total_length={cfg.total_length}")
    need(not (cfg.rollout and cfg.horizon not in (0, 1)), f"--horizon={cfg.horizon} with "
         "--rollout: a rollout forecasts one frame a step (leave --horizon at 0 or 1)")
    need(0 <= cfg.horizon <= cfg.total_length - cfg.input_length, f"--horizon={cfg.horizon}: "
         f"expected 0 .. total_length - input_length = {cfg.total_length - cfg.input_length}")
    need_positive(cfg, "img_width", "img_depth", "img_channel", "filter_size", "batch_size",
                  "display_interval", "test_interval", "snapshot_interval")
    need(cfg.filter_size % 2 == 1, f"--filter_size={cfg.filter_size}: must be odd")
    need(cfg.img_height >= 0, f"--img_height={cfg.img_height}: must be >= 0 (0: same as img_width)")
    multiple = 2 ** (len(cfg.levels) - 1)
    for flag, size in zip(("img_width", "img_height", "img_depth"), cfg.grid):
        need(size % multiple == 0, f"--{flag}={size}: the U-Net's {len(cfg.levels)} levels "
             f"(--filters={cfg.filters!r}) need a multiple of {multiple}")
    need(cfg.lr > 0, f"--lr={cfg.lr}: must be > 0")
    need(cfg.num_save_samples >= 0, f"--num_save_samples={cfg.num_save_samples}: must be >= 0")


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    check_settings(cfg)
    if cfg.model_name == "unet":
        return _validate_unet(cfg)
    need(cfg.dataset_name == "sn", f"--dataset_name={cfg.dataset_name!r}: tfastro's 3D-MIM "
         "reads 3D voxel clips, dataset 'sn' (.npz with clips, dims, input_raw_data)")
    cfg.hidden, cfg.policy  # noqa: B018  (validate --num_hidden, --mixed_precision)
    need(cfg.input_length >= 1, f"--input_length={cfg.input_length}: must be at least 1")
    need(cfg.input_length < cfg.total_length, f"--input_length={cfg.input_length} must be "
         f"smaller than --total_length={cfg.total_length}")
    need_positive(cfg, "img_width", "img_depth", "img_channel", "filter_size", "patch_size")
    need(cfg.img_height >= 0, f"--img_height={cfg.img_height}: must be >= 0 (0: same as img_width)")
    need(cfg.stride == 1, f"--stride={cfg.stride}: 3D-MIM convolutions use stride 1 only")
    for flag, size in zip(("img_width", "img_height", "img_depth"), cfg.grid):
        need(size % cfg.patch_size == 0, f"--{flag}={size} is not divisible by "
             f"--patch_size={cfg.patch_size}")
    need(cfg.num_save_samples >= 0, f"--num_save_samples={cfg.num_save_samples}: must be >= 0")
    need(0 <= cfg.sampling_start_value <= 1, f"--sampling_start_value="
         f"{cfg.sampling_start_value}: expected a probability in [0, 1]")
    need(cfg.sampling_changing_rate >= 0, f"--sampling_changing_rate="
         f"{cfg.sampling_changing_rate}: expected >= 0 (eta decreases by it every iteration)")
    need(cfg.sampling_stop_iter >= 0, f"--sampling_stop_iter={cfg.sampling_stop_iter}: "
         "expected >= 0")
    check_particle_settings(cfg)


def check_particle_settings(cfg):
    """The --particle_* flags: set only with --particle_files, which needs --is_training=False."""
    defaults = {"particle_frame": -1, "particle_cube_size": 0.0, "particle_centre": ""}
    if not cfg.particle_files:
        for name, default in defaults.items():
            need(getattr(cfg, name) == default, f"--{name}={getattr(cfg, name)!r} is read only "
                 "with --particle_files")
        return
    need(not cfg.is_training, f"--particle_files={cfg.particle_files!r} is read only with "
         "--is_training=False (forecast and score)")
    need(len(cfg.particle_files.split(",")) == 2, f"--particle_files={cfg.particle_files!r}: "
         "expected two comma-separated snapshots (the clip's first frame, the later one)")
    need(cfg.input_length <= cfg.particle_frame_index < cfg.total_length,
         f"--particle_frame={cfg.particle_frame}: must be a forecast frame, from "
         f"--input_length={cfg.input_length} to --total_length-1={cfg.total_length - 1} (or -1)")
    need(cfg.particle_cube_size >= 0, f"--particle_cube_size={cfg.particle_cube_size}: must be "
         ">= 0 (0: the whole box)")
    cfg.particle_cube_centre  # noqa: B018  (validates --particle_centre)
