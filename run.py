"""tfastro's command line: 3D-MIM supernova-shell forecasts (a drop-in for the original run.py)
and the other science cases, chosen by --model_name (default mim):

    mim              3D-MIM forecasts of supernova shells (--dataset_name sn)
    unet             3D U-Net forecasts of supernova shells, one shot or rolled out
                     (--dataset_name sn)
    multifield       conditional GAN of CAMELS multifield maps (--dataset_name cmd)
    dm2gal           stellar mass from dark matter (--dataset_name tng)
    turbulence_cnn   cosmic-ray transport class of turbulent-gas images (--dataset_name
                     turbulence)
    turbulence_unet  turbulent-gas density -> CR or magnetic energy density (--dataset_name
                     turbulence)
    prestellar       prestellar cores: density and velocity from PPV cubes (--dataset_name
                     prestellar)

The flags and their defaults are the chosen model's settings (its config dataclass); a flag the
model does not read is an error.

    python run.py --model_name dm2gal --helpfull      # dm2gal's flags with their defaults
    bash run.sh                                       # the original 3D-MIM sample run
    python run.py --model_name multifield --dataset_name cmd --data_dir data/cmd ...
    python run.py --model_name turbulence_cnn --dataset_name turbulence ...
    python run.py --model_name prestellar --dataset_name prestellar ...
"""
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfastro.core.config import settings  # noqa: E402

# --model_name -> (case package, its config dataclass)
MODELS = {"mim": ("supernova", "MIM3DConfig"),
          "unet": ("supernova", "UNet3DConfig"),
          "multifield": ("multifield", "MultifieldConfig"),
          "dm2gal": ("dm2gal", "DM2GalConfig"),
          "turbulence_cnn": ("turbulence", "TurbulenceCNNConfig"),
          "turbulence_unet": ("turbulence", "TurbulenceUNetConfig"),
          "prestellar": ("prestellar", "PrestellarConfig")}
RENAMED = {"multifield_gan": "multifield", "turb_cnn": "turbulence_cnn",
           "turb_unet": "turbulence_unet", "column": "prestellar"}
DEFINE = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
          str: flags.DEFINE_string}


def fail(message):
    """Report bad command-line input in one line on stderr and exit with status 2."""
    print(f"run.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def chosen_model(argv):
    """The --model_name of ``argv`` (``--model_name X`` or ``--model_name=X``, the last one
    counts), 'mim' when absent."""
    name = "mim"
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        key, equals, value = arg.partition("=")
        if key in ("--model_name", "-model_name"):
            if equals:
                name = value
            elif i + 1 < len(argv):
                name = argv[i + 1]
    return name


def model_config(name):
    """(case package, config dataclass) of --model_name ``name``; exits with a one-line error
    for an unknown or renamed model."""
    if name in RENAMED:
        fail(f"--model_name={name!r} is now --model_name {RENAMED[name]}")
    if name not in MODELS:
        fail(f"--model_name={name!r}: expected one of {', '.join(MODELS)}")
    case, config = MODELS[name]
    return case, getattr(importlib.import_module(f"tfastro.{case}.config"), config)


def define_flags(config, flag_values=flags.FLAGS):
    """One absl flag per setting of ``config``, with its type, default, help and choices."""
    for s in settings(config):
        if s.choices is not None:
            flags.DEFINE_enum(s.name, s.default, s.choices, s.help, flag_values=flag_values)
        else:
            DEFINE[s.type](s.name, s.default, s.help, flag_values=flag_values)


def parse(argv, model_name, flag_values=flags.FLAGS):
    """Parse ``argv`` into ``flag_values``; exits with a one-line error for a flag that
    ``model_name`` does not read, a bad value or a stray argument."""
    try:
        rest = flag_values(argv)
    except flags.UnrecognizedFlagError as err:
        fail(f"--{err.flagname} is not a setting of --model_name {model_name} (python run.py "
             f"--model_name {model_name} --helpfull lists them)")
    except flags.Error as err:
        fail(str(err).splitlines()[0])
    if len(rest) > 1:
        fail(f"unexpected argument {rest[1]!r}: settings are flags, --name=value (booleans "
             "also --name / --noname)")
    return rest


def make_config(config, flag_values=flags.FLAGS):
    """An instance of ``config`` holding the value of every one of its flags."""
    return config(**{s.name: flag_values[s.name].value for s in settings(config)})


def main():
    name = chosen_model(sys.argv)
    case, config = model_config(name)
    define_flags(config)

    def run(argv):
        from tfastro.core.errors import UserInputError
        cfg = make_config(config)
        task = importlib.import_module(f"tfastro.{case}.task")
        try:
            task.run(cfg, log=lambda message: print(message, flush=True))
        except UserInputError as err:
            fail(err)

    app.run(run, flags_parser=lambda argv: parse(argv, name))


if __name__ == "__main__":
    main()
