"""tfastro: deep learning on astrophysical simulation fields (TensorFlow 2 / Keras 3).

One package per science case — ``supernova`` (3D-MIM), ``multifield``, ``dm2gal``,
``turbulence``, ``prestellar`` — each with the same modules for the same roles (io, synthetic,
pipeline, layers/model, config, task, evaluation, figures); ``fields`` holds the statistics
every case uses and ``core`` the run machinery they share. Neither imports a case.
"""

__version__ = "0.1.0"
