"""Results as JSON: numpy scalars and arrays as plain numbers and lists."""
import numpy as np


def jsonable(value):
    """Nested dicts / sequences / numpy values as plain lists, ints, bools and floats;
    non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if value is None or isinstance(value, str):
        return value
    value = float(value)
    return value if np.isfinite(value) else None
