"""Settings of a multifield-emulator run (run.py --model_name multifield)."""
import dataclasses

import numpy as np

from tfastro.core.config import RunSettings, check_settings, need, need_positive, setting, shared
from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class MultifieldConfig(RunSettings):
    """Settings of a multifield-emulator run (run.py --model_name multifield)."""
    is_training: bool = shared(True)
    dataset_name: str = setting("cmd", "Dataset kind: 'cmd' (CAMELS multifield maps), the one "
                                "the GAN reads.")
    model_name: str = shared("multifield")
    data_dir: str = setting("data/cmd", "Folder of CAMELS multifield maps "
                            "(Maps_{field}_{suite}_{set}_z=0.00.npy, params_{set}_{suite}.txt).")
    cmd_suite: str = setting("IllustrisTNG", "CAMELS suite (B exists only for IllustrisTNG).")
    cmd_set: str = setting("LH", "CAMELS set (LH, 1P, CV, BE, EX).")
    fields: str = setting("Mgas,HI,B", "Map channels, comma-separated.")
    resolution: int = setting(256, "Map side in pixels (a power of 2, 32 to 256).")
    latent_dim: int = setting(256, "Size of the generator's latent vector.")
    condition_params: str = setting("Omega_m,sigma_8", "Parameters the GAN is conditioned on, "
                                    "comma-separated (empty: unconditional).")
    gan_loss: str = setting("wgan-gp", "Adversarial loss.", ("wgan-gp", "hinge"))
    gan_width: float = setting(1.0, "Multiplier of the GAN's feature channels.")
    n_critic: int = setting(2, "Discriminator steps per generator step (2: the critic keeps up, "
                            "which the conditioning on parameters needs).")
    lr: float = setting(2e-4, "Learning rate of the generator's and the discriminator's Adam "
                        "(beta_1 0.5, beta_2 0.999).")
    batch_size: int = shared(8)
    max_iterations: int = shared(80000)
    display_interval: int = setting(1, "Print the mean losses of the last N iterations every N "
                                    "iterations.")
    test_interval: int = shared(1000)
    snapshot_interval: int = shared(1000)
    save_dir: str = shared("checkpoints/multifield")
    gen_frm_dir: str = shared("results/multifield")
    generate_params: str = setting("", "With --is_training=False: parameter vectors to generate "
                                   "maps at, ';'-separated, each in --condition_params order "
                                   "(e.g. '0.3,0.8;0.4,0.9').")
    num_generated_maps: int = setting(15, "Maps generated per --generate_params vector.")
    eval_maps: int = setting(150, "Real test maps (and as many generated) in an evaluation.")
    regressor_steps: int = setting(1000, "Training steps of the (Omega_m, sigma_8) regressor of "
                                   "the conditioning check (--is_training=False).")
    precision: str = shared("float32")
    allow_gpu_growth: bool = shared(False)

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
    from tfastro.multifield.model import RESOLUTIONS

    check_settings(cfg)
    need(cfg.dataset_name == "cmd", f"--dataset_name={cfg.dataset_name!r}: the multifield GAN "
         "reads CAMELS multifield maps, dataset 'cmd'")
    cfg.field_names, cfg.param_names, cfg.generate_theta, cfg.policy  # noqa: B018  (validate)
    need(cfg.resolution in RESOLUTIONS,
         f"--resolution={cfg.resolution}: expected one of {RESOLUTIONS}")
    need(cfg.gan_width > 0, f"--gan_width={cfg.gan_width}: must be positive")
    need_positive(cfg, "latent_dim", "n_critic", "num_generated_maps", "eval_maps",
                  "regressor_steps")
