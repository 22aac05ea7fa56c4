"""Access to the outputs of the original programs kept in ../shared/reference."""
import json
import os

import numpy as np
import pytest

REFERENCE_DIR = os.environ.get(
    "TFASTRO_REFERENCE_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference"))


def load_reference(name):
    """np.load of reference file ``name``; the test is skipped when the folder is absent."""
    path = os.path.join(REFERENCE_DIR, name)
    if not os.path.exists(path):
        pytest.skip(f"reference data {path} not available (set TFASTRO_REFERENCE_DIR)")
    return np.load(path)


def reference_config(data):
    return json.loads(str(data["config"]))
