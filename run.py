"""tfastro's command line: 3D-MIM supernova-shell forecasts (a drop-in for the original run.py)
and the other science cases, chosen by --model_name.

    python run.py --helpfull          # every flag with its default
    bash run.sh                       # the original sample run
    python run.py --model_name multifield_gan --dataset_name cmd --data_dir data/cmd ...
"""
import dataclasses
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfastro.flags import define_flags  # noqa: E402

define_flags()
FLAGS = flags.FLAGS


# --model_name -> (task module, its config dataclass)
TASKS = {"mim": ("tfastro.tasks.mim3d", "MIM3DConfig"),
         "multifield_gan": ("tfastro.tasks.multifield", "MultifieldConfig")}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tfastro.errors import UserInputError
    if FLAGS.model_name not in TASKS:
        print(f"run.py: error: --model_name={FLAGS.model_name!r}: expected one of "
              f"{', '.join(TASKS)}", file=sys.stderr)
        sys.exit(2)
    module_name, config_name = TASKS[FLAGS.model_name]
    task = importlib.import_module(module_name)
    config = getattr(task, config_name)
    cfg = config(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(config)})
    try:
        task.run(cfg, log=lambda message: print(message, flush=True))
    except UserInputError as err:
        print(f"run.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
