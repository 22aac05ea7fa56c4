"""The layers and models import where TensorFlow is not installed (JAX-only GPU machines)."""
import os
import subprocess
import sys

SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # any 'import tensorflow' now raises ImportError
import keras
import tfastro.layers, tfastro.models
from tfastro.analysis.image_metrics import ssim2d_tensor
print(keras.backend.backend())
"""


def test_layers_and_models_import_without_tensorflow():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "jax"
