"""tfastro's command line: 3D-MIM supernova-shell forecasts (a drop-in for the original run.py)
and the other science cases, chosen by --model_name.

    python run.py --helpfull          # every flag with its default
    bash run.sh                       # the original sample run
    python run.py --model_name multifield_gan --dataset_name cmd --data_dir data/cmd ...
    python run.py --model_name turb_cnn --dataset_name turbulence --data_dir data/turbulence ...
    python run.py --model_name column --dataset_name prestellar --data_dir data/prestellar ...
"""
import dataclasses
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfastro.core.flags import define_flags

define_flags()
FLAGS = flags.FLAGS


# --model_name -> (task module, its config dataclass)
# Flags not given on the command line take the original's defaults for 'mim' (the drop-in) and
# the science case's own defaults for the others (e.g. dm2gal: lr 1e-5, batch_size 32).
TASKS = {"mim": ("supernova", "MIM3DConfig"),
         "multifield_gan": ("multifield", "MultifieldConfig"),
         "dm2gal": ("dm2gal", "DM2GalConfig"),
         "turb_cnn": ("turbulence", "TurbulenceConfig"),
         "turb_unet": ("turbulence", "TurbulenceConfig"),
         "column": ("prestellar", "PrestellarConfig")}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tfastro.core.errors import UserInputError
    if FLAGS.model_name not in TASKS:
        print(f"run.py: error: --model_name={FLAGS.model_name!r}: expected one of "
              f"{', '.join(TASKS)}", file=sys.stderr)
        sys.exit(2)
    case, config_name = TASKS[FLAGS.model_name]
    task = importlib.import_module(f"tfastro.{case}.task")
    config = getattr(importlib.import_module(f"tfastro.{case}.config"), config_name)
    given = [f.name for f in dataclasses.fields(config)
             if FLAGS.model_name == "mim" or FLAGS[f.name].present]
    cfg = config(**{name: FLAGS[name].value for name in given})
    try:
        task.run(cfg, log=lambda message: print(message, flush=True))
    except UserInputError as err:
        print(f"run.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
