"""Settings of a turbulence run (run.py --model_name turbulence_cnn or turbulence_unet): the
settings both models read, and one config class per model with its own."""
import dataclasses

from tfastro.core.config import RunSettings, check_settings, need, need_positive, setting, shared
from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class TurbulenceConfig(RunSettings):
    """The settings both turbulence models read; a run takes a :class:`TurbulenceCNNConfig` or
    a :class:`TurbulenceUNetConfig`."""
    model_name: str = shared("")  # each model's class sets its name
    is_training: bool = shared(True)
    dataset_name: str = setting("turbulence", "Dataset kind: 'turbulence' (turbulent-gas "
                                "snapshot FITS cubes), the one both models read.")
    data_dir: str = setting("data/turbulence", "Folder of the class folders (--turb_classes).")
    turb_classes: str = setting("mhd,cr_advection,cr_diffusion,cr_diffusion_100kappa,"
                                "cr_streaming", "Classes, comma-separated: each a folder of "
                                "snapshot FITS cubes under --data_dir (or an absolute folder); "
                                "the classifier's labels in this order.")
    turb_field: str = setting("density", "FITS field (EXTNAME) the networks read.")
    tile_size: int = setting(128, "Side of the image tiles cut from each slice (pixels).")
    projection: int = setting(1, "Test images average this many adjacent slices (8: closer to "
                              "observed column densities).")
    epochs: int = shared(50)
    patience: int = shared(5)
    save_dir: str = shared("checkpoints/turbulence")
    gen_frm_dir: str = shared("results/turbulence")

    @property
    def classes(self):
        return [c.strip() for c in self.turb_classes.split(",") if c.strip()]


@dataclasses.dataclass
class TurbulenceCNNConfig(TurbulenceConfig):
    """Settings of the classifier of cosmic-ray transport (run.py --model_name turbulence_cnn)."""
    model_name: str = shared("turbulence_cnn")
    lr: float = setting(1e-3, "Learning rate of AdamW.")
    weight_decay: float = setting(1e-4, "AdamW's decoupled weight decay.")
    batch_size: int = shared(64)
    flattened_power: bool = setting(False, "Keep only Fourier phases of each slice (|F| set to "
                                    "1): what phases alone tell.")
    blur_sigmas: str = setting("0,2,4,6,8", "Gaussian blur widths (pixels) of the blur sweep.")
    occlusion_patch: int = setting(0, "Side of the occluded patches (0: no occlusion maps).")
    saliency_images: int = setting(8, "Test images drawn with their saliency maps.")

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


@dataclasses.dataclass
class TurbulenceUNetConfig(TurbulenceConfig):
    """Settings of the U-net from --turb_field to --turb_target (run.py --model_name
    turbulence_unet)."""
    model_name: str = shared("turbulence_unet")
    lr: float = setting(1e-2, "Learning rate of AdamW.")
    weight_decay: float = setting(1e-2, "AdamW's decoupled weight decay.")
    batch_size: int = shared(32)
    turb_target: str = setting("magnetic_energy_density", "FITS field the U-net predicts from "
                               "--turb_field.")
    ssim_alpha: float = setting(0.02, "U-net loss MSE + alpha (1 - SSIM).")
    saliency_images: int = setting(8, "Test tiles drawn in mapping.png (input, target, "
                                   "prediction).")


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    from tfastro.core.precision import policy_name

    check_settings(cfg)
    classifier = cfg.model_name == "turbulence_cnn"
    need(cfg.dataset_name == "turbulence", f"--dataset_name={cfg.dataset_name!r}: "
         f"{cfg.model_name} reads turbulent-gas FITS cubes, dataset 'turbulence'")
    need(len(cfg.classes) >= 2 or not classifier,
         f"--turb_classes={cfg.turb_classes!r}: the classifier needs at least two classes")
    multiple = 64 if classifier else 8
    need(cfg.tile_size >= multiple and cfg.tile_size % multiple == 0,
         f"--tile_size={cfg.tile_size}: {cfg.model_name} needs a multiple of {multiple}")
    need_positive(cfg, "projection", "saliency_images")
    need(cfg.weight_decay >= 0, f"--weight_decay={cfg.weight_decay}: expected >= 0")
    if classifier:
        need(0 <= cfg.occlusion_patch <= cfg.tile_size, f"--occlusion_patch="
             f"{cfg.occlusion_patch}: expected 0 (none) .. --tile_size={cfg.tile_size} pixels")
        cfg.sigmas  # noqa: B018  (validate --blur_sigmas)
    else:
        need(cfg.ssim_alpha >= 0, f"--ssim_alpha={cfg.ssim_alpha}: must be >= 0")
    policy_name(cfg.mixed_precision)
