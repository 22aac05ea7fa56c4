"""Run a script under Keras' JAX backend (CPU) in a subprocess and read its result."""
import json
import os
import subprocess
import sys


def run_on_jax(script, *args, timeout=600):
    """Run Python ``script`` with ``args`` on the JAX backend; it prints ``RESULT<json>``
    last. Returns that JSON, after checking the subprocess succeeded on JAX."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT")[-1])
    assert out["backend"] == "jax"
    return out


def loss_curve(directory, learning_rate):
    """The losses of 4 Adam steps (the model's own loss) on the batch in ``batch.npz`` (x, y)
    from the model in ``initial.keras`` of ``directory``, on this process's backend."""
    import keras
    import numpy as np

    model = keras.saving.load_model(os.path.join(directory, "initial.keras"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    data = np.load(os.path.join(directory, "batch.npz"))
    return model.fit(data["x"], data["y"], batch_size=4, epochs=4, shuffle=False,
                     verbose=0).history["loss"]


CHECKS_SCRIPT = """
import json, pathlib, sys, traceback
import jax, keras, numpy as np
from tests.jax_backend import loss_curve
from tests.model_testing import check_model
from {module} import check_batch, {factory} as factory
directory = pathlib.Path(sys.argv[1])
jax.config.update("jax_compilation_cache_dir", str(directory / "jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
out = {{"backend": keras.backend.backend()}}
if {checks}:
    try:
        check_model(factory, *check_batch(), tmp_path=directory / "checks")
        out["checks"] = "passed"
    except Exception:
        out["checks"] = traceback.format_exc()
else:
    out["loss_curve"] = loss_curve(directory, {learning_rate})
print("RESULT" + json.dumps(out))
"""


def model_on_jax(module, factory, directory, learning_rate, checks=False):
    """On the JAX backend, in a subprocess: :func:`loss_curve` of ``directory`` (where
    ``initial.keras`` and ``batch.npz`` are saved) with ``learning_rate``, or with ``checks``
    ``check_model`` of ``module.factory`` on ``module.check_batch()``. Returns
    {"loss_curve": [...]} or {"checks": "passed" or the traceback}."""
    os.makedirs(os.path.join(directory, "checks"), exist_ok=True)
    script = CHECKS_SCRIPT.format(module=module, factory=factory, learning_rate=learning_rate,
                                  checks=bool(checks))
    return run_on_jax(script, directory)
