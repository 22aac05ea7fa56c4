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
