"""Settings of a run: each case's config dataclass is the one declaration of its settings.

A field is declared with :func:`setting` (default, help text, allowed values) or, for a
setting several cases share, with :func:`shared` (the case's own default; help text and
allowed values from :data:`SHARED`). ``run.py`` turns :func:`settings` of the chosen case's
config into its absl flags; the cases' ``validate_config`` use :func:`need`,
:func:`need_positive`, :func:`need_folder` and :func:`check_settings`.
"""
import dataclasses
import os

from tfastro.core.errors import UserInputError
from tfastro.core.precision import PRECISIONS

# help text and allowed values (None: any) of the settings several cases share
SHARED = {
    "is_training": ("Train (True), or only evaluate a checkpoint: --pretrained_model, else the "
                    "newest in --save_dir (False).", None),
    "model_name": ("The model to run; it decides which flags exist and their defaults "
                   "(python run.py --model_name NAME --helpfull).", None),
    "save_dir": ("Checkpoint directory (ckpt-<iteration>.keras); a run resumes from its newest "
                 "checkpoint; nothing there is deleted unless --fresh_start.", None),
    "gen_frm_dir": ("Results directory: evaluations, forecasts and figures, one sub-directory "
                    "per iteration.", None),
    "pretrained_model": ("Checkpoint file (.keras) or a save_dir (its newest checkpoint) to "
                         "start from, or with --is_training=False to evaluate.", None),
    "fresh_start": ("Train from scratch (or --pretrained_model); save_dir's checkpoints are "
                    "deleted once the new run writes its first (never --pretrained_model's).",
                    None),
    "keep_checkpoints": ("Checkpoints kept in save_dir (the newest).", None),
    "precision": ("Alias kept for 3D-MIM scripts: bfloat16 means "
                  "--mixed_precision=mixed_bfloat16.", ("float32", "bfloat16")),
    "mixed_precision": ("Keras mixed precision: layers compute in float16 / bfloat16, weights, "
                        "outputs and losses stay float32; mixed_float16 scales the loss "
                        "(LossScaleOptimizer) against gradient underflow.", PRECISIONS),
    "jit_compile": ("Compile the training step with XLA (bench/jit_compile.py measures what it "
                    "does for each model).", None),
    "strategy": ("tf.distribute strategy: default (one device), mirrored (the GPUs of --n_gpu "
                 "on this host), multi_worker_mirrored (every worker process runs the same "
                 "command, TF_CONFIG naming the cluster and its own index; workers other than "
                 "the chief write under <save_dir>/worker<k>, <gen_frm_dir>/worker<k>).",
                 ("default", "mirrored", "multi_worker_mirrored")),
    "n_gpu": ("GPUs to use, the first n_gpu visible ones (0: all, as the original 3D-MIM, which "
              "counted CUDA_VISIBLE_DEVICES); --strategy=mirrored trains on all of them, the "
              "others on the first. 0 or 1 without a GPU runs on the CPU.", None),
    "allow_gpu_growth": ("Allocate GPU memory as needed.", None),
    "seed": ("Seed of the initial weights, shuffling, augmentation and data splits.", None),
    "lr": ("Learning rate.", None),
    "batch_size": ("Samples per batch and replica: a step takes batch_size x replicas of "
                   "--strategy.", None),
    "max_iterations": ("Train up to this iteration.", None),
    "display_interval": ("Print the training loss every N iterations.", None),
    "test_interval": ("Evaluate on held-out data every N iterations.", None),
    "snapshot_interval": ("Write a checkpoint every N iterations.", None),
    "epochs": ("Most training epochs (early stopping may end sooner).", None),
    "patience": ("Early stopping: epochs without a better validation loss.", None),
}
# allowed range of the numeric settings several cases share, by name
POSITIVE = ("lr", "batch_size", "max_iterations", "display_interval", "test_interval",
            "snapshot_interval", "epochs", "patience", "keep_checkpoints")
NON_NEGATIVE = ("n_gpu", "seed")
OUTPUT_FOLDERS = ("save_dir", "gen_frm_dir")  # folders every case writes into


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of a config: run.py's flag of the same name."""
    name: str
    type: type  # bool, int, float or str
    default: object
    help: str
    choices: tuple = None  # allowed values, None: any


def setting(default, help, choices=None):
    """A config field: its default, help text (run.py's flag help) and allowed values."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": None if choices is None else tuple(choices)})


def shared(default):
    """A config field whose help text and allowed values are :data:`SHARED`'s for its name."""
    return dataclasses.field(default=default, metadata={"shared": True})


@dataclasses.dataclass
class RunSettings:
    """Settings every case reads, with the same defaults: what to start from, what to keep,
    precision, distribution and seed. Each case's config dataclass inherits them."""
    pretrained_model: str = shared("")
    fresh_start: bool = shared(False)
    keep_checkpoints: int = shared(5)
    mixed_precision: str = shared("none")
    jit_compile: bool = shared(False)
    strategy: str = shared("default")
    n_gpu: int = shared(0)
    seed: int = shared(0)


def settings(config):
    """The :class:`Setting` of every field of a config dataclass (class or instance)."""
    out = []
    for field in dataclasses.fields(config):
        if field.metadata.get("shared"):
            text, choices = SHARED[field.name]
        else:
            text, choices = field.metadata["help"], field.metadata["choices"]
        out.append(Setting(field.name, field.type, field.default, text, choices))
    return out


def need(ok, message):
    """Raise UserInputError(message) unless ``ok``."""
    if not ok:
        raise UserInputError(message)


def need_positive(cfg, *names):
    """Each of the settings ``names`` of ``cfg`` is at least 1 (UserInputError naming it)."""
    for name in names:
        value = getattr(cfg, name)
        need(value >= 1, f"--{name}={value}: must be a positive integer")


def need_folder(cfg, *names):
    """Each of the settings ``names`` of ``cfg`` names a folder or nothing yet (UserInputError
    naming it when it is a file)."""
    for name in names:
        path = getattr(cfg, name)
        need(os.path.isdir(path) or not os.path.exists(path),
             f"--{name}={path!r} is a file; expected a folder (made when absent)")


def check_settings(cfg):
    """``cfg.model_name`` is the one its class is declared for, every setting with allowed
    values holds one of them, those of :data:`POSITIVE` / :data:`NON_NEGATIVE` are > 0 /
    >= 0 and those of :data:`OUTPUT_FOLDERS` are not files; UserInputError naming the flag
    otherwise."""
    need_folder(cfg, *(name for name in OUTPUT_FOLDERS if hasattr(cfg, name)))
    for s in settings(cfg):
        value = getattr(cfg, s.name)
        if s.name in POSITIVE:
            need(value > 0, f"--{s.name}={value}: expected {'>= 1' if s.type is int else '> 0'}")
        elif s.name in NON_NEGATIVE:
            need(value >= 0, f"--{s.name}={value}: expected >= 0")
        elif s.name == "model_name":
            need(value == s.default, f"--model_name={value!r}: {type(cfg).__name__} holds the "
                 f"settings of --model_name {s.default}")
        elif s.choices is not None:
            need(value in s.choices, f"--{s.name}={value!r}: expected one of "
                 f"{', '.join(map(str, s.choices))}")
