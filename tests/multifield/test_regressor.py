"""ParameterRegressor: shapes, depth, the model checks (saving, resuming, mixed precision) and
Keras workflows (fit with validation data and callbacks, evaluate, predict) on TensorFlow and,
in a subprocess, on JAX; a short fit finding a planted signal."""
import os

import keras
import numpy as np
import pytest

from tests import jax_backend
from tests.model_testing import check_model
from tfastro.fields.random_fields import correlated_fields
from tfastro.multifield.evaluation import regression_scores
from tfastro.multifield.regressor import ParameterRegressor


@pytest.mark.parametrize("resolution, blocks", [(32, 3), (64, 4)])
def test_output_shape_and_depth(rng, resolution, blocks):
    model = ParameterRegressor(resolution, channels=3, n_params=2, width=4)
    out = model(rng.standard_normal((2, resolution, resolution, 3)).astype("float32"))
    assert out.shape == (2, 2) and out.dtype == "float32"
    assert sum(isinstance(layer, keras.layers.AveragePooling2D)
               for layer in model.feature_layers) == blocks
    assert model.feature_layers[-1].units == 32  # 8 * width hidden units


def test_wrong_map_shape_and_arguments_are_rejected(rng):
    model = ParameterRegressor(32, channels=3, width=4)
    with pytest.raises(ValueError, match="expected shape"):
        model(rng.standard_normal((2, 32, 32, 1)).astype("float32"))
    with pytest.raises(ValueError, match="resolution"):
        ParameterRegressor(4)


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def factory():
    model = ParameterRegressor(32, channels=3, n_params=2, width=4)
    model.compile(optimizer="adam", loss="mse")
    return model


def maps_and_theta(rng, size):
    return (rng.standard_normal((size, 32, 32, 3)).astype("float32"),
            rng.standard_normal((size, 2)).astype("float32"))


def test_model_checks(rng, tmp_path):
    check_model(factory, *maps_and_theta(rng, 4), tmp_path=tmp_path)


JAX_SCRIPT = """
import json, pathlib, sys, traceback
sys.path.insert(0, sys.argv[1])
import keras, numpy as np
from tests.model_testing import check_model
from tests.multifield.test_regressor import factory, maps_and_theta
directory, rng = pathlib.Path(sys.argv[2]), np.random.default_rng(3)
out = {"backend": keras.backend.backend()}
try:
    check_model(factory, *maps_and_theta(rng, 4), tmp_path=directory)
    out["checks"] = "passed"
except Exception:
    out["checks"] = traceback.format_exc()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow  # JAX compilation on 2 cores; the same checks run on TensorFlow
def test_model_checks_and_keras_workflows_on_jax(tmp_path):
    out = jax_backend.run_on_jax(JAX_SCRIPT, REPO, tmp_path)
    assert out["checks"] == "passed", out["checks"]


def planted_maps(theta, seed):
    """(N, 32, 32, 3) Gaussian maps: channel c < 2 has standard deviation 0.1 * 5^theta_c,
    channel 2 a fixed 0.3; P(k) ~ k^-2 in every channel, channels independent."""
    unit = np.stack([correlated_fields((32, 32), 25.0, [lambda k: k**-2.0] * 3, 0.0,
                                       seed=(seed, i), dtype=np.float32)
                     for i in range(len(theta))])
    unit /= unit.std()
    scale = np.concatenate([0.1 * 5.0**theta, np.full((len(theta), 1), 0.3)], axis=1)
    return np.moveaxis(unit, 1, -1) * scale[:, None, None, :].astype(np.float32)


def test_short_fit_recovers_planted_parameters_on_held_out_maps():
    rng = np.random.default_rng(5)
    theta_train, theta_test = rng.uniform(0, 1, (512, 2)), rng.uniform(0, 1, (128, 2))
    maps_train, maps_test = planted_maps(theta_train, 1), planted_maps(theta_test, 2)
    keras.utils.set_random_seed(0)
    model = ParameterRegressor(32, channels=3, n_params=2, width=8)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(maps_train, theta_train, batch_size=32, epochs=8, verbose=0)
    scores = regression_scores(theta_test, model.predict(maps_test, verbose=0),
                               ("theta_0", "theta_1"))
    print(scores)
    for name in ("theta_0", "theta_1"):
        assert scores[name]["r2"] > 0.7
