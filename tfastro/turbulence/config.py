"""Settings of a turbulence run (run.py --model_name turbulence_cnn or turbulence_unet)."""
import dataclasses

from tfastro.core.checkpoints import RunOptions
from tfastro.core.errors import UserInputError

MODELS = ("turb_cnn", "turb_unet")


DEFAULTS = {"turb_cnn": {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64},
            "turb_unet": {"lr": 1e-2, "weight_decay": 1e-2, "batch_size": 32}}


@dataclasses.dataclass
class TurbulenceConfig(RunOptions):
    """Settings of a turb_cnn / turb_unet run; field names and meanings are run.py's flags.
    ``lr``, ``weight_decay`` and ``batch_size`` left at None take the model's defaults."""
    is_training: bool = True
    dataset_name: str = "turbulence"
    model_name: str = "turb_cnn"
    data_dir: str = "data/turbulence"
    turb_classes: str = "mhd,cr_advection,cr_diffusion,cr_diffusion_100kappa,cr_streaming"
    turb_field: str = "density"
    turb_target: str = "magnetic_energy_density"
    tile_size: int = 128
    flattened_power: bool = False
    projection: int = 1
    ssim_alpha: float = 0.02
    lr: float = None
    weight_decay: float = None
    batch_size: int = None
    epochs: int = 50
    patience: int = 5
    blur_sigmas: str = "0,2,4,6,8"
    occlusion_patch: int = 0
    saliency_images: int = 8
    save_dir: str = "checkpoints/turbulence"
    gen_frm_dir: str = "results/turbulence"

    def setting(self, name):
        """lr / weight_decay / batch_size: the flag, or the model's default."""
        value = getattr(self, name)
        return DEFAULTS[self.model_name][name] if value is None else value

    @property
    def classes(self):
        return [c.strip() for c in self.turb_classes.split(",") if c.strip()]

    @property
    def sigmas(self):
        try:
            sigmas = [float(s) for s in self.blur_sigmas.split(",")]
        except ValueError:
            sigmas = [-1.0]
        if not sigmas or min(sigmas) < 0:
            raise UserInputError(f"--blur_sigmas={self.blur_sigmas!r}: expected comma-separated "
                                 "widths in pixels, all >= 0")
        return sigmas


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    from tfastro.core.precision import policy_name

    def need(ok, message):
        if not ok:
            raise UserInputError(message)

    need(cfg.model_name in MODELS, f"--model_name={cfg.model_name!r}: expected one of {MODELS}")
    need(cfg.dataset_name == "turbulence", f"--dataset_name={cfg.dataset_name!r}: "
         f"{cfg.model_name} reads turbulent-gas FITS cubes, dataset 'turbulence'")
    need(len(cfg.classes) >= 2 or cfg.model_name == "turb_unet",
         f"--turb_classes={cfg.turb_classes!r}: the classifier needs at least two classes")
    multiple = 64 if cfg.model_name == "turb_cnn" else 8
    need(cfg.tile_size >= multiple and cfg.tile_size % multiple == 0,
         f"--tile_size={cfg.tile_size}: {cfg.model_name} needs a multiple of {multiple}")
    for flag in ("projection", "epochs", "patience", "saliency_images"):
        need(getattr(cfg, flag) >= 1, f"--{flag}={getattr(cfg, flag)}: must be a positive integer")
    need(cfg.occlusion_patch >= 0, f"--occlusion_patch={cfg.occlusion_patch}: must be >= 0")
    need(cfg.setting("lr") > 0 and cfg.setting("weight_decay") >= 0 and
         cfg.setting("batch_size") >= 1, f"--lr={cfg.setting('lr')}, --weight_decay="
         f"{cfg.setting('weight_decay')}, --batch_size={cfg.setting('batch_size')}: expected "
         "lr > 0, weight_decay >= 0, batch_size >= 1")
    need(cfg.ssim_alpha >= 0, f"--ssim_alpha={cfg.ssim_alpha}: must be >= 0")
    cfg.sigmas
    policy_name(cfg.mixed_precision)
