"""Settings of a dm2gal run (run.py --model_name dm2gal)."""
import dataclasses

from tfastro.core.checkpoints import RunOptions
from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class DM2GalConfig(RunOptions):
    """Settings of a dm2gal run; field names and meanings are run.py's flags."""
    is_training: bool = True
    dataset_name: str = "tng"
    model_name: str = "dm2gal"
    tng_dark_snapshot: str = ""
    tng_dark_groups: str = ""
    tng_hydro_groups: str = ""
    field_dir: str = "data/dm2gal"
    grid_size: int = 2048
    test_region: str = "64,933"
    validation_region: str = "1000,1801"
    window: int = 65
    stellar_threshold: float = 1e8
    dm2gal_ch: int = 64
    dm2gal_batchnorm: bool = True
    dm2gal_loss: str = "mse"
    weight_decay: float = 0.0
    stitch: str = "all"
    standardisation: str = "original"
    weighted_sampling: bool = True
    bispectrum_k: str = ""
    lr: float = 1e-5
    batch_size: int = 32
    max_iterations: int = 100000
    display_interval: int = 100
    test_interval: int = 1000
    snapshot_interval: int = 1000
    save_dir: str = "checkpoints/dm2gal"
    gen_frm_dir: str = "results/dm2gal"

    def box(self, flag):
        """--test_region / --validation_region as a half-open (lo, hi) voxel range."""
        text = getattr(self, flag)
        try:
            lo, hi = (int(v) for v in text.split(","))
        except ValueError:
            raise UserInputError(f"--{flag}={text!r}: expected 'lo,hi' (half-open voxel range, "
                                 "the same on every axis)") from None
        return lo, hi


def validate_config(cfg):
    """Check the flags that need no file; raises UserInputError naming the flag."""
    from tfastro.core.precision import policy_name

    def need(ok, message):
        if not ok:
            raise UserInputError(message)

    need(cfg.dataset_name == "tng", f"--dataset_name={cfg.dataset_name!r}: dm2gal reads "
         "IllustrisTNG fields, dataset 'tng'")
    need(cfg.model_name == "dm2gal", f"--model_name={cfg.model_name!r}: expected 'dm2gal'")
    need(cfg.dm2gal_loss in ("mse", "huber"), f"--dm2gal_loss={cfg.dm2gal_loss!r}: expected "
         "'mse' or 'huber'")
    need(cfg.stitch in ("all", "above_threshold"), f"--stitch={cfg.stitch!r}: expected 'all' or "
         "'above_threshold'")
    need(cfg.standardisation in ("original", "training"), f"--standardisation="
         f"{cfg.standardisation!r}: expected 'original' or 'training'")
    for flag in ("grid_size", "window", "dm2gal_ch", "batch_size", "display_interval",
                 "test_interval", "snapshot_interval"):
        need(getattr(cfg, flag) >= 1, f"--{flag}={getattr(cfg, flag)}: must be a positive integer")
    need(cfg.window % 2 == 1, f"--window={cfg.window}: must be odd (a centre voxel)")
    need(cfg.lr > 0 and cfg.weight_decay >= 0, f"--lr={cfg.lr}, --weight_decay={cfg.weight_decay}: "
         "expected lr > 0 and weight_decay >= 0")
    for flag in ("test_region", "validation_region"):
        cfg.box(flag)
    bispectrum_k(cfg, 1.0)
    policy_name(cfg.mixed_precision)


def bispectrum_k(cfg, k_fundamental):
    """(k1, k2) in h/Mpc: --bispectrum_k, or 3 and 4 fundamental modes of the test cube."""
    if not cfg.bispectrum_k:
        return 3 * k_fundamental, 4 * k_fundamental
    try:
        k1, k2 = (float(v) for v in cfg.bispectrum_k.split(","))
    except ValueError:
        k1 = k2 = -1.0
    if not (k1 > 0 and k2 > 0):
        raise UserInputError(f"--bispectrum_k={cfg.bispectrum_k!r}: expected 'k1,k2' in h/Mpc, "
                             "both positive")
    return k1, k2
