"""Settings of a prestellar-core run (run.py --model_name prestellar)."""
import dataclasses

from tfastro.core.checkpoints import RunOptions
from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class PrestellarConfig(RunOptions):
    """Settings of a column run; field names and meanings are run.py's flags."""
    is_training: bool = True
    dataset_name: str = "prestellar"
    model_name: str = "column"
    data_dir: str = "data/prestellar"
    column_width: int = 16
    column_depth: int = 3
    spectral_kernel: int = 7
    column_context: bool = True
    column_dropout: float = 0.1
    mc_samples: int = 32
    scan_window: int = 0
    lr: float = 1e-3
    batch_size: int = 8
    epochs: int = 50
    patience: int = 5
    save_dir: str = "checkpoints/column"
    gen_frm_dir: str = "results/column"


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    from tfastro.core.precision import policy_name

    def need(ok, message):
        if not ok:
            raise UserInputError(message)

    need(cfg.model_name == "column", f"--model_name={cfg.model_name!r}: expected 'column'")
    need(cfg.dataset_name == "prestellar", f"--dataset_name={cfg.dataset_name!r}: the column "
         "network reads prestellar PPV cubes, dataset 'prestellar'")
    for flag in ("column_width", "column_depth", "spectral_kernel", "mc_samples", "batch_size",
                 "epochs", "patience"):
        need(getattr(cfg, flag) >= 1, f"--{flag}={getattr(cfg, flag)}: must be a positive integer")
    need(0 <= cfg.column_dropout < 1, f"--column_dropout={cfg.column_dropout}: expected 0 <= "
         "rate < 1")
    need(cfg.scan_window >= 0, f"--scan_window={cfg.scan_window}: expected 0 (one pass) or a "
         "window side in pixels")
    need(cfg.lr > 0, f"--lr={cfg.lr}: must be positive")
    policy_name(cfg.mixed_precision)
