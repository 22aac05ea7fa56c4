"""Settings of a multifield-emulator run (run.py --model_name multifield)."""
import dataclasses

import numpy as np

from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class MultifieldConfig:
    """Settings of a multifield-emulator run; field names and meanings are run.py's flags."""
    is_training: bool = True
    dataset_name: str = "cmd"
    model_name: str = "multifield_gan"
    data_dir: str = "data/cmd"
    cmd_suite: str = "IllustrisTNG"
    cmd_set: str = "LH"
    fields: str = "Mgas,HI,B"
    resolution: int = 256
    latent_dim: int = 256
    condition_params: str = "Omega_m,sigma_8"
    gan_loss: str = "wgan-gp"
    gan_width: float = 1.0
    n_critic: int = 2
    batch_size: int = 8
    max_iterations: int = 80000
    display_interval: int = 1
    test_interval: int = 1000
    snapshot_interval: int = 1000
    save_dir: str = "checkpoints/multifield"
    gen_frm_dir: str = "results/multifield"
    pretrained_model: str = ""
    fresh_start: bool = False
    keep_checkpoints: int = 5
    generate_params: str = ""
    num_generated_maps: int = 15
    eval_maps: int = 150
    regressor_steps: int = 1000
    precision: str = "float32"
    mixed_precision: str = "none"
    jit_compile: bool = False
    strategy: str = "default"
    n_gpu: int = 0
    allow_gpu_growth: bool = False
    seed: int = 0

    @property
    def policy(self):
        """Keras dtype policy of --mixed_precision (or its alias --precision bfloat16)."""
        from tfastro.core.precision import policy_name
        return policy_name(self.mixed_precision, self.precision)

    @property
    def field_names(self):
        from tfastro.multifield.io import check_fields
        names = tuple(f.strip() for f in self.fields.split(",") if f.strip())
        try:
            return check_fields(names)
        except (ValueError, UserInputError) as err:
            raise UserInputError(f"--fields={self.fields!r}: {err}") from None

    @property
    def param_names(self):
        from tfastro.multifield.io import PARAM_NAMES
        names = tuple(p.strip() for p in self.condition_params.split(",") if p.strip())
        unknown = [p for p in names if p not in PARAM_NAMES]
        if unknown or len(set(names)) != len(names):
            raise UserInputError(f"--condition_params={self.condition_params!r}: expected distinct "
                                 f"names among {PARAM_NAMES}")
        return names

    @property
    def generate_theta(self):
        """--generate_params as an array (n, len(param_names)) of physical values."""
        if not self.generate_params.strip():
            return np.zeros((0, len(self.param_names)))
        try:
            rows = [[float(v) for v in row.split(",")] for row in self.generate_params.split(";")]
            theta = np.array(rows, dtype=np.float64)
        except ValueError:
            theta = None
        if theta is None or theta.ndim != 2 or theta.shape[1] != len(self.param_names):
            raise UserInputError(f"--generate_params={self.generate_params!r}: expected "
                                 f"';'-separated vectors of {len(self.param_names)} numbers "
                                 f"({','.join(self.param_names)})")
        return theta


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    from tfastro.multifield.model import LOSSES, RESOLUTIONS

    def need(ok, message):
        if not ok:
            raise UserInputError(message)

    need(cfg.dataset_name == "cmd", f"--dataset_name={cfg.dataset_name!r}: the multifield GAN "
         "reads CAMELS multifield maps, dataset 'cmd'")
    need(cfg.model_name == "multifield_gan", f"--model_name={cfg.model_name!r}: expected 'multifield_gan'")
    cfg.field_names, cfg.param_names, cfg.generate_theta, cfg.policy  # noqa: B018  (validate)
    need(cfg.resolution in RESOLUTIONS, f"--resolution={cfg.resolution}: expected one of {RESOLUTIONS}")
    need(cfg.gan_loss in LOSSES, f"--gan_loss={cfg.gan_loss!r}: expected one of {LOSSES}")
    need(cfg.gan_width > 0, f"--gan_width={cfg.gan_width}: must be positive")
    for flag in ("latent_dim", "n_critic", "batch_size", "display_interval", "test_interval",
                 "snapshot_interval", "num_generated_maps", "eval_maps", "regressor_steps"):
        need(getattr(cfg, flag) >= 1, f"--{flag}={getattr(cfg, flag)}: must be a positive integer")
