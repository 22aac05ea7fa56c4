"""tf.data pipeline over sn clips: shapes, dtypes, content, every clip exactly once."""
import numpy as np
import pytest
import tensorflow as tf

from tfastro.core.errors import UserInputError
from tfastro.supernova.io import SNData, default_clips
from tfastro.supernova.pipeline import sn_dataset

N_CLIPS, CLIP_LEN, C, X, Y, Z = 7, 4, 1, 3, 4, 2


@pytest.fixture
def data(rng):
    frames = rng.random((N_CLIPS * CLIP_LEN, C, X, Y, Z), dtype=np.float32)
    # Tag every frame of clip i with the value i in one voxel, to identify clips in batches.
    for i in range(N_CLIPS):
        frames[i * CLIP_LEN:(i + 1) * CLIP_LEN, 0, 0, 0, 0] = i
    return SNData(frames=frames, clips=default_clips(len(frames), CLIP_LEN),
                  dims=(C, X, Y, Z), paths=("mem.npz",))


def _clip_ids(batches):
    return [int(v) for b in batches for v in b[:, 0, 0, 0, 0, 0]]


def test_batches_shapes_dtype_and_every_clip_once(data):
    ds = sn_dataset(data, total_length=3, batch_size=3)
    assert ds.element_spec.shape.as_list() == [None, 3, X, Y, Z, C]
    assert ds.element_spec.dtype == tf.float32
    batches = [b.numpy() for b in ds]
    assert [b.shape for b in batches] == [(3, 3, X, Y, Z, C)] * 2 + [(1, 3, X, Y, Z, C)]
    assert all(b.dtype == np.float32 for b in batches)
    assert _clip_ids(batches) == list(range(N_CLIPS))
    stacked = np.concatenate(batches)
    for i in range(N_CLIPS):
        np.testing.assert_array_equal(stacked[i], data.clip(i, 3))


def test_shuffle_visits_every_clip_once_and_is_seeded(data):
    ids = _clip_ids(sn_dataset(data, 4, 2, shuffle=True, seed=5))
    assert sorted(ids) == list(range(N_CLIPS))
    assert ids != list(range(N_CLIPS))
    assert _clip_ids(sn_dataset(data, 4, 2, shuffle=True, seed=5)) == ids


def test_repeat_reshuffles_each_epoch(data):
    ds = sn_dataset(data, 2, N_CLIPS, shuffle=True, seed=3, repeat=True)
    epochs = [_clip_ids([b.numpy()]) for b in ds.take(3)]
    for ids in epochs:
        assert sorted(ids) == list(range(N_CLIPS))
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]


def test_drop_remainder_gives_static_full_batches(data):
    ds = sn_dataset(data, 4, 3, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [3, 4, X, Y, Z, C]
    assert _clip_ids(ds) == list(range(6))


def test_works_inside_a_tf_function(data):
    ds = sn_dataset(data, 4, 2)

    @tf.function
    def total(dataset):
        s = tf.constant(0.0)
        for batch in dataset:
            s += tf.reduce_sum(batch)
        return s

    expected = sum(data.clip(i, 4).sum(dtype=np.float64) for i in range(N_CLIPS))
    np.testing.assert_allclose(total(ds).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(total_length=5, batch_size=1), "total_length=5"),
    (dict(total_length=0, batch_size=1), "total_length=0"),
    (dict(total_length=2, batch_size=0), "batch_size=0"),
])
def test_rejects_bad_arguments(data, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        sn_dataset(data, **kwargs)
