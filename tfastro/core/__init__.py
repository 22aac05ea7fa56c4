"""The run machinery every case shares; it imports no case.

* ``config`` — config dataclasses as the one declaration of a case's settings (run.py's flags).
* ``checkpoints`` — numbered ``.keras`` checkpoints: resume, pretrained model, rotation,
  fresh starts, the lock of a save_dir.
* ``loops`` — the iteration loop and the epoch loop of training, the divergence guard.
* ``atomic`` — file writes a kill cannot leave half done.
* ``distribute`` — tf.distribute strategies, per-replica batches, worker folders (TensorFlow).
* ``precision`` — mixed-precision policies and loss scaling.
* ``host_memory`` — returning freed tensors' memory to the system.
* ``errors`` — ``UserInputError``, reported by run.py in one line.
* ``symmetries`` — the flips and rotations of the augmentations.
* ``layers`` — layers several cases use (tensor layer norm).
* ``models`` — what the cases' models share (their own ``compile`` defaults, reloaded).
* ``figures``, ``json_values``, ``cli`` — figure helpers, JSON of numpy values, the
  synthetic-data command line.
"""
