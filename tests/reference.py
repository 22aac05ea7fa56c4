"""The outputs of the original programs kept in tests/fixtures (see its README)."""
import json
import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def load_reference(name):
    """np.load of fixture ``name``; a missing file is an error, never a skipped test."""
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: reference fixture missing from the repository")
    return np.load(path)


def reference_config(data):
    return json.loads(str(data["config"]))
