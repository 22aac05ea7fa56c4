"""3D-MIM: train and forecast supernova-shell expansion (drop-in for the original run.py).

    python run.py --helpfull          # every flag with its default
    bash run.sh                       # the original sample run
"""
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfastro.flags import define_flags  # noqa: E402

define_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tfastro.errors import UserInputError
    from tfastro.tasks.mim3d import MIM3DConfig, run
    cfg = MIM3DConfig(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(MIM3DConfig)})
    try:
        run(cfg, log=lambda message: print(message, flush=True))
    except UserInputError as err:
        print(f"run.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
