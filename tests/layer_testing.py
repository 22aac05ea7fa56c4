"""The one check every custom tfastro layer passes.

``check_layer(factory, inputs)`` builds ``factory()`` on the shape of the first input, then
asserts: eager and graph (tf.function) calls agree; ``from_config(get_config())`` rebuilds the
same layer; one SGD ``fit`` step of a model wrapping the layer reports the untrained loss and
moves every weight by -lr times its eager gradient (some non-zero); a ``.keras`` save/load
gives identical outputs; and under ``dtype="mixed_bfloat16"`` the variables stay float32 while
the outputs are bfloat16, finite and within bfloat16 round-off (2^-5 of the largest output)
of the float32 ones.

Layers may take several positional inputs, some of them ``None`` (an all-zero state); the
wrapper model takes only the present ones and puts the ``None`` back in place.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import ops


def _as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _numpy(outputs):
    return [ops.convert_to_numpy(ops.cast(o, "float32")) for o in _as_tuple(outputs)]


def randomize_weights(layer, rng):
    """Give every weight random values, so that no bias, offset or peephole is trivially 0 or 1."""
    for w in layer.weights:
        w.assign(rng.normal(0.0, 0.5, size=w.shape).astype("float32"))


@keras.saving.register_keras_serializable(package="tfastro_tests")
class LayerHarness(keras.Model):
    """``layer`` as a model: takes the list of present inputs (``present[i]`` False means the
    layer's i-th positional input is ``None``) and returns its outputs concatenated on channels."""

    def __init__(self, layer, present, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.present = [bool(p) for p in present]

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(tuple(input_shape[0]))

    def call(self, tensors):
        it = iter(tensors)
        outputs = _as_tuple(self.layer(*[next(it) if p else None for p in self.present]))
        return ops.concatenate([ops.cast(o, "float32") for o in outputs], axis=-1)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer),
                "present": self.present}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def _assert_all_close(actual, expected, atol, what):
    assert len(actual) == len(expected), what
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"{what}: output {k} shape {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, rtol=0, atol=atol, err_msg=f"{what}: output {k}")


def check_layer(factory, inputs, tmp_path):
    """Run the shared checks on ``factory()`` fed ``inputs``; return its eager outputs (numpy).

    factory: callable taking layer keyword arguments (``dtype=...``) and returning an unbuilt
      layer whose ``build`` takes the shape of its first positional input.
    inputs: tuple of float32 arrays (batch first) or ``None``; the first must be an array.
    tmp_path: folder for the ``.keras`` file.
    """
    present = [a is not None for a in inputs]
    args = [None if a is None else np.asarray(a, "float32") for a in inputs]
    tensors = [a for a in args if a is not None]

    # build + eager call
    layer = factory()
    layer.build(tensors[0].shape)
    assert layer.built and layer.trainable_weights, "build() must create the weights"
    eager = _numpy(layer(*args))
    for k, out in enumerate(eager):
        assert np.all(np.isfinite(out)), f"eager output {k} not finite"

    # graph call
    graph = _numpy(tf.function(lambda *a: layer(*a))(*args))
    _assert_all_close(graph, eager, 1e-6, "graph vs eager")

    # config round-trip: same config, same function once given the same weights
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build(tensors[0].shape)
    clone.set_weights(layer.get_weights())
    _assert_all_close(_numpy(clone(*args)), eager, 1e-6, "from_config(get_config())")

    # one fit step: reports the untrained loss and moves the weights by -lr * (eager gradient)
    model = LayerHarness(layer, present)
    target = np.random.default_rng(0).normal(
        size=np.concatenate(eager, axis=-1).shape).astype("float32")
    with tf.GradientTape() as tape:
        loss_before = ops.mean(ops.square(model(tensors) - target))
    grads = tape.gradient(loss_before, layer.trainable_weights)
    grads = [np.zeros(w.shape, "float32") if g is None else np.asarray(g)
             for w, g in zip(layer.trainable_weights, grads)]
    assert any(np.any(g != 0) for g in grads), "no trainable weight gets a gradient"
    weights_before = [w.numpy() for w in layer.trainable_weights]
    lr = 0.1
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    history = model.fit(tensors, target, batch_size=len(target), epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, float(loss_before), rtol=1e-5)
    for w0, w, g in zip(weights_before, layer.trainable_weights, grads):
        np.testing.assert_allclose((w0 - w.numpy()) / lr, g, rtol=1e-3, atol=2e-5,
                                   err_msg=f"fit step of {w.path}")

    # .keras round-trip
    path = str(tmp_path / f"{layer.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layer) is type(layer)
    _assert_all_close(_numpy(loaded(tensors)), _numpy(model(tensors)), 1e-6, ".keras round-trip")

    # mixed precision: float32 variables, finite bfloat16 outputs close to float32 ones
    mixed = factory(dtype="mixed_bfloat16")
    mixed.build(tensors[0].shape)
    mixed.set_weights(layer.get_weights())
    for w in mixed.weights:
        assert w.dtype == "float32", f"{w.path} is {w.dtype} under mixed_bfloat16"
    outputs = _as_tuple(mixed(*args))
    for k, out in enumerate(outputs):
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16", f"output {k} is {out.dtype}"
    # bfloat16 keeps 8 significant bits (rounding 2^-9 relative); inputs, weights, products and
    # sums are each rounded, and cancellations (x * a + b in a norm) carry the error of the
    # larger terms, so the bound is set by the outputs' scale: 2^-5 of the largest magnitude.
    reference = _numpy(layer(*args))
    atol = 2.0**-5 * max(1.0, max(float(np.abs(r).max()) for r in reference))
    _assert_all_close(_numpy(outputs), reference, atol, "mixed_bfloat16 vs float32")
    return eager
