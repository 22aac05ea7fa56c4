"""The sn .npz reader/writer: round trips, the two-file concatenation, every bad input."""
import os

import numpy as np
import pytest

from tfastro.core.errors import UserInputError
from tfastro.supernova.io import SNData, check_sn_config, default_clips, load_sn_npz, save_sn_npz

C, X, Y, Z = 2, 4, 3, 5


def _frames(n, rng):
    return rng.random((n, C, X, Y, Z), dtype=np.float32)


def _write_raw(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _valid_arrays(rng, n_frames=12, clip_length=6):
    return dict(input_raw_data=_frames(n_frames, rng),
                clips=default_clips(n_frames, clip_length),
                dims=np.array([[C, X, Y, Z]], dtype=np.int32))


def test_default_clips_layout():
    clips = default_clips(240, 20)
    assert clips.shape == (2, 12, 2)
    i = np.arange(12)
    np.testing.assert_array_equal(clips[0, :, 0], 20 * i)
    np.testing.assert_array_equal(clips[0, :, 1], 10)
    np.testing.assert_array_equal(clips[1, :, 0], 20 * i + 10)
    np.testing.assert_array_equal(clips[1, :, 1], 10)
    np.testing.assert_array_equal(default_clips(12, 6, input_length=1)[1, :, :],
                                  [[1, 5], [7, 5]])


@pytest.mark.parametrize("args", [(241, 20), (10, 20), (20, 1), (20, 10, 10), (20, 10, 0)])
def test_default_clips_rejects_bad_arguments(args):
    with pytest.raises(UserInputError, match="clip_length|input_length"):
        default_clips(*args)


def test_round_trip_single_file(tmp_path, rng):
    frames = _frames(12, rng)
    clips = default_clips(12, 6)
    path = save_sn_npz(tmp_path / "sub" / "dir" / "a.npz", frames, clips)
    data = load_sn_npz(path)
    assert isinstance(data, SNData)
    np.testing.assert_array_equal(data.frames, frames)
    np.testing.assert_array_equal(data.clips, clips)
    assert data.frames.dtype == np.float32
    assert data.dims == (C, X, Y, Z)
    assert data.paths == (path,)
    assert data.num_clips == 2
    with np.load(path) as raw:
        assert raw["dims"].shape == (1, 4)
        np.testing.assert_array_equal(raw["dims"][0], [C, X, Y, Z])
    # A clip is the input frames then the output frames, channels-last.
    clip = data.clip(1, 6)
    assert clip.shape == (6, X, Y, Z, C) and clip.dtype == np.float32
    np.testing.assert_array_equal(clip, np.moveaxis(frames[6:12], 1, -1))
    np.testing.assert_array_equal(data.clip(0, 4), np.moveaxis(frames[0:4], 1, -1))


def test_clip_with_separate_output_frames(tmp_path, rng):
    frames = _frames(10, rng)
    clips = np.array([[[0, 2]], [[7, 3]]])  # input 0..1, output 7..9
    data = load_sn_npz(save_sn_npz(tmp_path / "a.npz", frames, clips))
    expected = np.concatenate([frames[0:2], frames[7:9]])
    np.testing.assert_array_equal(data.clip(0, 4), np.moveaxis(expected, 1, -1))
    with pytest.raises(UserInputError, match="a.npz"):
        data.clip(0, 6)
    with pytest.raises(IndexError):
        data.clip(1, 2)


def test_two_files_are_concatenated_with_clips_shifted_by_frames(tmp_path, rng):
    # 12 frames and 2 clips in the first file: a shift by the number of clips (the
    # original's bug) would point the second file's clips at the first file's frames.
    frames_a, frames_b = _frames(12, rng), _frames(18, rng)
    clips_a, clips_b = default_clips(12, 6), default_clips(18, 6, input_length=2)
    pa = save_sn_npz(tmp_path / "a.npz", frames_a, clips_a)
    pb = save_sn_npz(tmp_path / "b.npz", frames_b, clips_b)
    data = load_sn_npz(f"{pa}, {pb}")
    assert data.paths == (pa, pb)
    assert data.frames.shape == (30, C, X, Y, Z)
    assert data.num_clips == 5
    np.testing.assert_array_equal(data.clips[:, :2], clips_a)
    np.testing.assert_array_equal(data.clips[:, 2:, 0], clips_b[..., 0] + 12)
    np.testing.assert_array_equal(data.clips[:, 2:, 1], clips_b[..., 1])
    for j in range(3):
        np.testing.assert_array_equal(data.clip(2 + j, 6),
                                      np.moveaxis(frames_b[6 * j:6 * j + 6], 1, -1))
    np.testing.assert_array_equal(data.clip(1, 6), np.moveaxis(frames_a[6:], 1, -1))
    assert data.source_of_clip(1) == pa and data.source_of_clip(2) == pb


def test_save_refuses_to_overwrite_and_leaves_no_temporary_files(tmp_path, rng):
    path = tmp_path / "a.npz"
    save_sn_npz(path, _frames(6, rng), default_clips(6, 6))
    before = path.read_bytes()
    with pytest.raises(UserInputError, match="a.npz.*overwrite"):
        save_sn_npz(path, _frames(6, rng), default_clips(6, 6))
    assert path.read_bytes() == before
    new = _frames(6, rng)
    save_sn_npz(path, new, default_clips(6, 6), overwrite=True)
    np.testing.assert_array_equal(load_sn_npz(str(path)).frames, new)
    assert os.listdir(tmp_path) == ["a.npz"]


def test_failed_write_leaves_no_file(tmp_path, rng, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_sn_npz(tmp_path / "a.npz", _frames(6, rng), default_clips(6, 6))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("frames, clips, match", [
    (np.zeros((6, 4, 4, 4)), default_clips(6, 6), "frames must have shape"),
    (np.full((6, 1, 2, 2, 2), np.nan), default_clips(6, 6), "non-finite"),
    (np.zeros((6, 1, 2, 2, 2)), np.zeros((2, 1)), "clips must be"),
    (np.zeros((6, 1, 2, 2, 2)), default_clips(12, 6), "out of range"),
])
def test_save_rejects_bad_arrays(tmp_path, frames, clips, match):
    with pytest.raises(UserInputError, match=match) as err:
        save_sn_npz(tmp_path / "bad.npz", frames, clips)
    assert "bad.npz" in str(err.value)
    assert not (tmp_path / "bad.npz").exists()


def _broken_files(tmp_path, rng):
    """(name, writer) pairs, each writing one kind of broken file."""
    good = _valid_arrays(rng)

    def with_(**changes):
        arrays = {**good, **changes}
        return lambda p: _write_raw(p, **{k: v for k, v in arrays.items() if v is not None})

    def text(p):
        p.write_text("not an npz")

    def truncated(p):
        _write_raw(p, **good)
        p.write_bytes(p.read_bytes()[:200])

    def single_array(p):
        with open(p, "wb") as f:
            np.save(f, good["input_raw_data"])

    def pickled(p):
        _write_raw(p, **{**good, "dims": np.array([[C, X, Y, Z]], dtype=object)})

    bad_clips = default_clips(12, 6)
    bad_clips[1, 1] = (10, 5)
    negative = default_clips(12, 6)
    negative[0, 0, 0] = -1
    nonfinite = good["input_raw_data"].copy()
    nonfinite[3, 0, 1, 1, 1] = np.inf
    return [
        ("text", text, "not a readable .npz"),
        ("truncated", truncated, "not a readable .npz|cannot read"),
        ("single_array", single_array, "single array"),
        ("pickled", pickled, "cannot read"),
        ("no_dims", with_(dims=None), "missing array.*dims"),
        ("no_clips_no_frames", with_(clips=None, input_raw_data=None),
         "missing array.*input_raw_data, clips"),
        ("frames_4d", with_(input_raw_data=good["input_raw_data"][0]), "input_raw_data must"),
        ("frames_int", with_(input_raw_data=np.zeros((12, C, X, Y, Z), dtype=np.int32)),
         "input_raw_data must"),
        ("no_frames", with_(input_raw_data=np.zeros((0, C, X, Y, Z), np.float32)),
         "no frames"),
        ("nonfinite", with_(input_raw_data=nonfinite), "non-finite"),
        ("clips_shape", with_(clips=np.zeros((2, 3), dtype=np.int32)), "clips must"),
        ("clips_float", with_(clips=default_clips(12, 6).astype(float)), "clips must"),
        ("clips_range", with_(clips=bad_clips), r"clips\[1, 1\].*out of range"),
        ("clips_negative", with_(clips=negative), r"clips\[0, 0\].*out of range"),
        ("dims_shape", with_(dims=np.array([C, X, Y, Z])), "dims must"),
        ("dims_mismatch", with_(dims=np.array([[C, X, Y, Z + 1]])), "do not match"),
    ]


def test_every_bad_file_raises_user_input_error_naming_it(tmp_path, rng):
    for name, write, match in _broken_files(tmp_path, rng):
        path = tmp_path / f"{name}.npz"
        write(path)
        with pytest.raises(UserInputError, match=match) as err:
            load_sn_npz(str(path))
        assert f"{name}.npz" in str(err.value), name


def test_missing_file_and_bad_path_lists(tmp_path, rng):
    with pytest.raises(UserInputError, match="nope.npz: no such file"):
        load_sn_npz(str(tmp_path / "nope.npz"))
    good = save_sn_npz(tmp_path / "good.npz", _frames(6, rng), default_clips(6, 6))
    with pytest.raises(UserInputError, match="nope.npz: no such file"):
        load_sn_npz(f"{good},{tmp_path / 'nope.npz'}")
    for paths in (f"{good},{good},{good}", f"{good},", ""):
        with pytest.raises(UserInputError, match="comma-separated"):
            load_sn_npz(paths)
    with pytest.raises(UserInputError, match="string"):
        load_sn_npz([good])
    assert load_sn_npz(tmp_path / "good.npz").num_clips == 1  # a path-like object


def test_two_files_with_different_dims(tmp_path, rng):
    pa = save_sn_npz(tmp_path / "a.npz", _frames(6, rng), default_clips(6, 6))
    pb = save_sn_npz(tmp_path / "b.npz", rng.random((6, 1, 2, 2, 2)), default_clips(6, 6))
    with pytest.raises(UserInputError, match=r"b\.npz: dims .* differ .*a\.npz"):
        load_sn_npz(f"{pa},{pb}")


def test_check_sn_config(tmp_path, rng):
    pa = save_sn_npz(tmp_path / "a.npz", _frames(12, rng), default_clips(12, 6))
    clips_b = np.array([[[0, 3], [4, 2]], [[3, 1], [6, 4]]])  # clip lengths 4 and 6
    pb = save_sn_npz(tmp_path / "b.npz", _frames(10, rng), clips_b)
    data = load_sn_npz(f"{pa},{pb}")
    good = dict(total_length=4, width=X, height=Y, depth=Z, channels=C)
    check_sn_config(data, **good)
    for flag, key in (("--img_channel", "channels"), ("--img_width", "width"),
                      ("--img_height", "height"), ("--img_depth", "depth")):
        with pytest.raises(UserInputError, match=flag) as err:
            check_sn_config(data, **{**good, key: good[key] + 1})
        assert "a.npz" in str(err.value)
    with pytest.raises(UserInputError, match="--total_length=5") as err:
        check_sn_config(data, **{**good, "total_length": 5})
    assert "clip 2 of" in str(err.value) and "b.npz" in str(err.value)
