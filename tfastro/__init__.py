"""tfastro: deep learning on astrophysical simulation fields (TensorFlow 2 / Keras 3).

Subpackages follow one direction of flow: ``data`` (files, generators, tf.data)
-> ``models`` built from ``layers`` -> ``tasks`` (one science case each, used by
``run.py`` and notebooks) -> ``analysis`` (statistics on fields) -> ``viz``.
"""

__version__ = "0.1.0"
