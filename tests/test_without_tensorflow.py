"""The science-case packages and the field statistics import where TensorFlow is not installed
(JAX-only GPU machines); only pipelines, tasks and tf.distribute need it."""
import os
import subprocess
import sys

SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # any 'import tensorflow' now raises ImportError
import keras
import tfastro.fields, tfastro.supernova, tfastro.multifield, tfastro.dm2gal, tfastro.turbulence
import tfastro.prestellar
from tfastro.fields import ssim2d_tensor
print(keras.backend.backend())
"""


def test_case_packages_import_without_tensorflow():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "jax"
