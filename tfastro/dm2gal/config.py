"""Settings of a dm2gal run (run.py --model_name dm2gal)."""
import dataclasses

from tfastro.core.config import (RunSettings, check_settings, need, need_folder, need_positive,
                                 setting, shared)
from tfastro.core.errors import UserInputError


@dataclasses.dataclass
class DM2GalConfig(RunSettings):
    """Settings of a dm2gal run (run.py --model_name dm2gal)."""
    is_training: bool = shared(True)
    dataset_name: str = setting("tng", "Dataset kind: 'tng' (IllustrisTNG snapshots and group "
                                "catalogues), the one dm2gal reads.")
    model_name: str = shared("dm2gal")
    tng_dark_snapshot: str = setting("", "Gravity-only snapshot: folder of snap_NNN.<i>.hdf5 "
                                     "chunks (or one file).")
    tng_dark_groups: str = setting("", "Gravity-only group catalogue folder "
                                   "(fof_subhalo_tab_NNN.<i>.hdf5).")
    tng_hydro_groups: str = setting("", "Hydro group catalogue folder (stellar masses).")
    field_dir: str = setting("data/dm2gal", "Folder of the mass grids and network arrays (.npy, "
                             "computed from the TNG files when absent, then reused).")
    grid_size: int = setting(2048, "Voxels per side of the mass grids.")
    test_region: str = setting("64,933", "Test box 'lo,hi' (voxels, half-open, every axis).")
    validation_region: str = setting("1000,1801", "Validation box 'lo,hi'.")
    window: int = setting(65, "Side of the input cube around a centre voxel (odd).")
    stellar_threshold: float = setting(1e8, "Centres: voxels with more stellar mass (Msun/h).")
    dm2gal_ch: int = setting(64, "Channels of dm2gal's first stage.")
    dm2gal_batchnorm: bool = setting(True, "Batch norm after every dm2gal convolution (the "
                                     "original); off with --standardisation training.")
    dm2gal_loss: str = setting("mse", "dm2gal loss.", ("mse", "huber"))
    weight_decay: float = setting(0.0, "Coupled L2 decay of the kernels.")
    stitch: str = setting("all", "Stitch every test voxel, or only those whose true stellar mass "
                          "exceeds the threshold (uses the truth).", ("all", "above_threshold"))
    standardisation: str = setting("original", "Standardise log10(1 + M) with the original "
                                   "constants or over the training samples.",
                                   ("original", "training"))
    weighted_sampling: bool = setting(True, "Draw training centres with weight 1/count of their "
                                      "target's bin (100 bins), as the original.")
    bispectrum_k: str = setting("", "'k1,k2' (h/Mpc) of the test-cube bispectrum (default 3 and "
                                "4 fundamental modes).")
    lr: float = setting(1e-5, "Initial learning rate of Adam (reduced on plateau).")
    batch_size: int = shared(32)
    max_iterations: int = shared(100000)
    display_interval: int = shared(100)
    test_interval: int = setting(1000, "Validation loss (which drives reduce-on-plateau) every N "
                                 "iterations.")
    snapshot_interval: int = shared(1000)
    save_dir: str = shared("checkpoints/dm2gal")
    gen_frm_dir: str = shared("results/dm2gal")

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

    check_settings(cfg)
    need(cfg.dataset_name == "tng", f"--dataset_name={cfg.dataset_name!r}: dm2gal reads "
         "IllustrisTNG fields, dataset 'tng'")
    need_positive(cfg, "grid_size", "window", "dm2gal_ch")
    need_folder(cfg, "field_dir")
    need(cfg.window % 2 == 1, f"--window={cfg.window}: must be odd (a centre voxel)")
    need(cfg.weight_decay >= 0, f"--weight_decay={cfg.weight_decay}: expected >= 0")
    need(cfg.stellar_threshold >= 0, f"--stellar_threshold={cfg.stellar_threshold:g}: expected "
         ">= 0 (Msun/h)")
    regions(cfg)
    bispectrum_k(cfg, 1.0)
    policy_name(cfg.mixed_precision)


def regions(cfg):
    """The :class:`tfastro.dm2gal.pipeline.DM2GalRegions` of --grid_size, --test_region,
    --validation_region and --window; UserInputError naming them otherwise."""
    from tfastro.dm2gal.pipeline import split_regions
    flags = (f"--grid_size={cfg.grid_size}, --test_region={cfg.test_region!r}, "
             f"--validation_region={cfg.validation_region!r}, --window={cfg.window}")
    test, validation = cfg.box("test_region"), cfg.box("validation_region")
    try:
        return split_regions(cfg.grid_size, test, validation, cfg.window)
    except UserInputError as err:
        raise UserInputError(f"{flags}: {err}") from None


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
