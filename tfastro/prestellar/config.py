"""Settings of a prestellar-core run (run.py --model_name prestellar)."""
import dataclasses

from tfastro.core.config import RunSettings, check_settings, need, need_positive, setting, shared


@dataclasses.dataclass
class PrestellarConfig(RunSettings):
    """Settings of a prestellar-core run (run.py --model_name prestellar)."""
    is_training: bool = shared(True)
    dataset_name: str = setting("prestellar", "Dataset kind: 'prestellar' (PPV cubes with their "
                                "density and velocity cubes), the one the column network reads.")
    model_name: str = shared("prestellar")
    data_dir: str = setting("data/prestellar", "Folder of prestellar.h5 (python -m "
                            "tfastro.prestellar.synthetic writes one).")
    column_width: int = setting(16, "Filters of every Conv3D of the column network.")
    column_depth: int = setting(3, "Conv3D blocks of the column network's local path.")
    spectral_kernel: int = setting(7, "Kernel length along the velocity axis.")
    column_context: bool = setting(True, "Global-context path: every column also sees a summary "
                                   "of the whole cube.")
    column_dropout: float = setting(0.1, "Dropout rate (kept on for the MC-dropout "
                                    "uncertainty).")
    mc_samples: int = setting(32, "Forward passes of the MC-dropout uncertainty.")
    scan_window: int = setting(0, "Predict test cubes window by window of this side (pixels; "
                               "equal to one pass, bounded memory); 0: one pass.")
    lr: float = setting(1e-3, "Learning rate of Adam.")
    batch_size: int = setting(8, "Cores per batch and replica: a step takes batch_size x "
                              "replicas of --strategy.")
    epochs: int = shared(50)
    patience: int = shared(5)
    save_dir: str = shared("checkpoints/prestellar")
    gen_frm_dir: str = shared("results/prestellar")


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    from tfastro.core.precision import policy_name

    check_settings(cfg)
    need(cfg.dataset_name == "prestellar", f"--dataset_name={cfg.dataset_name!r}: the column "
         "network reads prestellar PPV cubes, dataset 'prestellar'")
    need_positive(cfg, "column_width", "column_depth", "spectral_kernel", "mc_samples")
    need(0 <= cfg.column_dropout < 1, f"--column_dropout={cfg.column_dropout}: expected 0 <= "
         "rate < 1")
    need(cfg.scan_window >= 0, f"--scan_window={cfg.scan_window}: expected 0 (one pass) or a "
         "window side in pixels")
    policy_name(cfg.mixed_precision)
