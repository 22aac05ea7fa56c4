"""tfastro's 3D-MIM computes the original network's function: load the original's weights,
run its input and feedback mask, compare predictions and loss."""
import numpy as np
import pytest

from tests.reference import load_reference, reference_config
from tfastro.supernova.model import MIM3D, frame_loss

CONV_NAMES = {"time_state_to_state": "conv_h", "spatio_state_to_state": "conv_m",
              "input_to_state": "conv_x", "state_to_state": "conv_h"}


def _target(model, name):
    """The tfastro variable holding original variable ``name`` (e.g. predrnn/stlstm_2/...)."""
    parts = name[len("var/predrnn/"):-len(":0")].split("/")
    scope, rest = parts[0], parts[1:]
    if scope == "back_to_pixel":
        return getattr(model.back_to_pixel, rest[0])
    if scope.startswith("stlstm_diff"):
        layer = model.mim_n[int(scope[len("stlstm_diff"):]) - 1]
    else:
        k = int(scope[len("stlstm_"):])
        layer = model.stlstm if k == 1 else model.blocks[k - 2]
        if rest[0] == scope:  # the MIM-S nested in block k
            layer, rest = layer.mim_s, rest[1:]
    if rest[0] in ("c_t_weight", "oc_weight"):
        return getattr(layer, rest[0])
    if rest[0] == "cell_reduce":
        return getattr(layer.cell_reduce, rest[1])
    if len(rest) == 2:  # <conv>/kernel or <conv>/bias
        return getattr(getattr(layer, CONV_NAMES[rest[0]]).conv, rest[1])
    conv, kind = rest[0][:-1], rest[0][-1]  # layer-norm offset "<conv>b" / scale "<conv>s"
    norm = getattr(layer, CONV_NAMES[conv]).norm
    return norm.offset if kind == "b" else norm.scale


def load_original(ref):
    cfg = reference_config(ref)
    model = MIM3D(num_hidden=cfg["num_hidden"], filter_size=cfg["filter_size"], patch_size=1,
                  input_length=cfg["input_length"], total_length=cfg["total_length"],
                  layer_norm=cfg["layer_norm"])
    model.build(ref["input"].shape)
    names = [k for k in ref.files if k.startswith("var/")]
    targets = [_target(model, n) for n in names]
    assert len({id(t) for t in targets}) == len(names)
    assert len(names) == len(model.trainable_variables)
    for name, var in zip(names, targets):
        var.assign(ref[name])
    return model


@pytest.fixture(scope="module")
def original():
    ref = load_reference("mim3d_original_forward.npz")
    return ref, load_original(ref)


def test_forward_matches_original(original):
    ref, model = original
    flag = ref["real_input_flag"]
    mask = flag.reshape(flag.shape[:2] + (-1,))
    assert np.all(mask == mask[..., :1])  # one feedback decision per sample and step
    pred = np.asarray(model(ref["input"], sampling_mask=mask[..., 0]))
    np.testing.assert_allclose(pred, ref["gen_images"], rtol=0, atol=2e-5)
    loss = float(frame_loss(ref["input"], pred)) * ref["input"].shape[0]
    np.testing.assert_allclose(loss, float(ref["loss"]), rtol=1e-5)


def test_remat_gives_the_same_gradients(original):
    import tensorflow as tf
    ref, model = original
    mask = ref["real_input_flag"][:, :, 0, 0, 0, 0]
    grads = []
    for remat in (False, True):
        model.remat = remat
        with tf.GradientTape() as tape:
            loss = frame_loss(ref["input"], model(ref["input"], sampling_mask=mask, training=True))
        grads.append(tape.gradient(loss, model.trainable_variables))
    model.remat = False
    for g0, g1 in zip(*grads):
        g0, g1 = np.asarray(g0), np.asarray(g1)
        assert np.linalg.norm(g1 - g0) <= 1e-5 * np.linalg.norm(g0)
